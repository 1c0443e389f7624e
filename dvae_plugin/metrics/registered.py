"""The registered metrics ``mig``, ``mig_sampled`` and ``rmig`` (docs/metrics.md).

Each is a gin-configurable class (gin names ``MIG``, ``MIGSampled``, ``RMIG``,
also reachable as ``dvae_plugin.metrics.MIG`` etc.) whose instances are called
as the harness calls every metric (see :mod:`disbench.metrics`)::

    metric(representation, dataset, seed=0) -> {"score": float,
        "per_factor": {factor_name: float}, "entropy": {factor_name: float},
        "mi": [[float] * K] * L, "factor_names": [...], "num_samples": int, ...}

``mi`` is the (latent, factor) matrix in nats, its columns in
``factor_names`` order. ``exclude_factors`` (factor names) leaves factors out
of ``score`` while still reporting them in ``per_factor``; the DynamicVAE
authors' sampled-MIG script averages dSprites without shape, which is
``MIGSampled.exclude_factors = ["shape"]``. By default every factor counts.
"""

from __future__ import annotations

from typing import Sequence

import gin
import numpy as np

from disbench.errors import DisbenchError
from disbench.metrics import MEAN, SAMPLED, require_factors

from .inputs import check_num_bins, check_positive_int
from .mig import mig_score
from .mig_sampled import mig_sampled_score
from .rmig import rmig_score

_GIN_MODULE = "dvae_plugin.metrics"


class _GapMetric:
    """What the three share: factor exclusion and the JSON result under factor names."""

    name = ""

    def __init__(self, exclude_factors: Sequence[str] | str = ()):
        self.exclude_factors = (exclude_factors,) if isinstance(exclude_factors, str) else tuple(exclude_factors)

    def _named_result(self, result: dict, dataset, **details) -> dict:
        names = list(dataset.factor_names)
        unknown = [n for n in self.exclude_factors if n not in names]
        if unknown:
            raise DisbenchError(f"metric {self.name!r}: exclude_factors {unknown} are not factors of "
                                f"dataset {dataset.name!r} (its factors: {', '.join(names)})")
        kept = [v for n, v in zip(names, result["per_factor"]) if n not in self.exclude_factors]
        if not kept:
            raise DisbenchError(f"metric {self.name!r}: exclude_factors leaves no factor to score")
        out = {
            "score": float(np.mean(kept)),
            "per_factor": dict(zip(names, result["per_factor"])),
            "entropy": dict(zip(names, result["entropy"])),
            "mi": np.asarray(result["mi"], dtype=float).tolist(),
            "factor_names": names,
        }
        if self.exclude_factors:
            out["excluded_factors"] = list(self.exclude_factors)
        for key, value in details.items():
            out[key] = np.asarray(value).tolist() if isinstance(value, np.ndarray) else value
        return out


def _encode_samples(representation, dataset, num_samples: int | None, seed: int):
    """(mu, logvar, factors) of the whole dataset or of a seeded subset."""
    indices = _whole_or_subset(dataset, num_samples, seed)
    mu, logvar = representation.encode(indices)
    return mu, logvar, dataset.factors if indices is None else dataset.factors[indices]


def _whole_or_subset(dataset, num_samples: int | None, seed: int) -> np.ndarray | None:
    """None (the whole dataset, whose encoding the Representation caches) or
    ``num_samples`` distinct indices drawn with ``seed``, sorted for locality.

    The draw uses a child stream of ``seed`` so it is independent of the
    stream mig_sampled_score seeds with the same number.
    """
    if num_samples is None or num_samples >= len(dataset):
        return None
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    return np.sort(rng.choice(len(dataset), size=num_samples, replace=False))


def _device(device, representation):
    return device if device is not None else getattr(representation, "device", None)


@gin.configurable("MIG", module=_GIN_MODULE)
class MIG(_GapMetric):
    """MIG in disentanglement_lib's histogram form (docs/metrics.md ``mig``).

    ``num_train`` images with factors drawn uniformly per factor
    (``dataset.sample_indices`` with ``np.random.default_rng(seed)``); code =
    encoder mean; ``num_bins`` equal bins over each latent's observed range.
    """

    name = "mig"
    # it scores codes, so also disentanglement_lib's sampled representation (mig@sampled);
    # RMIG and the sampled MIG read the posterior N(μ, σ²) itself and have no sampled form
    representations = (MEAN, SAMPLED)

    def __init__(self, num_train: int = 10000, num_bins: int = 20, exclude_factors: Sequence[str] = ()):
        super().__init__(exclude_factors)
        self.num_train = check_positive_int(num_train, "MIG.num_train")
        self.num_bins = check_num_bins(num_bins)

    def __call__(self, representation, dataset, *, seed: int = 0) -> dict:
        require_factors(dataset, self.name)
        indices = dataset.sample_indices(self.num_train, np.random.default_rng(seed))
        mu, _ = representation.encode(indices)
        result = mig_score(mu, dataset.factors[indices], self.num_bins, factor_names=dataset.factor_names)
        return self._named_result(result, dataset, num_samples=len(indices), num_bins=self.num_bins, seed=seed)


@gin.configurable("RMIG", module=_GIN_MODULE)
class RMIG(_GapMetric):
    """Robust MIG of Do & Tran 2020 (docs/metrics.md ``rmig``), the paper's headline metric.

    Whole dataset by default; ``num_samples`` subsamples without replacement
    with ``seed``. ``device`` defaults to the representation's device.
    """

    name = "rmig"

    def __init__(self, num_samples: int | None = None, num_bins: int = 100,
                 value_range: Sequence[float] = (-4.0, 4.0), chunk_size: int = 1024,
                 device: str | None = None, exclude_factors: Sequence[str] = ()):
        super().__init__(exclude_factors)
        self.num_samples = None if num_samples is None else check_positive_int(num_samples, "RMIG.num_samples")
        self.num_bins = check_num_bins(num_bins)
        self.value_range = tuple(value_range)
        self.chunk_size = chunk_size
        self.device = device

    def __call__(self, representation, dataset, *, seed: int = 0) -> dict:
        require_factors(dataset, self.name)
        mu, logvar, factors = _encode_samples(representation, dataset, self.num_samples, seed)
        result = rmig_score(mu, logvar, factors, self.num_bins, self.value_range,
                            factor_names=dataset.factor_names, chunk_size=self.chunk_size,
                            device=_device(self.device, representation))
        return self._named_result(result, dataset, num_samples=len(factors), num_bins=self.num_bins,
                                  value_range=list(self.value_range), seed=seed)


@gin.configurable("MIGSampled", module=_GIN_MODULE)
class MIGSampled(_GapMetric):
    """MIG in Chen et al.'s sampled form (docs/metrics.md ``mig_sampled``), as the authors' code reports.

    Whole dataset by default (``num_samples`` subsamples); entropies estimated
    from ``num_entropy_samples`` samples; ``seed`` draws the subsample, the
    z samples and the entropy subsets. ``device`` defaults to the
    representation's device (a GPU makes this seconds instead of minutes).
    """

    name = "mig_sampled"

    def __init__(self, num_samples: int | None = None, num_entropy_samples: int = 10000,
                 device: str | None = None, exclude_factors: Sequence[str] = ()):
        super().__init__(exclude_factors)
        self.num_samples = None if num_samples is None else check_positive_int(num_samples,
                                                                                 "MIGSampled.num_samples")
        self.num_entropy_samples = check_positive_int(num_entropy_samples, "MIGSampled.num_entropy_samples")
        self.device = device

    def __call__(self, representation, dataset, *, seed: int = 0) -> dict:
        require_factors(dataset, self.name)
        mu, logvar, factors = _encode_samples(representation, dataset, self.num_samples, seed)
        result = mig_sampled_score(mu, logvar, factors, dataset.factor_sizes, self.num_entropy_samples, seed,
                                   factor_names=dataset.factor_names,
                                   device=_device(self.device, representation))
        return self._named_result(result, dataset, num_samples=len(factors),
                                  num_entropy_samples=self.num_entropy_samples, seed=seed,
                                  marginal_entropy=result["marginal_entropy"],
                                  conditional_entropy=result["conditional_entropy"])
