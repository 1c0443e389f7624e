"""The training loop every model runs, top to bottom.

The step itself never waits on the device: losses are summed into device
accumulators and fetched (one transfer) only every ``Protocol.log_every``
steps. A non-finite loss is caught there, and non-finite parameters before each
checkpoint (one host sync per checkpoint), so no bad state is saved as good.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import gin
import numpy as np
import torch

from ..builders import BuiltRun
from ..data import DeviceSampler
from ..determinism import hardware_record
from ..errors import DisbenchError, TrainingDiverged
from ..io import atomic_write_text
from ..progress import progress_bar
from ..runs import METRICS_LOG_NAME, OPERATIVE_CONFIG_NAME, environment, update_results
from ..schedulers import scheduler_scalars
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .scalars import SCALARS_NAME, ScalarLog, is_finite_row, read_scalars


class Accumulator:
    """Sums per-step tensors on the device; ``fetch`` returns their means."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, values: dict) -> None:
        for key, value in values.items():
            value = value.detach() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
            self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()
        self.count += 1

    def fetch(self) -> dict:
        keys = list(self.sums)
        flat = torch.cat([self.sums[k].double().reshape(-1).cpu() for k in keys]) / max(self.count, 1)
        values, out, i = flat.tolist(), {}, 0
        for key in keys:
            n = self.sums[key].numel()
            out[key] = values[i] if self.sums[key].ndim == 0 else values[i:i + n]
            i += n
        self.sums, self.count = {}, 0
        return out


def _as_float_dict(values: dict) -> dict:
    """One host transfer for the scheduler's / step's instantaneous scalars."""
    tensors = {k: v for k, v in values.items() if isinstance(v, torch.Tensor)}
    out = {k: float(v) for k, v in values.items() if not isinstance(v, torch.Tensor)}
    if tensors:
        fetched = torch.stack([t.detach().double().reshape(()).cpu() for t in tensors.values()]).tolist()
        out.update(zip(tensors, fetched))
    return out


def training_step(model, optimizer, sampler: DeviceSampler, step: int) -> tuple:
    """One optimizer step: forward, β from the detached KL, loss, backward, Adam,
    then the model's own auxiliary update. Returns β and the step's scalars as
    tensors (nothing here waits for the device)."""
    terms = model(sampler.next())
    beta = model.scheduler.step(terms.kl.detach())
    loss, extras = model.loss(terms, beta, step)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    auxiliary = model.auxiliary_step(terms, sampler.next, step)
    return beta, {"loss": loss, "recon": terms.recon, "kl": terms.kl, "kl_per_dim": terms.kl_per_dim,
                  **extras, **auxiliary}


def train(run_dir: Path, built: BuiltRun, *, resume: bool = False, progress: bool | None = None) -> dict:
    """Train the built run in ``run_dir`` (from its checkpoint when ``resume``); return its results."""
    run_dir = Path(run_dir)
    protocol, run, dataset, model, device = built.protocol, built.run, built.dataset, built.model, built.device
    scheduler = model.scheduler
    optimizer = torch.optim.Adam(model.main_parameters(), lr=protocol.lr, betas=protocol.adam_betas)
    sampler = DeviceSampler(dataset.images, protocol.batch_size, device, seed=run.seed)
    fp = built.fingerprint
    ckpt_path = run_dir / CHECKPOINT_NAME
    model_config = model.config()
    scheduler_config = getattr(scheduler, "config", {"name": type(scheduler).__name__})

    step, elapsed_before = 0, 0.0
    if resume:
        state = load_checkpoint(ckpt_path, map_location=device)
        check_checkpoint_matches(state, ckpt_path, model=run.model, seed=run.seed, fingerprint=fp,
                                 model_config=model_config, scheduler_config=scheduler_config)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for name, opt in model.auxiliary_optimizers().items():
            opt.load_state_dict(state["auxiliary_optimizers"][name])
        scheduler.load_state_dict(state["scheduler"])
        sampler.load_state_dict(state["sampler"])
        set_rng_state(state["rng"])
        step, elapsed_before = int(state["step"]), float(state.get("elapsed_seconds", 0.0))

    atomic_write_text(run_dir / OPERATIVE_CONFIG_NAME, gin.operative_config_str())
    update_results(
        run_dir, status="running", model=run.model, seed=run.seed, protocol=protocol.as_dict(),
        protocol_fingerprint=fp, dataset=dataset.describe(), model_config=model_config,
        scheduler=scheduler_config, device=str(device), environment=environment(),
        hardware=hardware_record(device, protocol.deterministic), config_notes=built.notes,
        steps=step, checkpoint_step=step if resume else None, steps_planned=protocol.steps,
    )
    scalar_log = ScalarLog(run_dir / SCALARS_NAME, keep_up_to_step=step)
    metric_log = ScalarLog(run_dir / METRICS_LOG_NAME, keep_up_to_step=step) if protocol.eval_every else None
    last_checkpoint = step if resume else None

    def checkpoint(at_step: int, elapsed: float) -> None:
        nonlocal last_checkpoint
        bad = non_finite_parameters(model)  # the one host sync per checkpoint
        if bad:
            raise TrainingDiverged(f"non-finite parameters ({', '.join(bad[:3])}) at step {at_step}")
        save_checkpoint(ckpt_path, {
            "step": at_step, "fingerprint": fp, "model_name": run.model, "seed": run.seed,
            "model_config": model_config, "scheduler_config": scheduler_config,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "auxiliary_optimizers": {n: o.state_dict() for n, o in model.auxiliary_optimizers().items()},
            "scheduler": scheduler.state_dict(), "sampler": sampler.state_dict(), "rng": rng_state(),
            "elapsed_seconds": elapsed,
        })
        last_checkpoint = at_step
        update_results(run_dir, steps=at_step, checkpoint_step=at_step, elapsed_seconds=round(elapsed, 3))

    accumulator = Accumulator()
    bar = progress_bar(total=protocol.steps, initial=step, desc=f"{run.model} s{run.seed}", unit="step",
                       disable=None if progress is None else not progress)
    started, last_row = time.perf_counter(), None
    model.train()
    try:
        while step < protocol.steps:
            step += 1
            beta, logged = training_step(model, optimizer, sampler, step)
            accumulator.add(logged)

            last = step == protocol.steps
            at_checkpoint = step % protocol.checkpoint_every == 0 or last
            if step % protocol.log_every == 0 or at_checkpoint:
                row = {"step": step, **accumulator.fetch(),
                       **_as_float_dict({"beta": beta, **scheduler_scalars(scheduler)})}
                if not is_finite_row(row):
                    bad = sorted(k for k, v in row.items() if isinstance(v, float) and not np.isfinite(v))
                    raise TrainingDiverged(f"non-finite {', '.join(bad)} by step {step}")
                scalar_log.write(row)
                last_row = row
                bar.update(step - bar.n)
                bar.set_postfix(_postfix(row), refresh=False)
            if metric_log is not None and step % protocol.eval_every == 0:
                from ..evaluation import evaluate_model

                metric_log.write({"step": step, "metrics": evaluate_model(
                    model, dataset, protocol.metrics, seed=run.seed, device=device)})
                model.train()
            if at_checkpoint:
                scalar_log.sync()
                checkpoint(step, elapsed_before + time.perf_counter() - started)
    except TrainingDiverged as exc:
        kept = (f"the last good checkpoint (step {last_checkpoint}, {ckpt_path}) is kept"
                if last_checkpoint else "no checkpoint had been written yet")
        message = f"{exc}; {kept} and the run is marked failed"
        update_results(run_dir, status="failed", error=message, failed_at_step=step)
        raise TrainingDiverged(message) from None
    except KeyboardInterrupt:
        update_results(run_dir, status="interrupted")
        raise
    finally:
        bar.close()
        scalar_log.close()
        if metric_log is not None:
            metric_log.close()

    atomic_write_text(run_dir / OPERATIVE_CONFIG_NAME, gin.operative_config_str())
    # A run resumed at its last step trains no step here: its last row is in the log.
    final = last_row or (read_scalars(run_dir / SCALARS_NAME) or [{}])[-1]
    return update_results(
        run_dir, status="complete", steps=step, error=None,
        elapsed_seconds=round(elapsed_before + time.perf_counter() - started, 3),
        final={k: final.get(k) for k in FINAL_KEYS if k in final},
    )


FINAL_KEYS = ("recon", "kl", "beta", "loss", "kl_per_dim", "setpoint")


def non_finite_parameters(model: torch.nn.Module) -> list[str]:
    """Names of parameters holding a NaN or an infinity (one host transfer)."""
    named = list(model.named_parameters())
    finite = torch.stack([torch.isfinite(p).all() for _, p in named]).cpu().tolist()
    return [name for (name, _), ok in zip(named, finite) if not ok]


def check_checkpoint_matches(state: dict, path: Path, **expected) -> None:
    """Refuse a checkpoint made by another configuration, naming what differs."""
    names = {"model": "model_name", "seed": "seed", "fingerprint": "fingerprint",
             "model_config": "model_config", "scheduler_config": "scheduler_config"}
    differ = [f"{what} {state.get(names[what])!r} in the checkpoint, {value!r} configured"
              for what, value in expected.items()
              if names[what] in state and _jsonable(state[names[what]]) != _jsonable(value)]
    if differ:
        raise DisbenchError(f"checkpoint {path} belongs to another configuration: {'; '.join(differ)}")


def _jsonable(value):
    return json.loads(json.dumps(value, default=repr))


def _postfix(row: dict) -> dict:
    out = {"β": f"{row['beta']:.3g}", "KL": f"{row['kl']:.3g}", "recon": f"{row['recon']:.4g}"}
    if "setpoint" in row:
        out["C"] = f"{row['setpoint']:.3g}"
    return out
