"""disentanglement_lib's MIG, loop for loop: the slow form :func:`mig_score` must equal.

Kept beside the fast metric so the exactness tests and ``benchmarks/bench_metrics.py``
compare against one and the same reference. Needs scikit-learn.
"""

from __future__ import annotations

import numpy as np


def disentanglement_lib_mig(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> dict:
    """Histogram discretizer per latent, ``mutual_info_score`` per (latent, factor),
    entropy as ``mutual_info_score(y, y)``. Returns score, per_factor, mi (L, K),
    entropy (K) and the discretized codes (L, N)."""
    from sklearn.metrics import mutual_info_score

    mus, ys = codes.T, factors.T
    discretized = np.zeros_like(mus)
    for i in range(mus.shape[0]):
        discretized[i] = np.digitize(mus[i], np.histogram(mus[i], num_bins)[1][:-1])
    mi = np.array([[mutual_info_score(ys[j], discretized[i]) for j in range(ys.shape[0])]
                   for i in range(mus.shape[0])])
    entropy = np.array([mutual_info_score(ys[j], ys[j]) for j in range(ys.shape[0])])
    ordered = np.sort(mi, axis=0)[::-1]
    per_factor = (ordered[0] - ordered[1]) / entropy
    return {"score": float(np.mean(per_factor)), "per_factor": per_factor, "mi": mi,
            "entropy": entropy, "discretized": discretized}
