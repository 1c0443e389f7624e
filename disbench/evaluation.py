"""Evaluation: encode a dataset with a trained model and run registered metrics.

Metric names may carry a representation (docs/metrics.md): ``dci`` is scored
on the encoder mean, ``dci@sampled`` on one sample per image; results are
stored under those names in ``results.json``'s ``metrics``, each with its
``"representation"``. ``representations=("mean", "sampled")`` asks for every
metric on both. The dataset is encoded once per evaluation, for all metrics
and both representations.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .builders import BuiltRun, build_configured_run
from .config import parse_saved_config
from .errors import DisbenchError
from .metrics import Representation, make_representations, resolve_metrics, with_representations
from .runs import CONFIG_NAME, load_results, update_results
from .training.checkpoint import CHECKPOINT_NAME, load_checkpoint


def _cuda_indices(device) -> list[int]:
    device = torch.device(device)
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def evaluate_model(model, dataset, metric_names, *, seed: int, device, progress: bool = False,
                   representations=None) -> dict:
    """Run each metric on ``model``'s encoding of ``dataset``; results by name.

    ``metric_names`` may name representations (``dci@sampled``);
    ``representations`` (e.g. ``("mean", "sampled")``) asks for each plain name
    on each of them. Unknown metrics and representations a metric does not
    declare fail before any work. Training's random streams are left untouched
    (metrics may draw their own samples), so evaluating mid-run does not change
    the run.
    """
    metrics = resolve_metrics(with_representations(metric_names, representations))
    model.eval()
    base = Representation(model.encode, dataset.images, device=device, progress=progress)
    views = make_representations(base, sorted({kind for _, _, kind, _ in metrics}), seed)
    results = {}
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=_cuda_indices(device)):
        for name, base_name, kind, metric_cls in metrics:
            try:
                metric = metric_cls()
            except (TypeError, ValueError) as exc:
                raise DisbenchError(f"metric {base_name!r}: {exc}") from None
            started = time.perf_counter()
            result = dict(metric(views[kind], dataset, seed=seed))
            result["representation"] = kind
            result["seconds"] = round(time.perf_counter() - started, 3)
            results[name] = result
    np.random.set_state(numpy_state)
    return results


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


def load_trained(run_dir: Path, *, device="cpu") -> TrainedRun:
    """Rebuild a finished run: its saved config (imports refused), dataset and final weights."""
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    if results.get("status") != "complete":
        raise DisbenchError(
            f"{run_dir} is not a finished run (status {results.get('status')!r}); "
            "finish it with `disbench train --resume --out DIR` first"
        )
    parse_saved_config(run_dir / CONFIG_NAME)
    state = load_checkpoint(run_dir / CHECKPOINT_NAME, map_location=device)
    built = build_configured_run(device)
    built.model.load_state_dict(state["model"])
    built.model.eval()
    return TrainedRun(run_dir, results, built)


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
        from .loggers.evaluated import send_evaluated

        evaluated = [name for name, *_ in resolve_metrics(with_representations(names, representations))]
        results = send_evaluated(run_dir, trained.built, results, {n: results["metrics"][n] for n in evaluated})
    return results
