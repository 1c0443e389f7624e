"""Evaluation of a model: encode a dataset with it and run registered metrics.

Metric names may carry a representation (docs/metrics.md): ``dci`` is scored
on the encoder mean, ``dci@sampled`` on one sample per image; results are
stored under those names in ``results.json``'s ``metrics``, each with its
``"representation"``. ``representations=("mean", "sampled")`` asks for every
metric on both. The dataset is encoded once per evaluation, for all metrics
and both representations.

Training calls :func:`evaluate_model` every ``Protocol.eval_every`` steps;
evaluating a finished run folder (its checkpoint, results.json and loggers) is
:mod:`disbench.trained`'s.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .errors import DisbenchError
from .metrics import Representation, make_representations, resolve_metrics, with_representations


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
