"""A finished run rebuilt from its folder, and the evaluation of a run folder.

:func:`load_trained` rebuilds a finished run from its saved ``config.gin``
(gin imports refused) and final checkpoint (nothing unpickled):
``disbench evaluate``, ``disbench report``'s traversals and
:func:`disbench.load_run` start from it. :func:`evaluate_built` scores a built
run's model (:func:`disbench.evaluation.evaluate_model`) and merges the metrics
into its results.json; :func:`evaluate_run` does so for a finished run folder
and sends the metrics to the run's loggers.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import gin
import torch

from .builders import BuiltRun, build_configured_run, build_dataset, build_model, check_run_config, run_fingerprint
from .config import build_protocol, config_notes, parse_saved_config
from .errors import DisbenchError
from .evaluation import evaluate_model
from .loggers.evaluated import send_evaluated
from .metrics import resolve_metrics, with_representations
from .runs import CONFIG_NAME, load_results, update_results
from .training.checkpoint import CHECKPOINT_NAME, load_checkpoint


@dataclass
class TrainedRun:
    """A finished run rebuilt from its directory: its results and the built run."""

    run_dir: Path
    results: dict
    built: BuiltRun

    @property
    def model(self) -> torch.nn.Module:
        return self.built.model

    @property
    def dataset(self):
        return self.built.dataset

    @property
    def protocol(self):
        return self.built.protocol

    @property
    def run(self):
        return self.built.run


def load_trained(run_dir: Path, *, device="cpu", data: bool = True) -> TrainedRun:
    """Rebuild a finished run: its saved config (imports refused), dataset and final weights.
    ``data=False``: the model only, built from the dataset's metadata (the images, often
    gigabytes, are not loaded; ``built.dataset`` is None)."""
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    if results.get("status") != "complete":
        raise DisbenchError(
            f"{run_dir} is not a finished run (status {results.get('status')!r}); "
            "finish it with `disbench train --resume --out DIR` first"
        )
    parse_saved_config(run_dir / CONFIG_NAME)
    state = load_checkpoint(run_dir / CHECKPOINT_NAME, map_location=device)
    built = build_configured_run(device) if data else build_model_only(device)
    built.model.load_state_dict(state["model"])
    built.model.eval()
    return TrainedRun(run_dir, results, built)


def build_model_only(device) -> BuiltRun:
    """The configured run's model, from its dataset's metadata (no images), without a dataset."""
    protocol, run, info = check_run_config()
    with torch.random.fork_rng(devices=[]):  # initial weights, replaced by the checkpoint's
        model = build_model(run, protocol, info).to(device)
    return BuiltRun(protocol, run, None, model, torch.device(device), run_fingerprint(protocol, info.num_images),
                    config_notes(), gin.operative_config_str())


def load_dataset_of(run_dir: Path):
    """The dataset a run was trained on, built from its saved config."""
    parse_saved_config(Path(run_dir) / CONFIG_NAME)
    return build_dataset(build_protocol())


def evaluate_built(run_dir: Path, built: BuiltRun, metric_names, *, progress: bool | None = None,
                   previous: dict | None = None, representations=None) -> dict:
    """Evaluate a built (trained) run's model and merge the metrics into its results.json."""
    names = list(metric_names)
    if not names:
        raise DisbenchError("no metrics to evaluate: pass --metrics a,b or set Protocol.metrics")
    evaluated = evaluate_model(built.model, built.dataset, names, seed=built.run.seed, device=built.device,
                               progress=sys.stderr.isatty() if progress is None else progress,
                               representations=representations)
    previous = load_results(run_dir).get("metrics", {}) if previous is None else previous
    return update_results(run_dir, metrics={**previous, **evaluated})


def evaluate_run(run_dir: Path, metric_names=None, *, device, progress: bool | None = None,
                 representations=None, loggers: bool = True) -> dict:
    """Evaluate a finished run's final checkpoint and merge into its results.json.

    The metric names (and representations) are checked before the model and
    its dataset are built. With ``loggers``, the evaluated metrics then go to
    the run's loggers (:mod:`disbench.loggers.evaluated`).
    """
    if metric_names is not None:
        resolve_metrics(with_representations(metric_names, representations))
    trained = load_trained(run_dir, device=device)
    names = trained.protocol.metrics if metric_names is None else metric_names
    results = evaluate_built(run_dir, trained.built, names, progress=progress,
                             previous=trained.results.get("metrics", {}), representations=representations)
    if loggers and trained.run.loggers:
        evaluated = [name for name, *_ in resolve_metrics(with_representations(names, representations))]
        results = send_evaluated(run_dir, trained.built, results, {n: results["metrics"][n] for n in evaluated})
    return results
