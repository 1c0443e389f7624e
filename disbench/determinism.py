"""Deterministic kernels as a setting (``Protocol.deterministic``), and the
device and CPU names a run's execution record holds (:mod:`disbench.execution`).

What is bit-exact where (also in docs/reproducibility.md):

* CPU: the same seed, torch build, CPU kernel level, **thread count** and fused
  group size give bit-identical runs, and a resumed run equals an uninterrupted
  one. Another thread count or group size changes the order of floating-point
  reductions, so it may not.
* CUDA, ``deterministic = True``: deterministic algorithms only (an op without
  one raises), cuDNN without autotuning, ``CUBLAS_WORKSPACE_CONFIG=:4096:8``;
  the same GPU model, driver and torch build then repeat a run bit for bit.
* CUDA, ``deterministic = False`` (the default, faster): cuDNN autotunes its
  kernels (``cudnn.benchmark``, recorded), and they and atomic additions may
  differ from run to run in the last bits.
* Between devices (CPU vs GPU, two GPU models) results are not bit-identical.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache

import torch

CUBLAS_ENV = "CUBLAS_WORKSPACE_CONFIG"
CUBLAS_DETERMINISTIC = ":4096:8"


def configure_determinism(deterministic: bool) -> None:
    """Switch deterministic kernels on or off for this process."""
    if deterministic:
        # read by cuBLAS when it creates its handle: set before the first CUDA matmul
        os.environ.setdefault(CUBLAS_ENV, CUBLAS_DETERMINISTIC)
    torch.use_deterministic_algorithms(bool(deterministic))
    torch.backends.cudnn.deterministic = bool(deterministic)
    # autotuned cuDNN kernels (a few timed tries per shape, once): faster, not repeatable
    torch.backends.cudnn.benchmark = not deterministic


def device_name(device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return cpu_name()
    return device.type


@lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``'s model name where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
