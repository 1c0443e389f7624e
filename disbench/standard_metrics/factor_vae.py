"""The FactorVAE score (docs/metrics.md, metric ``factorvae_score``).

Kim & Mnih, "Disentangling by Factorising" (ICML 2018), as disentanglement_lib
computes it (``evaluation/metrics/factor_vae.py``):

1. global variance of each latent over ``num_variance_estimate`` = 10,000 random
   images (ddof 1); a latent is active when its standard deviation is at least
   ``prune_threshold`` = 0.05;
2. a vote: pick a factor k uniformly, draw a batch of ``batch_size`` = 64 images
   whose factor k is one shared value, and vote (k, the active latent with the
   smallest variance in the batch (ddof 1) divided by its global variance);
3. ``num_train`` = 10,000 votes give each latent its majority factor; the
   score is the accuracy of that majority-vote classifier on ``num_eval`` =
   5,000 new votes (``train_accuracy`` on the training votes). No active latent:
   every accuracy is 0.

``num_active_dims`` is the number of active latents; disentanglement_lib
reports the number of latents instead (``len`` of its boolean mask).
Batches are index arithmetic on codes encoded once (:mod:`.sampling`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import DisbenchError
from ._common import check_codes, check_factors, check_positive_int, floats, stream_rng
from .sampling import FactorLookup

_CHUNK = 2048  # votes whose batches are gathered at once (2048 × 64 × L float64)


def global_variances(codes: np.ndarray, indices: np.ndarray) -> np.ndarray:
    return np.var(codes[indices].astype(np.float64), axis=0, ddof=1)


def votes_of(codes: np.ndarray, k: np.ndarray, batches: np.ndarray, variances: np.ndarray,
             active: np.ndarray, num_factors: int) -> np.ndarray:
    """(K, L) vote counts: for each batch (n, B) of indices, its factor k and the
    active latent with the smallest batch variance / global variance."""
    active_idx = np.flatnonzero(active)
    votes = np.zeros((num_factors, codes.shape[1]), dtype=np.int64)
    for start in range(0, len(k), _CHUNK):
        batch_codes = codes[batches[start:start + _CHUNK]][..., active_idx].astype(np.float64)  # (n, B, A)
        ratio = np.var(batch_codes, axis=1, ddof=1) / variances[active_idx]
        latent = active_idx[np.argmin(ratio, axis=1)]
        np.add.at(votes, (k[start:start + _CHUNK], latent), 1)
    return votes


def majority_accuracy(votes: np.ndarray, classifier: np.ndarray) -> tuple[float, np.ndarray]:
    """(accuracy of predicting factor ``classifier[l]`` for a vote on latent l,
    accuracy on the votes of each factor)."""
    correct = votes[classifier, np.arange(votes.shape[1])]  # votes on latent l for its majority factor
    total = votes.sum()
    per_factor = np.zeros(votes.shape[0])
    for k in range(votes.shape[0]):
        cast = votes[k].sum()
        per_factor[k] = votes[k, classifier == k].sum() / cast if cast else np.nan
    return (float(correct.sum() / total) if total else 0.0), per_factor


def factor_vae_score(codes, factors, factor_sizes: Sequence[int] | None = None, *, batch_size: int = 64,
                     num_train: int = 10000, num_eval: int = 5000, num_variance_estimate: int = 10000,
                     prune_threshold: float = 0.05, seed: int = 0) -> dict:
    """The FactorVAE score of ``codes`` (N, L), the codes of **every** image of a
    dataset whose factors are ``factors`` (N, K).

    ``factor_sizes`` (default: largest value + 1 per factor) is the range each
    factor value is drawn from. Random numbers: ``default_rng([seed, crc32("factorvae_score")])``.
    Returns ``{"score": eval accuracy, "per_factor": [eval accuracy on the votes
    of each factor], "train_accuracy", "eval_accuracy", "num_active_dims",
    "active": [L bools], "global_variances": [L], "votes_train", "votes_eval":
    (K, L) arrays, "majority_factor": [L]}``.
    """
    codes = check_codes(codes, "codes")
    factors = check_factors(factors, "factors", num_samples=codes.shape[0])
    batch_size = check_positive_int(batch_size, "batch_size")
    if batch_size < 2:
        raise DisbenchError("batch_size must be at least 2: a batch's variance needs two codes")
    num_train = check_positive_int(num_train, "num_train")
    num_eval = check_positive_int(num_eval, "num_eval")
    num_variance_estimate = check_positive_int(num_variance_estimate, "num_variance_estimate")
    if num_variance_estimate < 2:
        raise DisbenchError("num_variance_estimate must be at least 2")
    if not float(prune_threshold) >= 0:
        raise DisbenchError(f"prune_threshold must be >= 0, got {prune_threshold!r}")
    lookup = FactorLookup(factors, factor_sizes)
    rng = stream_rng(seed, "factorvae_score")
    num_factors = factors.shape[1]

    variance_indices = lookup.indices(lookup.sample_factors((num_variance_estimate,), rng), rng)
    variances = global_variances(codes, variance_indices)
    active = np.sqrt(variances) >= prune_threshold
    out = {"global_variances": floats(variances), "active": [bool(a) for a in active],
           "num_active_dims": int(active.sum())}
    if not active.any():
        return {"score": 0.0, "per_factor": [0.0] * num_factors, "train_accuracy": 0.0, "eval_accuracy": 0.0,
                **out, "votes_train": np.zeros((num_factors, codes.shape[1]), dtype=np.int64),
                "votes_eval": np.zeros((num_factors, codes.shape[1]), dtype=np.int64),
                "majority_factor": [0] * codes.shape[1]}

    k_train, batches_train = lookup.fixed_factor_batches(num_train, batch_size, rng)
    train_votes = votes_of(codes, k_train, batches_train, variances, active, num_factors)
    classifier = np.argmax(train_votes, axis=0)  # each latent's majority factor (the first on a tie)
    train_accuracy, _ = majority_accuracy(train_votes, classifier)
    k_eval, batches_eval = lookup.fixed_factor_batches(num_eval, batch_size, rng)
    eval_votes = votes_of(codes, k_eval, batches_eval, variances, active, num_factors)
    eval_accuracy, per_factor = majority_accuracy(eval_votes, classifier)
    return {"score": eval_accuracy, "per_factor": floats(per_factor), "train_accuracy": train_accuracy,
            "eval_accuracy": eval_accuracy, **out, "votes_train": train_votes, "votes_eval": eval_votes,
            "majority_factor": [int(c) for c in classifier]}
