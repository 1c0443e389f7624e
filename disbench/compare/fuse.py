"""``--fuse K|auto``: how many runs of one model a compare trains as one group.

``auto`` measures: for K = 1, 2, 4, ... (up to the runs waiting for one model)
it times a few steps of a group of K fresh models of the plan's first model on
random images of the dataset's shape, on the device the runs will use, and
keeps the K with the highest aggregate images per second, stopping once
doubling K gains less than 10 % or the group would not fit in memory. On a CPU
the answer is often 1: the cores are busy with one run already.
"""

from __future__ import annotations

import time

import torch

from ..errors import DisbenchError
from .plan import TRAIN, RunJob

PROBE_STEPS = 2
MIN_GAIN = 1.10


def parse_fuse(text: str | None) -> int | str:
    if text is None:
        return 1
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise DisbenchError(f"--fuse {text!r}: expected a group size >= 1 or 'auto'")
    return value


def choose_fuse(fuse: int | str, jobs: list[RunJob], device) -> tuple[int, str]:
    """The group size to use, and a sentence saying why."""
    if fuse != "auto":
        return int(fuse), f"--fuse {fuse}"
    trainable = [j for j in jobs if j.action == TRAIN]
    if not trainable:
        return 1, "--fuse auto: nothing new to train"
    most = max(sum(j.model == m for j in trainable) for m in {j.model for j in trainable})
    if most == 1:
        return 1, "--fuse auto: one run per model"
    rates = probe(trainable[0], torch.device(device), most)
    best = max(rates, key=rates.get)
    measured = ", ".join(f"K={k}: {r:,.0f} img/s" for k, r in rates.items())
    return best, f"--fuse auto chose {best} on {device} ({measured} aggregate, {trainable[0].model})"


def probe(job: RunJob, device: torch.device, most: int) -> dict[int, float]:
    """Aggregate images/s of fused groups of growing size (see the module docstring)."""
    from ..builders import build_model, check_run_config
    from ..config import parse_sources
    from ..training.group import RunGroup, available_memory_bytes, estimate_memory_bytes

    parse_sources(job.sources, model=job.model)
    protocol, run, info = check_run_config()
    shape = info.observation_shape or (1, 64, 64)
    images = (torch.rand(max(4 * protocol.batch_size, 256), *shape) > 0.5).to(torch.uint8) * 255
    rates: dict[int, float] = {}
    k, have = 1, available_memory_bytes(device)
    while k <= most:
        with torch.random.fork_rng(devices=[]):
            models = [build_model(run, protocol, info).to(device) for _ in range(k)]
        if have is not None and estimate_memory_bytes(models, protocol, len(images), shape) > 0.9 * have:
            break
        group = RunGroup(models, images, list(range(k)), protocol, device)
        group.step(1)
        _sync(device)
        started = time.perf_counter()
        for step in range(PROBE_STEPS):
            group.step(step + 2)
        _sync(device)
        rates[k] = k * protocol.batch_size * PROBE_STEPS / (time.perf_counter() - started)
        if k > 1 and rates[k] < MIN_GAIN * rates[k // 2]:
            break
        k *= 2
    return rates


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
