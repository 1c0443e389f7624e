"""Start, resume and evaluate one run: what ``disbench train`` and
``disbench compare`` both do for each (model, seed)."""

from __future__ import annotations

from pathlib import Path

import gin

from .config import ConfigSources, build_protocol, parse_saved_config, parse_sources
from .errors import DisbenchError
from .io import atomic_write_text
from .runs import CONFIG_NAME, RESULTS_NAME, load_results
from .training.checkpoint import CHECKPOINT_NAME


def run_dir_has_run(run_dir: Path) -> bool:
    return (Path(run_dir) / RESULTS_NAME).exists() or (Path(run_dir) / CHECKPOINT_NAME).exists()


def prepare_new_run(run_dir: Path, sources: ConfigSources, model: str | None) -> Path:
    """Parse the configuration and write it into a fresh run directory."""
    parse_sources(sources, model=model)
    run_dir = Path(run_dir)
    if run_dir_has_run(run_dir):
        raise DisbenchError(f"{run_dir} already holds a run: continue it with --resume, or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_NAME, gin.config_str())
    return run_dir


def prepare_resume(run_dir: Path, sources: ConfigSources | None = None, model: str | None = None) -> bool:
    """Load a run's configuration to continue it; True when a checkpoint exists.

    With ``sources`` the configuration is rebuilt from them instead of the
    saved one, and training refuses a checkpoint of another protocol.
    """
    run_dir = Path(run_dir)
    load_results(run_dir)  # refuses a directory that is not a run
    if sources is not None:
        parse_sources(sources, model=model)
    else:
        parse_saved_config(run_dir / CONFIG_NAME)
    return (run_dir / CHECKPOINT_NAME).is_file()


def train_and_evaluate(run_dir: Path, *, device, resume: bool, evaluate: bool = True,
                       metrics=None, progress: bool | None = None, on_trained=None) -> dict:
    """Train the configured run (resuming if asked), then evaluate its metrics.

    ``on_trained(results)`` is called between the two (the CLI reports training there).
    """
    from .evaluation import evaluate_run
    from .training.loop import train

    results = train(Path(run_dir), device=device, resume=resume, progress=progress)
    if on_trained is not None:
        on_trained(results)
    if evaluate and (metrics or build_protocol().metrics):
        results = evaluate_run(Path(run_dir), metrics, device=device, progress=progress)
    return results
