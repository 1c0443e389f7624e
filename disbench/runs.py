"""The run directory: what one (model, seed, protocol) run leaves on disk.

    RUN_DIR/config.gin            every gin binding of the run (re-parsed by evaluate/resume)
    RUN_DIR/operative_config.gin  the bindings that were actually used
    RUN_DIR/scalars.jsonl         one row per logged step
    RUN_DIR/metrics.jsonl         metrics at intermediate steps (Protocol.eval_every)
    RUN_DIR/checkpoint.pt         the last checkpoint (atomic)
    RUN_DIR/results.json          status, provenance, final values, metrics (atomic)
"""

from __future__ import annotations

import functools
import json
import platform
import subprocess
from pathlib import Path

import numpy
import torch

from .errors import DisbenchError
from .io import atomic_write_json, read_json
from .registry import plugin_host
from .version import __version__

CONFIG_NAME = "config.gin"
OPERATIVE_CONFIG_NAME = "operative_config.gin"
RESULTS_NAME = "results.json"
METRICS_LOG_NAME = "metrics.jsonl"


def results_path(run_dir: Path) -> Path:
    return Path(run_dir) / RESULTS_NAME


def read_results(run_dir: Path) -> dict | None:
    """A run's results.json (the one reader of it), or None when there is none yet.

    An unreadable file is an error, never read as "not started".
    """
    path = results_path(run_dir)
    if not path.is_file():
        return None
    try:
        results = read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DisbenchError(f"{path} cannot be read ({exc}); move the run away to train it again") from None
    if not isinstance(results, dict):
        raise DisbenchError(f"{path} is not a run's results (expected a JSON object)")
    return results


def load_results(run_dir: Path) -> dict:
    """The results of a run directory; a folder that is not one is an error."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DisbenchError(f"{run_dir} is not a directory")
    results = read_results(run_dir)
    if results is None or not (run_dir / CONFIG_NAME).is_file():
        raise DisbenchError(f"{run_dir} is not a disbench run directory (no {RESULTS_NAME} / {CONFIG_NAME})")
    return results


def update_results(run_dir: Path, **fields) -> dict:
    """Merge ``fields`` into results.json (atomically)."""
    current = updated_results(run_dir, **fields)
    atomic_write_json(results_path(run_dir), current)
    return current


def updated_results(run_dir: Path, **fields) -> dict:
    """results.json with ``fields`` merged in (not written)."""
    current = read_results(run_dir) or {}
    current.update(fields)
    return current


@functools.lru_cache(maxsize=1)
def source_revision() -> dict | None:
    """The git commit of the disbench checkout in use, and whether it had uncommitted
    changes to tracked files; None for an installed (non-checkout) copy or without git.

    Recorded because two versions can share a protocol fingerprint and a version number
    yet train differently (e.g. a changed random stream): the commit says which one ran.
    """
    return checkout_revision(Path(__file__).resolve().parent.parent)


def checkout_revision(root: Path) -> dict | None:
    """{"commit", "dirty"} of the git work tree whose top level is ``root``, else None."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    toplevel = git("rev-parse", "--show-toplevel")
    if toplevel is None or Path(toplevel).resolve() != Path(root).resolve():  # e.g. site-packages inside a repo
        return None
    commit, status = git("rev-parse", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    if commit is None or status is None:
        return None
    return {"commit": commit, "dirty": bool(status)}


def environment() -> dict:
    """Versions and machine facts recorded with every result (how the run was
    executed, the command included, is its ``execution``: :mod:`disbench.execution`)."""
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "disbench": __version__,
        "platform": platform.platform(),
        "plugins": {p.name: p.version for p in plugin_host().plugins.values() if not p.error and not p.disabled},
    }
    source = source_revision()
    if source:
        env["source"] = source
    if torch.cuda.is_available():
        env["cuda"] = torch.version.cuda
        env["gpu"] = torch.cuda.get_device_name()
    return env
