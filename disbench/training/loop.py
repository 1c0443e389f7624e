"""The training loop every model runs, top to bottom.

The step itself never waits on the device: losses are summed into device
accumulators and fetched (one transfer) only every ``Protocol.log_every``
steps. A non-finite loss is caught there, before any checkpoint is written.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import gin
import numpy as np
import torch

from ..builders import build_dataset, build_model
from ..config import bindings_of, build_protocol, build_run, fingerprint
from ..data import DeviceSampler
from ..errors import DisbenchError, TrainingDiverged
from ..io import atomic_write_text
from ..plugins import get_registry
from ..progress import progress_bar
from ..runs import METRICS_LOG_NAME, OPERATIVE_CONFIG_NAME, environment, update_results
from ..schedulers import scheduler_scalars
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .scalars import SCALARS_NAME, ScalarLog, is_finite_row


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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


def run_fingerprint(protocol, dataset) -> str:
    """The protocol fingerprint, including the dataset's and the metrics' gin bindings."""
    metrics = [get_registry("metrics").get(m) for m in protocol.metrics]  # unknown names fail before training
    factory = get_registry("datasets").get(protocol.dataset)
    return fingerprint(protocol, {"dataset": bindings_of([factory]), "metrics": bindings_of(metrics),
                                  "num_images": len(dataset)})


def train(run_dir: Path, *, device: torch.device, resume: bool = False, progress: bool | None = None) -> dict:
    """Train the run whose gin config is parsed; return its results dict."""
    run_dir = Path(run_dir)
    protocol, run = build_protocol(), build_run()
    seed_everything(run.seed)
    dataset = build_dataset(protocol)
    model = build_model(run, protocol, dataset).to(device)
    scheduler = model.scheduler
    optimizer = torch.optim.Adam(model.main_parameters(), lr=protocol.lr, betas=protocol.adam_betas)
    sampler = DeviceSampler(dataset.images, protocol.batch_size, device, seed=run.seed)
    fp = run_fingerprint(protocol, dataset)
    ckpt_path = run_dir / CHECKPOINT_NAME

    step, elapsed_before = 0, 0.0
    if resume:
        state = load_checkpoint(ckpt_path, map_location=device)
        if state.get("fingerprint") != fp or state.get("model_name") != run.model or state.get("seed") != run.seed:
            raise DisbenchError(
                f"checkpoint {ckpt_path} belongs to another run (model {state.get('model_name')!r}, seed "
                f"{state.get('seed')}, protocol {state.get('fingerprint')}) than the one configured "
                f"(model {run.model!r}, seed {run.seed}, protocol {fp})"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for name, opt in model.auxiliary_optimizers().items():
            opt.load_state_dict(state["auxiliary_optimizers"][name])
        scheduler.load_state_dict(state["scheduler"])
        sampler.load_state_dict(state["sampler"])
        set_rng_state(state["rng"])
        step, elapsed_before = int(state["step"]), float(state.get("elapsed_seconds", 0.0))

    atomic_write_text(run_dir / OPERATIVE_CONFIG_NAME, gin.operative_config_str())
    results = update_results(
        run_dir, status="running", model=run.model, seed=run.seed, protocol=protocol.as_dict(),
        protocol_fingerprint=fp, dataset=dataset.describe(), model_config=model.config(),
        scheduler=getattr(scheduler, "config", {"name": type(scheduler).__name__}),
        device=str(device), environment=environment(), steps=step, steps_planned=protocol.steps,
    )
    scalar_log = ScalarLog(run_dir / SCALARS_NAME, keep_up_to_step=step)
    metric_log = ScalarLog(run_dir / METRICS_LOG_NAME, keep_up_to_step=step) if protocol.eval_every else None

    def checkpoint(at_step: int, elapsed: float) -> None:
        save_checkpoint(ckpt_path, {
            "step": at_step, "fingerprint": fp, "model_name": run.model, "seed": run.seed,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "auxiliary_optimizers": {n: o.state_dict() for n, o in model.auxiliary_optimizers().items()},
            "scheduler": scheduler.state_dict(), "sampler": sampler.state_dict(), "rng": rng_state(),
            "elapsed_seconds": elapsed,
        })

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
                    raise TrainingDiverged(
                        f"non-finite {', '.join(bad)} by step {step}; the last good checkpoint "
                        f"({ckpt_path}) is kept and the run is marked failed"
                    )
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
        update_results(run_dir, status="failed", error=str(exc), failed_at_step=step)
        raise
    except KeyboardInterrupt:
        update_results(run_dir, status="interrupted", steps=_checkpoint_step(ckpt_path))
        raise
    finally:
        bar.close()
        scalar_log.close()
        if metric_log is not None:
            metric_log.close()

    atomic_write_text(run_dir / OPERATIVE_CONFIG_NAME, gin.operative_config_str())
    final = last_row or {}
    results = update_results(
        run_dir, status="complete", steps=step, error=None,
        elapsed_seconds=round(elapsed_before + time.perf_counter() - started, 3),
        final={k: final.get(k) for k in ("recon", "kl", "beta", "loss", "kl_per_dim", "setpoint")
               if k in final},
    )
    return results


def _checkpoint_step(path: Path):
    try:
        return int(load_checkpoint(path)["step"])
    except DisbenchError:
        return 0


def _postfix(row: dict) -> dict:
    out = {"β": f"{row['beta']:.3g}", "KL": f"{row['kl']:.3g}", "recon": f"{row['recon']:.4g}"}
    if "setpoint" in row:
        out["C"] = f"{row['setpoint']:.3g}"
    return out
