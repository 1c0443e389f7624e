"""MIG, disentanglement_lib's histogram form (docs/metrics.md, metric ``mig``).

Chen et al. 2018, "Isolating Sources of Disentanglement in Variational
Autoencoders", as computed by Locatello et al. 2019's disentanglement_lib
(``evaluation/metrics/mig.py``): each latent mean is cut into ``num_bins``
equal-width bins over its own observed range, the discrete mutual information
of every (binned latent, factor) pair is taken in nats, and each factor scores
the gap between its two most informative latents over its entropy.

The result equals disentanglement_lib's per-pair ``mutual_info_score`` loop to
rounding (1e-9 is tested), but every joint histogram comes from one
``np.bincount`` per factor over all latents at once.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from disbench.standard_metrics.discrete import histogram_bins  # the same 20 equal bins as disentanglement_lib

from .inputs import check_codes, check_factors, check_num_bins
from .information import dense_labels, factor_entropies, gap_result, mutual_information


def binned_joint_counts(bins: np.ndarray, labels: np.ndarray, num_bins: int, num_values: int) -> np.ndarray:
    """Counts of (bin of latent i, factor value), shape (L, num_bins, num_values).

    One bincount over all latents: cell = (i * num_bins + bin) * num_values + label.
    """
    num_latents = bins.shape[1]
    latent_offset = np.arange(num_latents, dtype=np.int64) * num_bins
    cells = (bins + latent_offset) * num_values + labels[:, None]
    counts = np.bincount(cells.ravel(), minlength=num_latents * num_bins * num_values)
    return counts.reshape(num_latents, num_bins, num_values)


def mig_score(codes, factors, num_bins: int = 20, *, factor_names: Sequence[str] | None = None) -> dict:
    """Mutual information gap of ``codes`` (N, L) against ``factors`` (N, K).

    Returns ``{"score", "per_factor": [K], "mi": (L, K) array in nats,
    "entropy": [K] nats}``; ``factor_names`` only improves error messages.
    A factor with zero entropy in the sample, NaN/Inf codes, mismatched N or
    non-integer factors raise :class:`disbench.errors.DisbenchError`.
    """
    num_bins = check_num_bins(num_bins)
    codes = check_codes(codes, "codes")
    factors = check_factors(factors, num_samples=codes.shape[0], factor_names=factor_names)
    entropy = factor_entropies(factors, factor_names)

    bins = histogram_bins(codes, num_bins)
    mi = np.empty((codes.shape[1], factors.shape[1]))
    for k in range(factors.shape[1]):
        labels, num_values = dense_labels(factors[:, k])
        mi[:, k] = mutual_information(binned_joint_counts(bins, labels, num_bins, num_values))
    return gap_result(mi, entropy)
