"""``--dry-run`` (compare, sweep, study): what a plan would do and how long it would take,
with nothing written.

The size: runs to train, resume or evaluate, and the run-steps left (a resumed run from
its checkpoint on). The time: a throughput measured here, now — a fused group of the
size the plan would use, built from the first model to train with its protocol (batch,
architecture, precision, layout, compile) on random images of the dataset's shape (the
speed of a step does not depend on the pixels), a few warm-up steps, then timed steps
(synchronised on CUDA). Evaluation time is not estimated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..builders import build_model, check_run_config, resolve_device
from ..config import parse_sources
from ..training.group import RunGroup
from .plan import EVALUATE, RESUME, RETRY, TRAIN, RunJob, read_status

WARMUP_STEPS = 2
TIMED_STEPS = 5
TIMING_IMAGES = 512  # random images the timed group samples from


@dataclass
class Estimate:
    runs: dict           # action -> number of runs
    run_steps: int       # training steps left, summed over the runs to train or resume
    steps_per_s: float | None = None  # run-steps per second measured for one group (None: nothing to time)
    group_size: int = 1
    timed_on: str = ""

    def seconds(self, parallel: int) -> float | None:
        """The training time with ``parallel`` groups at a time (None: nothing timed)."""
        if not self.steps_per_s:
            return None
        return self.run_steps / (self.steps_per_s * max(1, parallel))


def plan_size(jobs: list[RunJob]) -> tuple[dict, int]:
    """Runs per action and the run-steps left to train."""
    runs = {action: sum(j.action == action for j in jobs) for action in (TRAIN, RESUME, RETRY, EVALUATE)}
    steps_by_sources: dict = {}
    run_steps = 0
    for job in jobs:
        if job.action not in (TRAIN, RESUME, RETRY):
            continue
        key = repr((job.model, job.sources.protocol, job.sources.gin_files, job.sources.gin_params,
                    sorted(job.sources.overrides.items(), key=str)))
        if key not in steps_by_sources:
            parse_sources(job.sources, model=job.model)
            steps_by_sources[key] = check_run_config()[0].steps
        done = 0 if job.action == TRAIN else (read_status(job.run_dir) or {}).get("checkpoint_step") or 0
        run_steps += max(0, steps_by_sources[key] - int(done))
    return {a: n for a, n in runs.items() if n}, run_steps


def measure(job: RunJob, device, group_size: int, threads: int) -> float:
    """Run-steps per second of a group of ``group_size`` runs of ``job``'s model and protocol on
    ``device``, from :data:`TIMED_STEPS` steps after :data:`WARMUP_STEPS` (random images)."""
    parse_sources(job.sources, model=job.model)
    protocol, run, info = check_run_config()
    device = resolve_device(str(device))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            shape = info.observation_shape or (1, 64, 64)
            images = torch.randint(0, 256, (TIMING_IMAGES, *shape), dtype=torch.uint8)
            models = [build_model(run, protocol, info).to(device) for _ in range(group_size)]
            group = RunGroup(models, images, list(range(group_size)), protocol, device)
            for _ in range(WARMUP_STEPS):
                group.step()
            synchronize(device)
            started = time.perf_counter()
            for _ in range(TIMED_STEPS):
                group.step()
            synchronize(device)
            return group_size * TIMED_STEPS / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(before)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe(estimate: Estimate, *, name: str, out, backend: str, workers: int) -> list[str]:
    """The lines ``--dry-run`` prints."""
    counts = ", ".join(f"{n} to {action}" for action, n in estimate.runs.items()) or "nothing to do"
    lines = [f"{name} --dry-run: {sum(estimate.runs.values())} runs in {out}: {counts}; "
             f"{estimate.run_steps:,} run-steps to train; nothing written"]
    if estimate.steps_per_s:
        lines.append(f"{name} --dry-run: measured here: {estimate.steps_per_s:,.1f} run-steps/s for a group of "
                     f"{estimate.group_size} on {estimate.timed_on} ({TIMED_STEPS} timed steps, random images)")
        if backend == "ray":
            one = estimate.seconds(1)
            lines.append(f"{name} --dry-run: about {duration(one)} of training for one Ray task at a time at that "
                         f"speed; divide by the tasks the cluster runs at once (evaluation not included)")
        else:
            lines.append(f"{name} --dry-run: about {duration(estimate.seconds(workers))} of training with "
                         f"{workers} worker{'s' if workers > 1 else ''} (evaluation not included)")
    return lines


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
