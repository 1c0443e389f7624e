"""disentanglement_lib's histogram discretiser and discrete mutual information, vectorised.

* :func:`histogram_bins` — each latent cut into ``num_bins`` equal-width bins
  over its own observed [min, max] (``np.histogram`` edges in the codes' dtype,
  ``np.digitize`` against all but the last edge), 0-based;
* :func:`mutual_information_matrix` — I(a_i; b_j) in nats for every pair of
  columns of two integer arrays, what ``sklearn.metrics.mutual_info_score``
  gives pair by pair (clamped at 0), from one ``np.bincount`` per column of b.
"""

from __future__ import annotations

import numpy as np


def histogram_bins(codes: np.ndarray, num_bins: int) -> np.ndarray:
    """0-based histogram bin of each code, (N, L) int64 in ``range(num_bins)``.

    ``searchsorted(edges[1:-1], x, side="right")`` equals disentanglement_lib's
    ``np.digitize(x, edges[:-1]) - 1`` for every x in [min, max]. A latent whose
    range holds fewer than ``num_bins`` representable values (collapsed up to
    rounding; numpy, and so disentanglement_lib, raises there) is put in one
    bin: it carries no information.
    """
    by_latent = np.ascontiguousarray(np.asarray(codes).T)
    bins = np.zeros(by_latent.shape, dtype=np.int64)
    for i, values in enumerate(by_latent):  # a loop over latents: O(N) vectorised work each
        try:
            edges = np.histogram_bin_edges(values, num_bins)
        except ValueError:  # "Too many bins for data range"
            continue
        bins[i] = np.searchsorted(edges[1:-1], values, side="right")
    return bins.T


def dense(column: np.ndarray) -> tuple[np.ndarray, int]:
    """Non-negative integer labels as they are when small, renumbered when sparse."""
    top = int(column.max()) if column.size else 0
    if top < max(len(column), 1024):
        return column.astype(np.int64, copy=False), top + 1
    _, labels = np.unique(column, return_inverse=True)
    labels = labels.reshape(-1).astype(np.int64)
    return labels, int(labels.max()) + 1


def mutual_information_from_counts(joint: np.ndarray) -> np.ndarray:
    """I in nats of each table ``joint[..., a, b]`` of counts (0 log 0 = 0), clamped at 0."""
    joint = np.asarray(joint, dtype=np.float64)
    total = joint.sum(axis=(-2, -1), keepdims=True)
    p = joint / total
    pa = p.sum(axis=-1, keepdims=True)
    pb = p.sum(axis=-2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = p * (np.log(p) - np.log(pa) - np.log(pb))
    return np.maximum(np.sum(np.where(p > 0, terms, 0.0), axis=(-2, -1)), 0.0)


def mutual_information_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) matrix of I(a[:, i]; b[:, j]) in nats for non-negative integer arrays
    a (N, A) and b (N, B)."""
    a_labels, a_sizes = zip(*(dense(a[:, i]) for i in range(a.shape[1])))
    width = max(a_sizes)
    a_all = np.stack(a_labels, axis=1)  # (N, A)
    offsets = np.arange(a.shape[1], dtype=np.int64) * width
    out = np.empty((a.shape[1], b.shape[1]))
    for j in range(b.shape[1]):
        labels, size = dense(b[:, j])
        cells = ((a_all + offsets) * size + labels[:, None]).ravel()
        counts = np.bincount(cells, minlength=a.shape[1] * width * size).reshape(a.shape[1], width, size)
        out[:, j] = mutual_information_from_counts(counts)
    return out


def entropy(column: np.ndarray) -> float:
    """Empirical entropy in nats of one integer column."""
    counts = np.bincount(dense(column)[0])
    p = counts[counts > 0] / column.size
    return float(-np.sum(p * np.log(p)))
