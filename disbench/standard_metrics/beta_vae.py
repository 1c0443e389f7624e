"""The BetaVAE score (docs/metrics.md, metric ``betavae_score``).

Higgins et al., "β-VAE: Learning Basic Visual Concepts with a Constrained
Variational Framework" (ICLR 2017), as disentanglement_lib computes it
(``evaluation/metrics/beta_vae.py``, the scikit-learn form): each point picks a
factor k uniformly and two batches of ``batch_size`` = 64 images whose factor
k agrees pairwise (the other factors drawn independently); its feature is the
mean over the batch of |c1 − c2| and its label k. A
``LogisticRegression(random_state=seed)`` (scikit-learn's defaults otherwise)
is fit on ``num_train`` = 10,000 points; the score is its accuracy on
``num_eval`` = 5,000 new points. Batches are index arithmetic on codes encoded
once (:mod:`.sampling`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import DisbenchError
from ._common import (check_codes, check_factors, check_positive_int, floats, quiet_convergence,
                      single_threaded_libraries, sklearn_modules, stream_rng)
from .sampling import FactorLookup

_CHUNK = 2048


def features_of(codes: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """(n, L): mean over the batch of |c1 − c2| for index pairs (n, 2, B)."""
    out = np.empty((len(pairs), codes.shape[1]))
    for start in range(0, len(pairs), _CHUNK):
        chunk = pairs[start:start + _CHUNK]
        first = codes[chunk[:, 0]].astype(np.float64)
        second = codes[chunk[:, 1]].astype(np.float64)
        out[start:start + _CHUNK] = np.mean(np.abs(first - second), axis=1)
    return out


def beta_vae_score(codes, factors, factor_sizes: Sequence[int] | None = None, *, batch_size: int = 64,
                   num_train: int = 10000, num_eval: int = 5000, seed: int = 0) -> dict:
    """The BetaVAE score of ``codes`` (N, L), the codes of **every** image of a
    dataset whose factors are ``factors`` (N, K).

    Random numbers: ``default_rng([seed, crc32("betavae_score")])``; the
    classifier's ``random_state`` is ``seed``. Returns ``{"score": eval
    accuracy, "per_factor": [eval accuracy on the points of each factor],
    "train_accuracy", "eval_accuracy", "fits_at_max_iter"}``.
    """
    codes = check_codes(codes, "codes")
    factors = check_factors(factors, "factors", num_samples=codes.shape[0])
    batch_size = check_positive_int(batch_size, "batch_size")
    num_train = check_positive_int(num_train, "num_train")
    num_eval = check_positive_int(num_eval, "num_eval")
    if factors.shape[1] < 2:
        raise DisbenchError("the BetaVAE score classifies which factor a batch pair shares: it needs at least "
                            f"2 factors, and there is {factors.shape[1]}")
    _, linear_model, _, _, _ = sklearn_modules()
    lookup = FactorLookup(factors, factor_sizes)
    rng = stream_rng(seed, "betavae_score")

    train_labels, train_pairs = lookup.fixed_factor_batches(num_train, batch_size, rng, pairs=True)
    train_points = features_of(codes, train_pairs)
    if len(np.unique(train_labels)) < 2:
        raise DisbenchError(f"num_train = {num_train} points drew a single factor: use more points")
    eval_labels, eval_pairs = lookup.fixed_factor_batches(num_eval, batch_size, rng, pairs=True)
    eval_points = features_of(codes, eval_pairs)

    with single_threaded_libraries(), quiet_convergence():
        model = linear_model.LogisticRegression(random_state=seed).fit(train_points, train_labels)
        train_predicted = model.predict(train_points)
        eval_predicted = model.predict(eval_points)
    per_factor = [float(np.mean(eval_predicted[eval_labels == k] == k)) if np.any(eval_labels == k) else float("nan")
                  for k in range(factors.shape[1])]
    eval_accuracy = float(np.mean(eval_predicted == eval_labels))
    return {"score": eval_accuracy, "per_factor": floats(per_factor),
            "train_accuracy": float(np.mean(train_predicted == train_labels)), "eval_accuracy": eval_accuracy,
            "fits_at_max_iter": int(np.max(model.n_iter_) >= model.max_iter)}
