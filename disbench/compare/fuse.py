"""``--fuse K|auto``: how many runs a compare trains as one group.

Runs of any models whose forward pass is the same computation may share a group
(:mod:`disbench.training.parts`): all the registered models on one architecture
do, so a compare of 6 models x 5 seeds is one group with ``--fuse 30``.

The group size K changes the grouped kernels' order of summation, so it is part
of a run's execution (recorded with it) and ``auto`` never depends on a timing:
it is a rule over the device type, the runs waiting that may share a group and
the memory estimate of a group (:func:`disbench.training.group.estimate_memory_bytes`,
for the largest of their models):

* **CPU** (and any device but CUDA): K = 1. On a CPU a fused group computes no
  faster than its runs one after another (``benchmarks/bench_grouped_conv.py``
  measured 0.64–0.79× the plain passes on a 2-vCPU AMD EPYC).
* **CUDA**: the largest power of two K <= min(runs waiting that may share a group,
  :data:`MAX_AUTO`) whose group estimate fits in :data:`MEMORY_SHARE` of the
  device's *total* memory (a property of the GPU model, not of a moment's free
  memory), so the same command on the same GPU model always gets the same K.

The rule's inputs and its answer are printed and recorded in compare.json.
"""

from __future__ import annotations

import torch

from ..builders import build_model, check_run_config
from ..config import parse_sources
from ..errors import DisbenchError
from ..training.group import estimate_memory_bytes
from .plan import TRAIN, RunJob

MAX_AUTO = 8          # beyond 8 members a group's step is long enough to fill a GPU by itself
MEMORY_SHARE = 0.5    # of the device's total memory: room for the evaluation and fragmentation


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


def choose_fuse(fuse: int | str, jobs: list[RunJob], device) -> tuple[int, dict]:
    """The group size to use, and the rule's record: its inputs and a sentence saying why."""
    if fuse != "auto":
        return int(fuse), {"option": str(fuse), "size": int(fuse), "why": f"--fuse {fuse}"}
    device = torch.device(device)
    sharing: dict[str, list] = {}  # the new runs that may share a group
    for job in jobs:
        if job.action == TRAIN:
            sharing.setdefault(job.fuse_key, []).append(job)
    largest = max(sharing.values(), key=len, default=[])
    waiting = len(largest)
    record = {"option": "auto", "device_type": device.type, "runs_waiting": waiting, "max_auto": MAX_AUTO}
    if waiting <= 1:
        return 1, {**record, "size": 1, "why": "--fuse auto: at most one new run that could share a group"}
    if device.type != "cuda":
        return 1, {**record, "size": 1,
                   "why": f"--fuse auto: 1 on {device.type} (a fused group is no faster than its runs in turn there)"}
    models = list({job.model: job for job in largest}.values())  # one job per model
    estimates = [memory_estimates(job, device, min(waiting, MAX_AUTO)) for job in models]
    per_size = {k: max(e[0][k] for e in estimates) for k in estimates[0][0]}  # the largest model's, per size
    total = estimates[0][1]
    size = largest_fitting(per_size, total)
    names = ", ".join(job.model for job in models)
    record.update(size=size, models=[job.model for job in models], device_memory_bytes=total,
                  memory_share=MEMORY_SHARE, estimate_bytes={str(k): v for k, v in per_size.items()})
    record["why"] = (f"--fuse auto chose {size} on {device} ({waiting} runs of {names} waiting, at most {MAX_AUTO}; "
                     f"a group of {size} needs about {per_size[size] / 2**30:.1f} GiB of "
                     f"{total / 2**30:.1f} GiB, which may use {MEMORY_SHARE:.0%})")
    return size, record


def largest_fitting(estimates: dict[int, int], total_bytes: int) -> int:
    """The largest group size whose estimate fits :data:`MEMORY_SHARE` of the device (at least 1)."""
    return max((k for k, need in estimates.items() if need <= MEMORY_SHARE * total_bytes), default=1)


def memory_estimates(job: RunJob, device: torch.device, most: int) -> tuple[dict[int, int], int]:
    """The memory estimate of a group of K = 1, 2, 4, ... <= ``most`` of ``job``'s
    model (built on the CPU, never trained), and the device's total memory."""
    parse_sources(job.sources, model=job.model)
    protocol, run, info = check_run_config()
    shape = info.observation_shape or (1, 64, 64)
    with torch.random.fork_rng(devices=[]):
        model = build_model(run, protocol, info)
    sizes = [1 << i for i in range(most.bit_length()) if 1 << i <= most]
    total = int(torch.cuda.get_device_properties(device).total_memory)
    return {k: estimate_memory_bytes([model] * k, protocol, info.num_images or 0, shape) for k in sizes}, total
