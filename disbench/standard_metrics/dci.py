"""DCI: disentanglement, completeness, informativeness (docs/metrics.md, metric ``dci``).

Eastwood & Williams, "A Framework for the Quantitative Evaluation of
Disentangled Representations" (ICLR 2018), as disentanglement_lib computes it
(``evaluation/metrics/dci.py``): one gradient-boosted classifier per factor,
the importance matrix R (latents × factors) from its feature importances,

    D_i = 1 - H_K(R[i, :] + 1e-11),  disentanglement = Σ_i ρ_i D_i,  ρ_i = ΣR[i, :] / ΣR
    C_k = 1 - H_L(R[:, k] + 1e-11),  completeness    = Σ_k ω_k C_k,  ω_k = ΣR[:, k] / ΣR

(H_B the entropy in base B of the normalised vector; uniform weights when
ΣR = 0), and informativeness = the classifiers' mean accuracy, train and test.

Backends: ``"gbt"`` (default, disentanglement_lib's):
``GradientBoostingClassifier(random_state=seed)`` with scikit-learn's defaults,
importance = |feature_importances_| (mean decrease in impurity).
``"hist"``: ``HistGradientBoostingClassifier(max_depth=3, max_leaf_nodes=None,
early_stopping=False, random_state=seed)`` — the default's 100 stages of
depth-3 trees at learning rate 0.1, on binned codes (255 bins) — and, as
importance, the total split gain of each latent over all its trees,
normalised to sum 1 per factor like the impurity importances. Much faster,
not identical (docs/metrics.md gives the measured agreement).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import DisbenchError
from ._common import check_n_jobs, check_train_test, check_varied, floats, longest_first, map_threads, sklearn_modules

BACKENDS = ("gbt", "hist")
EPSILON = 1e-11  # disentanglement_lib adds it to every importance before the entropies


def entropy_base(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    """``scipy.stats.entropy(p, base=base, axis=axis)``: p normalised along ``axis``."""
    p = np.asarray(p, dtype=np.float64)
    p = p / p.sum(axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return terms.sum(axis=axis) / np.log(base)


def disentanglement_per_code(importance: np.ndarray) -> np.ndarray:
    """D_i = 1 - H_K(R[i, :] + 1e-11) for each latent i (K = number of factors)."""
    if importance.shape[1] < 2:  # log base 1: one factor is trivially "disentangled"
        return np.ones(importance.shape[0])
    return 1.0 - entropy_base(importance + EPSILON, importance.shape[1], axis=1)


def completeness_per_factor(importance: np.ndarray) -> np.ndarray:
    """C_k = 1 - H_L(R[:, k] + 1e-11) for each factor k (L = number of latents)."""
    if importance.shape[0] < 2:
        return np.ones(importance.shape[1])
    return 1.0 - entropy_base(importance + EPSILON, importance.shape[0], axis=0)


def _weights(importance: np.ndarray, axis: int) -> np.ndarray:
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    return importance.sum(axis=axis) / importance.sum()


def disentanglement(importance: np.ndarray) -> float:
    return float(np.sum(disentanglement_per_code(importance) * _weights(importance, axis=1)))


def completeness(importance: np.ndarray) -> float:
    return float(np.sum(completeness_per_factor(importance) * _weights(importance, axis=0)))


def _fit_gbt(x_train, y_train, seed):
    ensemble = sklearn_modules()[0]
    model = ensemble.GradientBoostingClassifier(random_state=seed)
    model.fit(x_train, y_train)
    return model, np.abs(model.feature_importances_)


def _fit_hist(x_train, y_train, seed):
    ensemble = sklearn_modules()[0]
    model = ensemble.HistGradientBoostingClassifier(max_depth=3, max_leaf_nodes=None, early_stopping=False,
                                                    random_state=seed)
    model.fit(x_train, y_train)
    predictors = getattr(model, "_predictors", None)
    if predictors is None:
        raise DisbenchError("dci backend 'hist' reads the split gains of scikit-learn's "
                            "HistGradientBoostingClassifier (its _predictors), which this scikit-learn "
                            "version does not have; use backend 'gbt'")
    gains = np.zeros(x_train.shape[1])
    for per_class in predictors:
        for predictor in per_class:
            nodes = predictor.nodes
            split = ~nodes["is_leaf"].astype(bool)
            np.add.at(gains, nodes["feature_idx"][split].astype(np.int64), np.maximum(nodes["gain"][split], 0.0))
    total = gains.sum()
    return model, gains / total if total > 0 else gains


def importance_and_accuracy(codes_train, factors_train, codes_test, factors_test, *, backend: str = "gbt",
                            seed: int = 0, n_jobs: int | None = None):
    """(R (L, K), train accuracies [K], test accuracies [K]): one classifier per factor.

    ``gbt`` fits run in parallel threads, the slowest (most values) first: the
    tree builder releases the GIL. ``hist`` fits run one after another: much of
    a HistGradientBoosting fit (its per-tree Python) holds the GIL, and two
    threads made it slower than one. Both predict the training and test codes
    in one call.
    """
    fit = {"gbt": _fit_gbt, "hist": _fit_hist}[backend]
    num_factors = factors_train.shape[1]
    both = np.concatenate([codes_train, codes_test])

    def one(k):
        model, importance = fit(codes_train, factors_train[:, k], seed)
        predicted = model.predict(both)
        train = float(np.mean(predicted[:len(codes_train)] == factors_train[:, k]))
        test = float(np.mean(predicted[len(codes_train):] == factors_test[:, k]))
        return k, importance, train, test

    order = longest_first([len(np.unique(factors_train[:, k])) for k in range(num_factors)])
    importance = np.zeros((codes_train.shape[1], num_factors))
    train_acc, test_acc = np.zeros(num_factors), np.zeros(num_factors)
    for k, column, train, test in map_threads(one, order, n_jobs if backend == "gbt" else 1):
        importance[:, k], train_acc[k], test_acc[k] = column, train, test
    return importance, train_acc, test_acc


def dci_score(codes_train, factors_train, codes_test, factors_test, seed: int = 0, *, backend: str = "gbt",
              n_jobs: int | None = None, factor_names: Sequence[str] | None = None) -> dict:
    """DCI of ``codes_train`` (N, L) / ``codes_test`` against their factors (N, K).

    Returns ``{"score": disentanglement, "per_factor": [C_k], "disentanglement",
    "completeness", "informativeness_train", "informativeness_test" (mean
    accuracies, as disentanglement_lib reports them), "importance": (L, K)
    array, "disentanglement_per_code": [L], "informativeness_train_per_factor",
    "informativeness_test_per_factor": [K], "backend"}``.
    """
    if backend not in BACKENDS:
        raise DisbenchError(f"dci backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    n_jobs = check_n_jobs(n_jobs)
    codes_train, factors_train, codes_test, factors_test = check_train_test(
        codes_train, factors_train, codes_test, factors_test)
    check_varied(factors_train, "training sample", factor_names)
    importance, train_acc, test_acc = importance_and_accuracy(
        codes_train, factors_train, codes_test, factors_test, backend=backend, seed=seed, n_jobs=n_jobs)
    per_factor = completeness_per_factor(importance)
    score = disentanglement(importance)
    return {
        "score": score,
        "per_factor": floats(per_factor),
        "disentanglement": score,
        "completeness": completeness(importance),
        "informativeness_train": float(np.mean(train_acc)),
        "informativeness_test": float(np.mean(test_acc)),
        "importance": importance,
        "disentanglement_per_code": floats(disentanglement_per_code(importance)),
        "informativeness_train_per_factor": floats(train_acc),
        "informativeness_test_per_factor": floats(test_acc),
        "backend": backend,
    }
