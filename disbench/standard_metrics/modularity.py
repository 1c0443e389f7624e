"""Modularity and explicitness (docs/metrics.md, metric ``modularity``).

Ridgeway & Mozer, "Learning Deep Disentangled Embeddings With the F-Statistic
Loss" (NeurIPS 2018), as disentanglement_lib computes them
(``evaluation/metrics/modularity_explicitness.py``):

* **modularity**: M (latents × factors) = discrete mutual information between
  each latent of the training codes, cut into ``num_bins`` = 20 equal-width bins
  over its own range (as ``mig``), and each factor; per latent
  θ_i = max_k M[i, k]², δ_i = (Σ_k M[i, k]² − θ_i) / (θ_i (K − 1)),
  modularity_i = 1 − δ_i (0 where θ_i = 0); modularity = mean over latents.
* **explicitness**: codes standardised with the training mean and standard
  deviation (ddof 0); per factor a ``LogisticRegression()`` (scikit-learn's
  defaults) fit on the training set; explicitness = the macro-average one-vs-rest
  ROC-AUC of ``predict_proba`` against the one-hot labels, train and test;
  the reported values are means over factors.

Where disentanglement_lib would fail or return NaN, here: a latent that is
constant in the training set is standardised by 1 instead of 0 (it stays 0);
the one-hot columns are the classifier's classes, and a class with no
positive (or no negative) example in a set is left out of that set's
macro average (disentanglement_lib raises there); with a single factor every
informative latent has modularity 1.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ._common import (check_n_jobs, check_num_bins, check_train_test, check_varied, floats, longest_first,
                      map_threads, sklearn_modules)
from .discrete import histogram_bins, mutual_information_matrix


def modularity_per_code(mi: np.ndarray) -> np.ndarray:
    """1 − δ_i of each latent from the (L, K) mutual-information matrix; 0 where θ_i = 0."""
    squared = np.square(np.asarray(mi, dtype=np.float64))
    theta = squared.max(axis=1)
    num_factors = squared.shape[1]
    if num_factors == 1:
        return np.where(theta > 0, 1.0, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (squared.sum(axis=1) - theta) / (theta * (num_factors - 1.0))
    return np.where(theta > 0, 1.0 - delta, 0.0)


def standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train − mean) / std and (test − mean) / std with the training mean and std
    (ddof 0); a constant latent is divided by 1."""
    train = train.astype(np.float64)
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (test.astype(np.float64) - mean) / std


def macro_roc_auc(labels: np.ndarray, probabilities: np.ndarray, classes: np.ndarray) -> float:
    """Mean over ``classes`` of the one-vs-rest ROC-AUC of column c of ``probabilities``,
    over the classes with both positive and negative examples in ``labels``."""
    metrics = sklearn_modules()[3]
    one_hot = labels[:, None] == classes[None, :]
    usable = one_hot.any(axis=0) & ~one_hot.all(axis=0)
    if not usable.any():
        return float("nan")
    return float(np.mean([metrics.roc_auc_score(one_hot[:, c], probabilities[:, c])
                          for c in np.flatnonzero(usable)]))


def explicitness(codes_train, factors_train, codes_test, factors_test, *, n_jobs: int | None = None):
    """(train AUC [K], test AUC [K], number of fits that stopped at max_iter)."""
    _, linear_model, _, _, _ = sklearn_modules()
    x_train, x_test = standardise(codes_train, codes_test)

    def one(k):
        classifier = linear_model.LogisticRegression().fit(x_train, factors_train[:, k])
        classes = classifier.classes_
        train = macro_roc_auc(factors_train[:, k], classifier.predict_proba(x_train), classes)
        test = macro_roc_auc(factors_test[:, k], classifier.predict_proba(x_test), classes)
        return k, train, test, bool(np.max(classifier.n_iter_) >= classifier.max_iter)

    num_factors = factors_train.shape[1]
    order = longest_first([len(np.unique(factors_train[:, k])) for k in range(num_factors)])
    train_auc, test_auc = np.zeros(num_factors), np.zeros(num_factors)
    stopped = 0
    for k, train, test, at_limit in map_threads(one, order, n_jobs):
        train_auc[k], test_auc[k] = train, test
        stopped += at_limit
    return train_auc, test_auc, stopped


def modularity_explicitness_score(codes_train, factors_train, codes_test, factors_test, num_bins: int = 20, *,
                                  n_jobs: int | None = None, factor_names: Sequence[str] | None = None) -> dict:
    """Modularity and explicitness of ``codes_train`` / ``codes_test`` (N, L) against their factors (N, K).

    Returns ``{"score": modularity, "per_factor": [explicitness on the test set
    per factor], "modularity", "explicitness_train", "explicitness_test",
    "modularity_per_code": [L], "explicitness_train_per_factor": [K], "mi":
    (L, K) array in nats, "fits_at_max_iter"}``.
    """
    num_bins = check_num_bins(num_bins)
    n_jobs = check_n_jobs(n_jobs)
    codes_train, factors_train, codes_test, factors_test = check_train_test(
        codes_train, factors_train, codes_test, factors_test)
    check_varied(factors_train, "training sample", factor_names)
    mi = mutual_information_matrix(histogram_bins(codes_train, num_bins), factors_train)
    per_code = modularity_per_code(mi)
    train_auc, test_auc, stopped = explicitness(codes_train, factors_train, codes_test, factors_test, n_jobs=n_jobs)
    modularity = float(np.mean(per_code))
    return {
        "score": modularity,
        "per_factor": floats(test_auc),
        "modularity": modularity,
        "explicitness_train": float(np.mean(train_auc)),
        "explicitness_test": float(np.mean(test_auc)),
        "modularity_per_code": floats(per_code),
        "explicitness_train_per_factor": floats(train_auc),
        "mi": mi,
        "num_bins": num_bins,
        "fits_at_max_iter": int(stopped),
    }
