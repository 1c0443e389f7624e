"""The steps every MIG-family metric shares (docs/metrics.md).

* :func:`mutual_information` — discrete mutual information, in nats, from a
  joint table of (latent bin, factor value) counts or probabilities;
* :func:`factor_entropies` — the empirical entropy of each factor;
* :func:`normalized_gap` — ``(I_(1)k - I_(2)k) / H_k``, the gap between the two
  most informative latents for factor ``k`` (Chen et al. 2018, "Isolating
  Sources of Disentanglement in Variational Autoencoders");
* :func:`gap_result` — the result dict the array functions return.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from disbench.errors import DisbenchError

from .inputs import factor_label


def dense_labels(column: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels in ``range(num_values)`` for one factor column (non-negative ints).

    Small indices are used as they are (values that never occur get an empty
    column in the joint table, which adds nothing to MI or entropy); sparse,
    large ones are renumbered so tables stay O(N) in size.
    """
    top = int(column.max())
    if top < max(len(column), 1024):
        return column, top + 1
    _, labels = np.unique(column, return_inverse=True)
    labels = labels.reshape(-1).astype(np.int64)
    return labels, int(labels.max()) + 1


def mutual_information(joint: np.ndarray) -> np.ndarray:
    """I(z_i; y) in nats for each latent ``i`` from ``joint`` of shape (L, B, V).

    ``joint[i, b, v]`` is a count or probability mass of (latent ``i`` in bin
    ``b``, factor value ``v``); each latent's table is normalised by its own
    total, and 0 log 0 = 0. The result is clamped at 0, as
    ``sklearn.metrics.mutual_info_score`` does (rounding can leave -1e-17).
    """
    joint = np.asarray(joint, dtype=np.float64)
    p = joint / joint.sum(axis=(1, 2), keepdims=True)
    p_latent = p.sum(axis=2, keepdims=True)
    p_factor = p.sum(axis=1, keepdims=True)
    # 0 log 0 = 0: cells with p = 0 give NaN or -inf below and are masked out.
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = p * (np.log(p) - np.log(p_latent) - np.log(p_factor))
    mi = np.sum(np.where(p > 0, terms, 0.0), axis=(1, 2))
    return np.maximum(mi, 0.0)


def entropy_of_counts(counts: np.ndarray) -> float:
    """Entropy in nats of the empirical distribution with these counts."""
    counts = counts[counts > 0].astype(np.float64)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def factor_entropies(factors: np.ndarray, factor_names: Sequence[str] | None = None) -> np.ndarray:
    """Empirical entropy H(y_k) in nats of each factor column of ``factors`` (N, K).

    A factor that takes one value in the sample has H = 0 and its MIG would be
    0/0: that is an error naming the factor (docs/metrics.md), not a NaN.
    """
    entropy = np.array([entropy_of_counts(np.bincount(dense_labels(factors[:, k])[0]))
                        for k in range(factors.shape[1])])
    check_informative(entropy, factor_names, "takes a single value in the sample")
    return entropy


def check_informative(entropy: np.ndarray, factor_names: Sequence[str] | None, why: str) -> None:
    """Refuse a zero normaliser, naming the factor."""
    for k in np.flatnonzero(~(entropy > 0)):
        raise DisbenchError(
            f"{factor_label(int(k), factor_names)} {why}: its entropy is 0, so its mutual "
            f"information gap is undefined; leave it out or sample more widely"
        )


def normalized_gap(mi: np.ndarray, entropy: np.ndarray) -> np.ndarray:
    """Per factor ``k``: (largest - second largest of ``mi[:, k]``) / ``entropy[k]``."""
    top_two = np.sort(mi, axis=0)[-2:]
    return (top_two[1] - top_two[0]) / entropy


def gap_result(mi: np.ndarray, entropy: np.ndarray, **details) -> dict:
    """The common result of the array functions.

    ``{"score": mean over factors, "per_factor": [K floats], "mi": (L, K)
    array, "entropy": [K floats], **details}``.
    """
    per_factor = normalized_gap(mi, entropy)
    return {
        "score": float(np.mean(per_factor)),
        "per_factor": [float(v) for v in per_factor],
        "mi": mi,
        "entropy": [float(v) for v in entropy],
        **details,
    }
