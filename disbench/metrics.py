"""The metric interface and the encoded view of a dataset that metrics read.

A registered metric is a class (gin-configurable, so sample sizes and seeds
can be bound) whose instances are called as

    metric(representation, dataset, seed=...) -> dict

and return ``{"score": float, "per_factor": {factor_name: float}, ...}`` with
any further JSON-serialisable details. Optional keys the comparison tables
read: ``"scores"`` ({name: float}, the metric's other headline numbers, shown
as extra columns), ``"score_name"`` and ``"per_factor_name"`` (what the score
and the per-factor parts are, written under the table).

``representation.encode(indices)`` gives, for the images at ``indices`` (all
images when None), computed in batches on the model's device, a pair
``(codes, logvar)``: the code the metric scores and the log-variance of the
encoder's posterior. Which code depends on the **representation**
(disentanglement_lib's two, docs/metrics.md):

* ``mean`` (the default): the encoder mean μ(x);
* ``sampled``: one sample z = μ(x) + σ(x)·ε per image, ε ~ N(0, I) drawn once
  per evaluation from the run's seed, so an image drawn twice has one code.

A metric class lists the representations it can score in the class attribute
``representations``; without it, only ``mean``. Metrics that read the
posterior N(μ, σ²) itself rather than a code (RMIG, the sampled MIG) have no
sampled form and must not list ``sampled``.

Metric names carry the representation: ``dci`` is scored on the mean
representation, ``dci@sampled`` on the sampled one (:func:`parse_metric_name`);
results are stored under these names in ``results.json``'s ``metrics``.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from .errors import DisbenchError
from .progress import progress_bar
from .registry import get_registry

MEAN, SAMPLED = "mean", "sampled"
REPRESENTATIONS = (MEAN, SAMPLED)
REPRESENTATION_SEPARATOR = "@"
# numpy stream of the sampled representation's noise: default_rng([seed, SAMPLE_STREAM])
SAMPLE_STREAM = 0x5A3D


class Representation:
    """Encodes dataset images on demand and caches the whole-dataset encoding.

    This is the ``mean`` representation: ``encode`` returns (μ, log σ²).
    """

    kind = MEAN

    def __init__(
        self,
        encode_fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        images: torch.Tensor,
        device: torch.device | str = "cpu",
        batch_size: int = 1024,
        progress: bool = False,
    ):
        self.encode_fn = encode_fn
        self.images = images
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.progress = progress
        self._all: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @torch.no_grad()
    def encode(self, indices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(mu, logvar) as float32 arrays of shape (n, latent_dim)."""
        if indices is None:
            if self._all is None:
                self._all = self._encode(torch.arange(len(self)))
            return self._all
        if self._all is not None:
            return self._all[0][indices], self._all[1][indices]
        return self._encode(torch.as_tensor(np.asarray(indices), dtype=torch.long))

    def codes(self, indices: np.ndarray | None = None) -> np.ndarray:
        """The code of this representation (here μ) of the images at ``indices``."""
        return self.encode(indices)[0]

    def _encode(self, indices: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        mus, logvars = [], []
        chunks = indices.split(self.batch_size)
        for chunk in progress_bar(chunks, desc="encode", disable=not self.progress, unit="batch"):
            x = self.images.index_select(0, chunk.to(self.images.device)).to(self.device).float().div_(255.0)
            mu, logvar = self.encode_fn(x)
            mus.append(mu.float().cpu())
            logvars.append(logvar.float().cpu())
        return torch.cat(mus).numpy(), torch.cat(logvars).numpy()


class SampledRepresentation:
    """The ``sampled`` representation over a mean one: ``encode`` returns (z, log σ²)
    with z = μ + exp(log σ² / 2)·ε.

    ε (N, L) float32 is drawn once, for every image of the dataset, from
    ``numpy.random.default_rng([seed, SAMPLE_STREAM])`` the first time any
    image is encoded: the code of an image is the same however often, and in
    whatever subset, it is asked for. The encoding itself is the mean
    representation's (encoded once, shared by both).
    """

    kind = SAMPLED

    def __init__(self, base: Representation, seed: int):
        self.base = base
        self.seed = int(seed)
        self._noise: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.base)

    @property
    def device(self) -> torch.device:
        return self.base.device

    def noise(self, num_latents: int) -> np.ndarray:
        if self._noise is None or self._noise.shape[1] != num_latents:
            rng = np.random.default_rng([self.seed, SAMPLE_STREAM])
            self._noise = rng.standard_normal((len(self), num_latents), dtype=np.float32)
        return self._noise

    def encode(self, indices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        mu, logvar = self.base.encode(indices)
        eps = self.noise(mu.shape[1])
        eps = eps if indices is None else eps[np.asarray(indices)]
        # σ·ε in float64, then float32 like μ: exp(logvar/2) overflows float32 only for absurd logvar.
        z = (mu.astype(np.float64) + np.exp(0.5 * logvar.astype(np.float64)) * eps).astype(np.float32)
        return z, logvar

    def codes(self, indices: np.ndarray | None = None) -> np.ndarray:
        return self.encode(indices)[0]


def make_representations(base: Representation, kinds: Iterable[str], seed: int) -> dict:
    """{kind: representation} for ``kinds``, all sharing ``base``'s encoding."""
    out = {}
    for kind in kinds:
        check_representation_name(kind)
        out[kind] = base if kind == MEAN else SampledRepresentation(base, seed)
    return out


# -- metric names with a representation ---------------------------------------

def check_representation_name(kind: str, option: str = "representation") -> str:
    if kind not in REPRESENTATIONS:
        raise DisbenchError(f"{option} {kind!r} is not a representation: use "
                            + " or ".join(repr(r) for r in REPRESENTATIONS))
    return kind


def parse_metric_name(name: str) -> tuple[str, str]:
    """``"dci"`` -> ("dci", "mean"); ``"dci@sampled"`` -> ("dci", "sampled")."""
    if not isinstance(name, str):
        raise DisbenchError(f"metric names are strings, got {name!r}")
    base, sep, kind = name.partition(REPRESENTATION_SEPARATOR)
    if not sep:
        return name, MEAN
    if not base:
        raise DisbenchError(f"metric {name!r}: no metric name before '{REPRESENTATION_SEPARATOR}'")
    check_representation_name(kind, f"metric {name!r}: representation")
    return base, kind


def metric_key(base: str, kind: str) -> str:
    """The name a (metric, representation) is stored under: ``dci``, ``dci@sampled``."""
    return base if kind == MEAN else f"{base}{REPRESENTATION_SEPARATOR}{kind}"


def metric_base_name(name: str) -> str:
    return parse_metric_name(name)[0]


def parse_representations(text: str | Sequence[str] | None, option: str = "--representation") -> tuple[str, ...]:
    """``"mean,sampled"`` (or a list) -> ("mean", "sampled"); None -> ("mean",)."""
    if text is None:
        return (MEAN,)
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else [str(t).strip() for t in text]
    items = [t for t in items if t]
    if not items:
        raise DisbenchError(f"{option} is empty: give {' and/or '.join(REPRESENTATIONS)}, comma-separated")
    for item in items:
        check_representation_name(item, option)
    duplicates = sorted({i for i in items if items.count(i) > 1})
    if duplicates:
        raise DisbenchError(f"{option} lists {', '.join(duplicates)} more than once")
    return tuple(items)


def with_representations(names: Iterable[str], representations: Sequence[str] | None) -> list[str]:
    """Every metric name for every representation, in order: (``[dci, sap]``,
    ``(mean, sampled)``) -> ``[dci, dci@sampled, sap, sap@sampled]``. A name
    that already names a representation keeps it (``dci@mean`` is stored as
    ``dci``); duplicates are dropped."""
    kinds = tuple(representations) if representations else (MEAN,)
    out: list[str] = []
    for name in names:
        base, kind = parse_metric_name(name)
        explicit = REPRESENTATION_SEPARATOR in name
        expanded = [metric_key(base, kind)] if explicit else [metric_key(base, k) for k in kinds]
        out.extend(n for n in expanded if n not in out)
    return out


def supported_representations(metric_cls) -> tuple[str, ...]:
    """The representations a metric class declares (``mean`` only when it declares none)."""
    return tuple(getattr(metric_cls, "representations", (MEAN,)))


def resolve_metrics(names: Iterable[str]) -> list[tuple[str, str, str, type]]:
    """(name, base name, representation, class) of each metric name; an unknown
    metric, an unknown representation, or a representation the metric does not
    declare is a one-line error, before any work is done."""
    registry = get_registry("metrics")
    resolved = []
    for name in names:
        base, kind = parse_metric_name(name)
        cls = registry.get(base)
        if kind not in supported_representations(cls):
            declared = ", ".join(supported_representations(cls))
            raise DisbenchError(
                f"metric {base!r} has no {kind} form: it declares the representation(s) {declared} "
                f"(a metric that reads the posterior N(μ, σ²) rather than a code cannot score a sample); "
                f"ask for {base!r} alone"
            )
        resolved.append((metric_key(base, kind), base, kind, cls))
    return resolved


def require_factors(dataset, metric_name: str) -> None:
    """Metrics that need ground truth refuse datasets without it, clearly."""
    if not getattr(dataset, "has_factors", False):
        raise DisbenchError(
            f"metric {metric_name!r} needs ground-truth factors, and dataset {dataset.name!r} has none"
        )
