"""Evaluation: encode a dataset with a trained model and run registered metrics."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from dataclasses import dataclass

from .builders import build_dataset, build_model
from .config import Protocol, Run, build_protocol, build_run, parse_saved_config
from .data import ImageDataset
from .errors import DisbenchError
from .metrics import Representation
from .plugins import get_registry
from .runs import CONFIG_NAME, load_results, update_results
from .training.checkpoint import CHECKPOINT_NAME, load_checkpoint


def _cuda_indices(device) -> list[int]:
    device = torch.device(device)
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def evaluate_model(model, dataset, metric_names, *, seed: int, device, progress: bool = False) -> dict:
    """Run each metric on ``model``'s encoding of ``dataset``; results by name.

    Training's random streams are left untouched (metrics may draw their own
    samples), so evaluating mid-run does not change the run.
    """
    registry = get_registry("metrics")
    metrics = [(name, registry.get(name)) for name in metric_names]  # unknown names fail before work
    model.eval()
    representation = Representation(model.encode, dataset.images, device=device, progress=progress)
    results = {}
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=_cuda_indices(device)):
        for name, metric_cls in metrics:
            try:
                metric = metric_cls()
            except (TypeError, ValueError) as exc:
                raise DisbenchError(f"metric {name!r}: {exc}") from None
            started = time.perf_counter()
            result = dict(metric(representation, dataset, seed=seed))
            result["seconds"] = round(time.perf_counter() - started, 3)
            results[name] = result
    np.random.set_state(numpy_state)
    return results


@dataclass
class TrainedRun:
    """A finished run rebuilt from its directory: config, data and trained model."""

    run_dir: Path
    results: dict
    protocol: Protocol
    run: Run
    dataset: ImageDataset
    model: torch.nn.Module


def load_trained(run_dir: Path, *, device="cpu") -> TrainedRun:
    """Rebuild a finished run (its saved gin config, dataset and final weights)."""
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    if results.get("status") != "complete":
        raise DisbenchError(
            f"{run_dir} is not a finished run (status {results.get('status')!r}); "
            "finish it with `disbench train --resume --out DIR` first"
        )
    parse_saved_config(run_dir / CONFIG_NAME)
    protocol, run = build_protocol(), build_run()
    dataset = build_dataset(protocol)
    model = build_model(run, protocol, dataset).to(device)
    model.load_state_dict(load_checkpoint(run_dir / CHECKPOINT_NAME, map_location=device)["model"])
    model.eval()
    return TrainedRun(run_dir, results, protocol, run, dataset, model)


def evaluate_run(run_dir: Path, metric_names=None, *, device, progress: bool | None = None) -> dict:
    """Evaluate a finished run's final checkpoint and merge into its results.json."""
    trained = load_trained(run_dir, device=device)
    names = list(metric_names or trained.protocol.metrics)
    if not names:
        raise DisbenchError("no metrics to evaluate: pass --metrics a,b or set Protocol.metrics")
    evaluated = evaluate_model(trained.model, trained.dataset, names, seed=trained.run.seed, device=device,
                               progress=sys.stderr.isatty() if progress is None else progress)
    return update_results(run_dir, metrics={**trained.results.get("metrics", {}), **evaluated})
