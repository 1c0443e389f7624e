"""The training loop every run takes, top to bottom: one loop for a group of
K runs trained as one computation (:mod:`.group`; runs of one model, or of
several models sharing a forward pass: :mod:`.parts`), K = 1 being an
ordinary run.

The step itself never waits on the device: losses are summed into device
accumulators and fetched (one transfer for all members) only every
``Protocol.log_every`` steps. The step counter the losses and schedulers read
lives on the device too (see :mod:`.group`), so the step can be compiled and
captured in CUDA graphs (``Protocol.compile``). A member's non-finite loss is caught there, and
its non-finite parameters before each checkpoint (one host sync per
checkpoint), so no bad state is saved as good. A member that fails is marked
failed with its last good checkpoint kept; the other members train on.

Each member writes exactly the run directory an unfused run writes.

A member's loggers (``Run.loggers``, :mod:`disbench.loggers`) get its config
at the start, each row written to ``scalars.jsonl``, the metrics of
``Protocol.eval_every`` and, every ``Protocol.image_every`` steps, images
drawn under ``no_grad`` from a copy of its parameters with the random streams
forked: a run with loggers equals one without, bit for bit. They are called
in a background thread (:class:`disbench.loggers.hub.LoggerHub`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..builders import BuiltRun
from ..errors import DisbenchError, TrainingDiverged
from ..evaluation import evaluate_model
from ..execution import ExecutionRequest, default_threads, execution_record, updated_history
from ..io import atomic_write_text
from ..loggers.base import RunInfo
from ..loggers.images import cuda_indices, logged_images
from ..progress import progress_bar
from ..runs import CONFIG_NAME, METRICS_LOG_NAME, OPERATIVE_CONFIG_NAME, environment, read_results, update_results
from ..schedulers import scalar_owners
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, rng_state, save_group_checkpoint, set_rng_state
from .group import RunGroup, available_memory_bytes, estimate_memory_bytes
from .parts import check_shared_forward
from .scalars import SCALARS_NAME, ScalarLog, is_finite_row, read_scalars


def _instantaneous(beta: torch.Tensor, schedulers, size: int) -> list[dict]:
    """Each member's β and the scheduler scalars it owns at this step (``scalar_members``:
    a member of a mixed group logs what it logs alone)."""
    scalars = schedulers.scalars()
    owners = {name: set(ks) for name, ks in scalar_owners(schedulers, scalars, size).items()}
    values = {"beta": beta, **scalars}
    keys = list(values)
    table = torch.stack([torch.as_tensor(values[k]).detach().to(torch.float64).reshape(size).cpu()
                         for k in keys], dim=1).tolist()
    return [{key: v for key, v in zip(keys, row) if key not in owners or k in owners[key]}
            for k, row in enumerate(table)]


@dataclass
class Member:
    """One run of a group: where it writes, and how far it got."""

    run_dir: Path
    built: BuiltRun
    index: int
    failed: str | None = None
    last_checkpoint: int | None = None
    last_row: dict | None = None
    scalar_log: ScalarLog | None = None
    metric_log: ScalarLog | None = None
    loggers: object = None  # the group's LoggerHub, if any member has loggers

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def fail(self, reason: str, step: int) -> str:
        kept = (f"the last good checkpoint (step {self.last_checkpoint}, {self.checkpoint_path}) is kept"
                if self.last_checkpoint else "no checkpoint had been written yet")
        self.failed = f"{reason}; {kept} and the run is marked failed"
        update_results(self.run_dir, status="failed", error=self.failed, failed_at_step=step)
        self.close_logs()
        if self.loggers is not None:
            self.loggers.close(self.index, "failed")
        return self.failed

    def close_logs(self) -> None:
        for log in (self.scalar_log, self.metric_log):
            if log is not None:
                log.close()
        self.scalar_log = self.metric_log = None


def train(run_dir: Path, built: BuiltRun, *, resume: bool = False, progress: bool | None = None,
          execution: ExecutionRequest | None = None) -> dict:
    """Train one run (a group of one); raise TrainingDiverged if it failed."""
    results = train_group([run_dir], [built], resume=resume, progress=progress, execution=execution)[0]
    if results.get("status") == "failed":
        raise TrainingDiverged(results["error"])
    return results


def train_group(run_dirs: list[Path], builts: list[BuiltRun], *, resume: bool = False,
                progress: bool | None = None, loggers=None, execution: ExecutionRequest | None = None,
                stop_at: int | None = None) -> list[dict]:
    """Train the built runs in ``run_dirs`` as one group (from their checkpoints when
    ``resume``); return each member's results. Runs of several models come each
    model configuration's together (:func:`disbench.training.parts.ordered_by_configuration`). ``loggers``: a
    :class:`disbench.loggers.hub.LoggerHub` for the members (the caller finishes it).
    ``execution``: how the command asked the runs to be executed (recorded with
    each run; default: this process's threads, local). ``stop_at``: stop after
    that step, with a checkpoint there (``disbench verify``'s replay): the runs
    stay unfinished."""
    protocol, device = builts[0].protocol, builts[0].device
    execution = execution or ExecutionRequest(threads=torch.get_num_threads() or default_threads())
    end = protocol.steps if stop_at is None else min(int(stop_at), protocol.steps)
    members = [Member(Path(d), b, k, loggers=loggers) for k, (d, b) in enumerate(zip(run_dirs, builts))]
    check_group(builts)
    dataset = builts[0].dataset
    group = RunGroup([b.model for b in builts], dataset.images, [b.run.seed for b in builts], protocol, device)

    step, elapsed_before = 0, 0.0
    if resume:
        states = [load_checkpoint(m.checkpoint_path, map_location=device) for m in members]
        for m, state in zip(members, states):
            check_checkpoint_matches(state, m.checkpoint_path, model=m.built.run.model, seed=m.built.run.seed,
                                     fingerprint=m.built.fingerprint, model_config=m.built.model.config(),
                                     scheduler_config=scheduler_config(m.built.model.scheduler))
        steps = {int(s["step"]) for s in states}
        if len(steps) != 1:
            raise DisbenchError(f"the runs of a group must resume from one step; their checkpoints are at "
                                f"steps {sorted(steps)}: resume them one by one")
        step = steps.pop()
        group.load_member_states(states, step)
        set_rng_state(states[0]["rng"])
        elapsed_before = float(states[0].get("elapsed_seconds", 0.0))

    for m in members:
        atomic_write_text(m.run_dir / OPERATIVE_CONFIG_NAME, m.built.operative_config)
        earlier = (read_results(m.run_dir) or {}).get("config_notes") or []
        notes = earlier + [n for n in m.built.notes if n not in earlier]
        executed = execution_record(execution, device, protocol, len(members), m.index,
                                    [str(x.run_dir) for x in members])
        update_results(
            m.run_dir, status="running", model=m.built.run.model, seed=m.built.run.seed,
            protocol=protocol.as_dict(), protocol_fingerprint=m.built.fingerprint, dataset=dataset.describe(),
            model_config=m.built.model.config(), scheduler=scheduler_config(m.built.model.scheduler),
            device=str(device),
            environment=environment(), execution=executed,
            execution_history=updated_history(read_results(m.run_dir), executed, step),
            config_notes=notes, steps=step, checkpoint_step=step if resume else None,
            steps_planned=protocol.steps)
        m.last_checkpoint = step if resume else None
        m.scalar_log = ScalarLog(m.run_dir / SCALARS_NAME, keep_up_to_step=step)
        if protocol.eval_every:
            m.metric_log = ScalarLog(m.run_dir / METRICS_LOG_NAME, keep_up_to_step=step)
    if loggers is not None:
        start_loggers(loggers, members, step)

    def alive() -> list[Member]:
        return [m for m in members if not m.failed]

    def checkpoint(at_step: int, elapsed: float) -> None:
        finite = group.finite_members()  # the one host sync per checkpoint
        for m in alive():
            if not finite[m.index]:
                bad = group.non_finite_parameters(m.index)
                m.fail(f"non-finite parameters ({', '.join(bad[:3])}) at step {at_step}", at_step)
        states, rng = group.member_states(), rng_state()
        save_group_checkpoint([(m.run_dir, {
            "step": at_step, "fingerprint": m.built.fingerprint, "model_name": m.built.run.model,
            "seed": m.built.run.seed, "model_config": m.built.model.config(),
            "scheduler_config": scheduler_config(m.built.model.scheduler),
            **states[m.index], "rng": rng, "elapsed_seconds": elapsed,
        }, {"steps": at_step, "checkpoint_step": at_step, "elapsed_seconds": round(elapsed, 3)}) for m in alive()])
        for m in alive():
            m.last_checkpoint = at_step

    label = group_label(builts)
    bar = progress_bar(total=protocol.steps, initial=step, desc=label, unit="step",
                       disable=None if progress is None else not progress)
    started = time.perf_counter()
    try:
        while step < end and alive():
            step += 1
            beta, logged = group.step()

            last = step == end
            at_checkpoint = step % protocol.checkpoint_every == 0 or last
            if step % protocol.log_every == 0 or at_checkpoint:
                means = group.log.fetch(group.size)
                now = _instantaneous(beta, group.schedulers, group.size)
                for m in alive():
                    row = {"step": step, **means[m.index], **now[m.index]}
                    if not is_finite_row(row):
                        bad = sorted(k for k, v in row.items() if isinstance(v, float) and not np.isfinite(v))
                        m.fail(f"non-finite {', '.join(bad)} by step {step}", step)
                        continue
                    m.scalar_log.write(row)
                    m.last_row = row
                    if loggers is not None:
                        loggers.scalars(m.index, step, row)
                if loggers is not None:
                    loggers.record_failures()
                if alive():
                    bar.set_postfix(_postfix(alive()[0].last_row), refresh=False)  # before: a log line shows it
                    bar.update(step - bar.n)
            if protocol.eval_every and step % protocol.eval_every == 0 and alive():
                group.write_back()
                for m in alive():
                    evaluated = evaluate_model(m.built.model, dataset, protocol.metrics, seed=m.built.run.seed,
                                               device=device)
                    m.metric_log.write({"step": step, "metrics": evaluated})
                    if loggers is not None:
                        loggers.metrics(m.index, step, evaluated, final=False)
            if loggers is not None and protocol.image_every and step % protocol.image_every == 0:
                send_images(loggers, group, [m for m in alive() if loggers.wants_images(m.index)], step)
            if at_checkpoint and alive():
                for m in alive():
                    m.scalar_log.sync()
                checkpoint(step, elapsed_before + time.perf_counter() - started)
    except KeyboardInterrupt:
        for m in alive():
            update_results(m.run_dir, status="interrupted")
        raise
    finally:
        bar.close()
        for m in members:
            m.close_logs()

    group.write_back()
    elapsed = round(elapsed_before + time.perf_counter() - started, 3)
    results = []
    for m in members:
        if m.failed:
            results.append(update_results(m.run_dir))
            continue
        # A run resumed at its last step trains no step here: its last row is in the log.
        final = m.last_row or (read_scalars(m.run_dir / SCALARS_NAME) or [{}])[-1]
        if step < protocol.steps:  # stopped early (stop_at): unfinished, resumable
            results.append(update_results(m.run_dir, status="interrupted", steps=step, elapsed_seconds=elapsed))
            continue
        results.append(update_results(
            m.run_dir, status="complete", steps=step, error=None, elapsed_seconds=elapsed,
            final={k: final.get(k) for k in FINAL_KEYS if k in final}))
    return results


FINAL_KEYS = ("recon", "kl", "beta", "loss", "kl_per_dim", "setpoint")


def start_loggers(loggers, members: list[Member], step: int) -> None:
    """Create each member's loggers and give them its config (once per process)."""
    for m in members:
        b = m.built
        info = RunInfo(run_dir=m.run_dir, model=b.run.model, seed=b.run.seed, fingerprint=b.fingerprint,
                       steps=b.protocol.steps, start_step=step, group_index=m.index, group_size=len(members),
                       group_members=tuple(str(x.run_dir) for x in members))
        config_path = m.run_dir / CONFIG_NAME
        config = {"model": b.run.model, "seed": b.run.seed, "run_dir": str(m.run_dir),
                  "protocol": b.protocol.as_dict(), "protocol_fingerprint": b.fingerprint,
                  "run": {"model": b.run.model, "seed": b.run.seed, "scheduler": b.run.scheduler,
                          "loggers": list(b.run.loggers)},
                  "model_config": b.model.config(), "scheduler": scheduler_config(b.model.scheduler),
                  "dataset": b.protocol.dataset, "resumed_from_step": step or None,
                  "fused_group": ({"size": len(members), "index": m.index} if len(members) > 1 else None),
                  "config_gin": config_path.read_text() if config_path.is_file() else b.operative_config}
        loggers.start(m.index, info, config)
    loggers.record_failures()


def send_images(loggers, group: RunGroup, members: list[Member], step: int) -> None:
    """Reconstructions and a traversal of each member's current model, drawn from a
    copy of its parameters under no_grad with every random stream forked, so that
    training goes on exactly as without them."""
    if not members:
        return
    with torch.random.fork_rng(devices=cuda_indices(group.device)):
        group.write_back()
        for m in members:
            kl = (m.last_row or {}).get("kl_per_dim")
            loggers.images(m.index, step, logged_images(m.built.model, group.images, kl))


def scheduler_config(scheduler) -> dict:
    return getattr(scheduler, "config", {"name": type(scheduler).__name__})


def group_label(builts: list[BuiltRun]) -> str:
    """``model s1,2`` for each model of a group (its progress bar's label)."""
    seeds: dict[str, list[str]] = {}
    for b in builts:
        seeds.setdefault(b.run.model, []).append(str(b.run.seed))
    return " + ".join(f"{model} s{','.join(s)}" for model, s in seeds.items())


def check_group(builts: list[BuiltRun]) -> None:
    """The members of a group share the protocol and one forward pass (runs of several
    models may: :mod:`disbench.training.parts`), and the group fits on its device."""
    first = builts[0]
    for b in builts[1:]:
        if b.fingerprint != first.fingerprint:
            raise DisbenchError(
                f"runs of one group must share the protocol: {first.run.model} s{first.run.seed} "
                f"({first.fingerprint}) and {b.run.model} s{b.run.seed} ({b.fingerprint}) differ")
    check_shared_forward([b.model for b in builts], [b.run.model for b in builts])
    need = estimate_memory_bytes([b.model for b in builts], first.protocol, len(first.dataset),
                                 first.dataset.observation_shape)
    have = available_memory_bytes(first.device)
    if have is not None and need > 0.9 * have:
        raise DisbenchError(
            f"a group of {len(builts)} runs ({group_label(builts)}) needs about {need / 2**30:.1f} GiB on "
            f"{first.device}, which has {have / 2**30:.1f} GiB free: fuse fewer runs (--fuse)")


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
