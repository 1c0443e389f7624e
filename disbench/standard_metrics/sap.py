"""SAP, the separated attribute predictability (docs/metrics.md, metric ``sap``).

Kumar, Sattigeri & Balakrishnan, "Variational Inference of Disentangled
Latent Concepts from Unlabeled Observations" (ICLR 2018), as disentanglement_lib
computes it (``evaluation/metrics/sap_score.py``). A score matrix S (latents ×
factors):

* discrete factors (default): for each (latent i, factor k) a
  ``LinearSVC(C=0.01, class_weight="balanced", random_state=seed)`` fit on the
  single column ``codes_train[:, i]`` to ``factors_train[:, k]``; S[i, k] = its
  accuracy on the test set. liblinear's dual solver is used (``dual=True``, the
  default of the scikit-learn disentanglement_lib was written for; newer
  versions choose the primal for these shapes, which reaches the same optimum);
* ``continuous_factors=True``: S[i, k] = cov(c_i, f_k)² / (var c_i · var f_k)
  on the training set (ddof 1), and 0 where var c_i ≤ 1e-12.

Score = mean over factors of the gap between the two largest S[:, k].
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import DisbenchError
from ._common import check_n_jobs, check_train_test, check_varied, floats, longest_first, map_threads, sklearn_modules

C = 0.01
VARIANCE_FLOOR = 1e-12


def top_two_gap(matrix: np.ndarray) -> np.ndarray:
    """Per column: largest minus second largest entry."""
    ordered = np.sort(matrix, axis=0)
    return ordered[-1] - ordered[-2]


def continuous_score_matrix(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """S[i, k] = cov(c_i, f_k)² / (var c_i · var f_k), ddof 1; 0 where var c_i <= 1e-12."""
    codes = codes.astype(np.float64)
    factors = factors.astype(np.float64)
    n = codes.shape[0]
    dc = codes - codes.mean(axis=0)
    df = factors - factors.mean(axis=0)
    cov = dc.T @ df / (n - 1)
    var_c = np.sum(dc * dc, axis=0) / (n - 1)
    var_f = np.sum(df * df, axis=0) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = cov ** 2 / (var_c[:, None] * var_f[None, :])
    return np.where(var_c[:, None] > VARIANCE_FLOOR, score, 0.0)


def discrete_score_matrix(codes_train, factors_train, codes_test, factors_test, *, seed: int = 0,
                          n_jobs: int | None = None) -> tuple[np.ndarray, int]:
    """(S, number of fits that stopped at max_iter): S[i, k] = test accuracy of a
    LinearSVC on latent i alone predicting factor k."""
    svm = sklearn_modules()[2]
    num_latents, num_factors = codes_train.shape[1], factors_train.shape[1]

    def one(pair):
        i, k = pair
        classifier = svm.LinearSVC(C=C, class_weight="balanced", random_state=seed, dual=True)
        classifier.fit(codes_train[:, i:i + 1], factors_train[:, k])  # at max_iter: counted, not warned
        accuracy = float(np.mean(classifier.predict(codes_test[:, i:i + 1]) == factors_test[:, k]))
        return accuracy, bool(np.max(classifier.n_iter_) >= classifier.max_iter)

    pairs = [(i, k) for k in range(num_factors) for i in range(num_latents)]
    order = longest_first([len(np.unique(factors_train[:, k])) for _, k in pairs])
    fits = map_threads(one, [pairs[j] for j in order], n_jobs)
    matrix = np.zeros((num_latents, num_factors))
    for j, (accuracy, _) in zip(order, fits):
        matrix[pairs[j]] = accuracy
    return matrix, sum(stopped for _, stopped in fits)


def sap_score(codes_train, factors_train, codes_test, factors_test, continuous_factors: bool = False, seed: int = 0,
              *, n_jobs: int | None = None, factor_names: Sequence[str] | None = None) -> dict:
    """SAP of ``codes_train`` (N, L) / ``codes_test`` against their factors (N, K).

    Returns ``{"score", "per_factor": [K gaps], "score_matrix": (L, K) array,
    "continuous_factors", "fits_at_max_iter"}`` (the LinearSVC fits that stopped
    at liblinear's iteration limit). The test set is not used when
    ``continuous_factors`` (as in disentanglement_lib), but is still checked.
    """
    if not isinstance(continuous_factors, (bool, np.bool_)):
        raise DisbenchError(f"sap continuous_factors must be True or False, got {continuous_factors!r}")
    n_jobs = check_n_jobs(n_jobs)
    codes_train, factors_train, codes_test, factors_test = check_train_test(
        codes_train, factors_train, codes_test, factors_test)
    if codes_train.shape[1] < 2:
        raise DisbenchError(f"codes have {codes_train.shape[1]} latent dimension; SAP's gap needs at least 2")
    check_varied(factors_train, "training sample", factor_names)
    stopped = 0
    if continuous_factors:
        matrix = continuous_score_matrix(codes_train, factors_train)
    else:
        matrix, stopped = discrete_score_matrix(codes_train, factors_train, codes_test, factors_test, seed=seed,
                                                n_jobs=n_jobs)
    per_factor = top_two_gap(matrix)
    return {"score": float(np.mean(per_factor)), "per_factor": floats(per_factor), "score_matrix": matrix,
            "continuous_factors": bool(continuous_factors), "fits_at_max_iter": int(stopped)}
