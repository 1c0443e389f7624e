"""The run directory: what one (model, seed, protocol) run leaves on disk.

    RUN_DIR/config.gin            every gin binding of the run (re-parsed by evaluate/resume)
    RUN_DIR/operative_config.gin  the bindings that were actually used
    RUN_DIR/scalars.jsonl         one row per logged step
    RUN_DIR/metrics.jsonl         metrics at intermediate steps (Protocol.eval_every)
    RUN_DIR/checkpoint.pt         the last checkpoint (atomic)
    RUN_DIR/results.json          status, provenance, final values, metrics (atomic)
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

from .errors import DisbenchError
from .io import atomic_write_json, read_json

CONFIG_NAME = "config.gin"
OPERATIVE_CONFIG_NAME = "operative_config.gin"
RESULTS_NAME = "results.json"
METRICS_LOG_NAME = "metrics.jsonl"


def results_path(run_dir: Path) -> Path:
    return Path(run_dir) / RESULTS_NAME


def load_results(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    path = results_path(run_dir)
    if not run_dir.is_dir():
        raise DisbenchError(f"{run_dir} is not a directory")
    if not path.is_file() or not (run_dir / CONFIG_NAME).is_file():
        raise DisbenchError(f"{run_dir} is not a disbench run directory (no {RESULTS_NAME} / {CONFIG_NAME})")
    try:
        return read_json(path)
    except (OSError, json.JSONDecodeError) as exc:
        raise DisbenchError(f"{path} cannot be read: {exc}") from None


def update_results(run_dir: Path, **fields) -> dict:
    """Merge ``fields`` into results.json (atomically)."""
    path = results_path(run_dir)
    current = read_json(path) if path.is_file() else {}
    current.update(fields)
    atomic_write_json(path, current)
    return current


def environment() -> dict:
    """Versions and machine facts recorded with every result."""
    import numpy
    import torch

    from . import __version__
    from .plugins import get_host

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "disbench": __version__,
        "platform": platform.platform(),
        "plugins": {p.name: p.version for p in get_host().plugins.values() if not p.error and not p.disabled},
        "argv": sys.argv,
    }
    if torch.cuda.is_available():
        env["cuda"] = torch.version.cuda
        env["gpu"] = torch.cuda.get_device_name()
    return env
