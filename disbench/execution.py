"""How a run is executed: every setting that can change a run's numbers without
changing what is computed (its protocol), recorded with the run.

A run's numbers are decided by three things, kept apart:

* the **protocol** (data, architecture, likelihood, batch, steps, optimizer,
  precision, evaluation): fingerprinted, and runs of different fingerprints
  never share a table;
* the **execution** (device and its kernel level, threads, fused group, memory
  layout, compile mode, deterministic kernels, backend, library versions):
  changes the rounding only; recorded in ``results.json["execution"]``, shown
  under tables whose rows mix settings, and checked by ``disbench verify``;
* the **seed**.

Threads are an explicit setting (``--threads N``). The default rule:
``--backend local``: the cores this process may use (its CPU affinity) ÷
``--jobs``, at least 1; ``--backend ray``: ``--cpus-per-run`` (at least 1).
``OMP_NUM_THREADS`` does not change it.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import socket
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import torch

from .determinism import CUBLAS_ENV, cpu_name, device_name
from .errors import DisbenchError

BACKENDS = ("local", "ray")
CPU_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")  # what forces lower CPU kernels at start-up
# The settings tables compare between the runs of one cell, and their names in table.csv (exec_NAME).
SETTINGS = ("device", "cpu", "threads", "group_size", "layout", "compile", "deterministic", "backend", "torch")
COLUMNS = tuple(f"exec_{name}" for name in SETTINGS)
SETTING_TEXT = {"device": "device", "cpu": "CPU kernels", "threads": "threads", "group_size": "fused group size",
                "layout": "layout", "compile": "compile", "deterministic": "deterministic", "backend": "backend",
                "torch": "torch"}
# Settings that say where a run was computed but not how: verify does not call them a difference.
NOT_NUMERIC = ("backend",)


@dataclass(frozen=True)
class ExecutionRequest:
    """How a command asks its runs to be executed (the rest of the execution is read off the machine)."""

    threads: int
    backend: str = "local"
    command: str | None = None  # the disbench command as the user typed it (on Ray: the driver's)

    def __post_init__(self):
        check_threads(self.threads)
        if self.backend not in BACKENDS:
            raise DisbenchError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")


def cpu_count() -> int:
    """The cores this process may run on (its affinity, which containers and batch systems set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads(jobs: int = 1) -> int:
    """The local rule: the cores this process may use, shared among ``jobs`` runs side by side."""
    return max(1, cpu_count() // max(1, int(jobs)))


def check_threads(value, option: str = "--threads") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DisbenchError(f"{option} must be a whole number of threads >= 1, got {value!r}")
    return value


@contextmanager
def torch_threads(threads: int):
    """Use ``threads`` intra-op threads inside the block, then restore the count before it."""
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def command_line(argv: list[str] | None = None) -> str:
    """A disbench command as typed: ``disbench`` and its arguments."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return shlex.join(["disbench", *argv])


# -- what is read off the machine ---------------------------------------------------

@lru_cache(maxsize=1)
def cpu_facts() -> dict:
    """The CPU's model, the kernel level PyTorch dispatches to, its bf16/AMX
    instructions, and the variables that lowered the level at start-up."""
    cpu = torch.cpu
    facts = {"name": cpu_name(), "capability": torch.backends.cpu.get_cpu_capability(),
             "avx512_bf16": _supported(cpu, "_is_avx512_bf16_supported"),
             "amx": _supported(cpu, "_is_amx_tile_supported"),
             "machine": platform.machine()}
    facts.update({name: os.environ[name] for name in CPU_ENV if os.environ.get(name)})
    return facts


def _supported(module, name: str) -> bool | None:
    probe = getattr(module, name, None)
    try:
        return bool(probe()) if probe is not None else None
    except Exception:  # an unsupported query on this build
        return None


@lru_cache(maxsize=1)
def library_versions() -> dict:
    """torch, CUDA, cuDNN and oneDNN versions (None where the build has none)."""
    onednn = re.search(r"(?:oneDNN|MKL-DNN) v([\w.]+)", torch.__config__.show())
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": cudnn,
            "onednn": onednn.group(1) if onednn else None}


def device_facts(device) -> dict:
    device = torch.device(device)
    facts = {"type": device.type, "name": device_name(device)}
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        facts["capability"] = f"{major}.{minor}"
    return facts


def execution_record(request: ExecutionRequest, device, protocol, group_size: int = 1, group_index: int = 0,
                     group_members: list[str] = ()) -> dict:
    """``results.json["execution"]``: how this process executes a run, read now
    (threads as actually set, not as asked)."""
    device = torch.device(device)
    record = {
        "backend": request.backend,
        "host": socket.gethostname(),
        "command": request.command or command_line(),
        "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()},
        "device": device_facts(device),
        "cpu": cpu_facts(),
        "fused_group": {"size": int(group_size), "index": int(group_index), "members": list(group_members)},
        "layout": "channels_last" if protocol.channels_last else "contiguous",
        "compile": protocol.compile,
        "deterministic": bool(protocol.deterministic),
        # cuDNN autotuning (on unless deterministic); None where cuDNN is not used
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark) if device.type == "cuda" else None,
        "versions": library_versions(),
    }
    if protocol.deterministic:
        record[CUBLAS_ENV] = os.environ.get(CUBLAS_ENV)
    return record


# -- comparing executions ----------------------------------------------------------------

def settings_of(execution: dict | None) -> dict:
    """The compared settings (:data:`SETTINGS`) of one execution record, as short texts."""
    if not execution:
        return {}
    device = execution.get("device") or {}
    cpu = execution.get("cpu") or {}
    kernels = cpu.get("capability") or ""
    if cpu.get("ONEDNN_MAX_CPU_ISA"):
        kernels += f" (oneDNN ≤ {cpu['ONEDNN_MAX_CPU_ISA']})"
    name = device.get("name")
    return {
        "device": f"{device.get('type')} ({name})" if name and device.get("type") != "cpu" else device.get("type"),
        "cpu": f"{cpu.get('name')}, {kernels}" if device.get("type") == "cpu" else kernels,
        "threads": str((execution.get("threads") or {}).get("intra_op")),
        "group_size": str((execution.get("fused_group") or {}).get("size", 1)),
        "layout": execution.get("layout"),
        "compile": execution.get("compile"),
        "deterministic": str(execution.get("deterministic")).lower(),
        "backend": execution.get("backend"),
        "torch": (execution.get("versions") or {}).get("torch"),
    }


def run_settings(results: dict | None) -> dict:
    """A run's settings; a run resumed under other settings shows each change
    (``1 → 2``), so it never looks alike to a run executed one way throughout."""
    history = (results or {}).get("execution_history") or []
    if not history:
        return settings_of((results or {}).get("execution"))
    out = {}
    for name in SETTINGS:
        values = list(dict.fromkeys(entry.get(name) for entry in history))
        out[name] = " → ".join(str(v) for v in values)
    return out


def history_entry(execution: dict, from_step: int) -> dict:
    return {"from_step": int(from_step), **settings_of(execution)}


def updated_history(results: dict | None, execution: dict, from_step: int) -> list[dict]:
    """``execution_history`` after a (re)start at ``from_step``: a new entry when the
    settings changed; entries past ``from_step`` (steps done again) are dropped."""
    history = [e for e in ((results or {}).get("execution_history") or []) if e.get("from_step", 0) < from_step]
    entry = history_entry(execution, from_step)
    if not history or {k: v for k, v in history[-1].items() if k != "from_step"} != \
            {k: v for k, v in entry.items() if k != "from_step"}:
        history.append(entry)
    return history


def differing_settings(recorded: dict, current: dict, *, skip=NOT_NUMERIC) -> list[str]:
    """``setting: recorded -> current`` for each compared setting that differs."""
    a, b = settings_of(recorded), settings_of(current)
    return [f"{SETTING_TEXT[k]}: {a.get(k)} -> {b.get(k)}" for k in SETTINGS
            if k not in skip and a.get(k) != b.get(k)]


def describe(settings: dict) -> str:
    """``cpu (AMD EPYC, AVX512), 2 threads, fused group size 1, ...``: one execution in words."""
    device = settings.get("device")
    if settings.get("cpu"):
        device = f"{device} ({settings['cpu']})"
    deterministic = "deterministic kernels" if settings.get("deterministic") == "true" else "default kernels"
    threads = settings.get("threads")
    parts = [device, f"{threads} thread{'' if threads == '1' else 's'}", f"fused group size {settings.get('group_size')}",
             f"{settings.get('layout')} layout", f"compile {settings.get('compile')}", deterministic,
             f"backend {settings.get('backend')}", f"torch {settings.get('torch')}"]
    return ", ".join(str(p) for p in parts if p)
