"""The unsupervised scores (docs/metrics.md, metric ``unsupervised``).

As disentanglement_lib computes them (``evaluation/metrics/unsupervised_metrics.py``),
from ``num_train`` = 10,000 codes, with Σ = cov(codes) (ddof 1):

* gaussian_total_correlation = ½ (Σ_i log Σ_ii − log det Σ): the total
  correlation (KL to the product of its marginals) of a Gaussian with
  covariance Σ, in nats;
* gaussian_wasserstein_correlation = 2 tr Σ − 2 tr sqrtm(Σ ∘ diag(Σ)), with
  diag(Σ) as a column (entry (i, j) is Σ_ij Σ_ii), and its normalised form,
  divided by tr Σ. The square root's trace is Σ sqrt(λ) over the eigenvalues λ
  of diag(Σ)^½ Σ diag(Σ)^½, a symmetric matrix similar to Σ ∘ diag(Σ) (equal to
  ``scipy.linalg.sqrtm``'s trace, without its complex round-off);
* mutual_info_score = mean over latent pairs i ≠ j of the discrete mutual
  information of the two latents cut into ``num_bins`` = 20 equal-width bins
  over their own ranges (as ``mig``).

``score`` is the Gaussian total correlation (lower: less correlated codes).
A latent that is constant over the sample is independent of the others: it is
left out of the total correlation (its log-variance is −∞; disentanglement_lib
returns NaN there) and adds nothing to the Wasserstein terms.
"""

from __future__ import annotations

import numpy as np

from ..errors import DisbenchError
from ._common import check_codes, check_num_bins
from .discrete import histogram_bins, mutual_information_matrix


def gaussian_total_correlation(cov: np.ndarray) -> float:
    """½ (Σ log diag(cov) − log det cov) over the latents whose variance is > 0."""
    varying = np.diag(cov) > 0
    cov = cov[np.ix_(varying, varying)]
    if cov.size == 0:
        return 0.0
    sign, logdet = np.linalg.slogdet(cov)
    if sign <= 0:  # singular: perfectly dependent latents, infinite total correlation
        return float("inf")
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - logdet))


def trace_sqrtm_scaled(cov: np.ndarray) -> float:
    """tr sqrtm(cov ∘ diag(cov)[:, None]) as Σ sqrt(eigenvalues of D^½ cov D^½)."""
    root = np.sqrt(np.maximum(np.diag(cov), 0.0))
    eigenvalues = np.linalg.eigvalsh(root[:, None] * cov * root[None, :])
    return float(np.sum(np.sqrt(np.maximum(eigenvalues, 0.0))))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    return float(2.0 * np.trace(cov) - 2.0 * trace_sqrtm_scaled(cov))


def unsupervised_scores(codes, num_bins: int = 20) -> dict:
    """The unsupervised scores of ``codes`` (N, L), N >= 2, L >= 2.

    Returns ``{"score": gaussian_total_correlation, "per_factor": [],
    "gaussian_total_correlation", "gaussian_wasserstein_correlation",
    "gaussian_wasserstein_correlation_norm", "mutual_info_score",
    "covariance": (L, L) array, "mutual_info": (L, L) array (diagonal 0),
    "constant_latents": [indices]}``.
    """
    num_bins = check_num_bins(num_bins)
    codes = check_codes(codes, "codes")
    if codes.shape[0] < 2 or codes.shape[1] < 2:
        raise DisbenchError(f"the unsupervised scores need at least 2 codes of at least 2 latents, "
                            f"got shape {codes.shape}")
    cov = np.atleast_2d(np.cov(codes.astype(np.float64), rowvar=False, ddof=1))
    trace = float(np.trace(cov))
    wasserstein = gaussian_wasserstein_correlation(cov)
    mi = mutual_information_matrix(*(2 * (histogram_bins(codes, num_bins),)))
    np.fill_diagonal(mi, 0.0)
    num_latents = codes.shape[1]
    total_correlation = gaussian_total_correlation(cov)
    return {
        "score": total_correlation,
        "per_factor": [],
        "gaussian_total_correlation": total_correlation,
        "gaussian_wasserstein_correlation": wasserstein,
        "gaussian_wasserstein_correlation_norm": wasserstein / trace if trace > 0 else 0.0,
        "mutual_info_score": float(mi.sum() / (num_latents ** 2 - num_latents)),
        "covariance": cov,
        "mutual_info": mi,
        "constant_latents": [int(i) for i in np.flatnonzero(~(np.diag(cov) > 0))],
        "num_bins": num_bins,
    }
