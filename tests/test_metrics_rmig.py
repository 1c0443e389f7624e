"""rmig_score (docs/metrics.md ``rmig``, Do & Tran 2020) against a per-sample dense form."""

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import norm
from sklearn.metrics import mutual_info_score

from disbench.errors import DisbenchError
from dvae_plugin.metrics import rmig_score
from dvae_plugin.metrics.rmig import bin_posteriors

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels


def reference_posterior(mu, logvar, num_bins=100, lo=-4.0, hi=4.0):
    """Q(s|x) for one scalar posterior, straight from the definition."""
    edges = np.linspace(lo, hi, num_bins + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, (hi - lo) / num_bins
    values = norm.pdf(centres, loc=mu, scale=math.exp(0.5 * logvar)) * width
    if values.max() < 1e-5:
        one_hot = np.zeros(num_bins)
        one_hot[min(np.searchsorted(edges, min(max(mu, lo), hi), side="right") - 1, num_bins - 1)] = 1.0
        return one_hot
    return values / values.sum()


def reference_rmig(mu, logvar, factors, num_bins=100, lo=-4.0, hi=4.0):
    """Loop over samples and latents for Q, then the joint, marginals and MI as in docs/metrics.md."""
    mu, logvar = mu.astype(np.float64), logvar.astype(np.float64)
    n, num_latents = mu.shape
    q = np.array([[reference_posterior(mu[x, i], logvar[x, i], num_bins, lo, hi) for i in range(num_latents)]
                  for x in range(n)])
    mi = np.zeros((num_latents, factors.shape[1]))
    entropy = np.zeros(factors.shape[1])
    for k in range(factors.shape[1]):
        values = np.unique(factors[:, k])
        q_y = np.array([np.mean(factors[:, k] == v) for v in values])
        entropy[k] = -np.sum(q_y * np.log(q_y))
        for i in range(num_latents):
            joint = np.stack([q[factors[:, k] == v, i].sum(axis=0) / n for v in values], axis=1)
            q_z = joint.sum(axis=1, keepdims=True)
            nz = joint > 0
            mi[i, k] = np.sum(joint[nz] * np.log(joint[nz] / (q_z * q_y[None, :])[nz]))
    ordered = np.sort(mi, axis=0)
    per_factor = (ordered[-1] - ordered[-2]) / entropy
    return per_factor.mean(), per_factor, mi, entropy


def random_posteriors(rng, n, num_latents, factors, dtype=np.float32):
    """Means partly tied to factors, with the rows that exercise every branch:
    means outside the range (clipped), tiny σ (one-hot), huge σ (flat, so one-hot too)."""
    mu = rng.normal(size=(n, num_latents))
    mu[:, 0] += factors[:, 0] - factors[:, 0].mean()
    logvar = rng.uniform(-6, 1, size=(n, num_latents))
    mu[: n // 10, -1] = rng.choice([-1, 1], size=n // 10) * rng.uniform(4, 30, size=n // 10)
    logvar[n // 10: n // 5, 1] = -40.0
    logvar[n // 5: n // 5 + 3, 0] = 25.0
    return mu.astype(dtype), logvar.astype(dtype)


@pytest.mark.parametrize("n, num_latents, sizes, num_bins, value_range, chunk_size", [
    (40, 2, (2,), 100, (-4.0, 4.0), 1024),
    (150, 3, (3, 4), 100, (-4.0, 4.0), 7),
    (200, 4, (2, 5, 3), 20, (-2.0, 3.0), 64),
    (120, 5, (6, 4), 2, (-4.0, 4.0), 50),
])
def test_equals_dense_definition(n, num_latents, sizes, num_bins, value_range, chunk_size):
    rng = np.random.default_rng(n)
    factors = rng.integers(0, sizes, size=(n, len(sizes)))
    mu, logvar = random_posteriors(rng, n, num_latents, factors)
    score, per_factor, mi, entropy = reference_rmig(mu, logvar, factors, num_bins, *value_range)
    result = rmig_score(mu, logvar, factors, num_bins, value_range, chunk_size=chunk_size)
    np.testing.assert_allclose(result["mi"], mi, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result["entropy"], entropy, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result["per_factor"], per_factor, rtol=0, atol=1e-10)
    assert result["score"] == pytest.approx(score, abs=1e-10)


@settings(max_examples=30, deadline=None)
@given(
    mu=hnp.arrays(np.float64, st.tuples(st.integers(3, 25), st.integers(2, 3)), elements=st.floats(-20, 20)),
    data=st.data(),
)
def test_equals_dense_definition_property(mu, data):
    # Hypothesis mixes broad, narrow, flat and out-of-range posteriors, ties and bin edges.
    logvar = data.draw(hnp.arrays(np.float64, mu.shape, elements=st.floats(-50, 50)))
    factors = data.draw(hnp.arrays(np.int64, (mu.shape[0], 2), elements=st.integers(0, 3)))
    factors[:2] = [[0, 0], [1, 1]]
    num_bins = data.draw(st.integers(2, 40))
    _, per_factor, mi, _ = reference_rmig(mu, logvar, factors, num_bins)
    result = rmig_score(mu, logvar, factors, num_bins, chunk_size=data.draw(st.integers(1, 30)))
    np.testing.assert_allclose(result["mi"], mi, rtol=0, atol=1e-10)
    np.testing.assert_allclose(result["per_factor"], per_factor, rtol=0, atol=1e-9)


def test_posteriors_match_definition_including_fallbacks():
    edges = np.linspace(-4, 4, 101)
    mu = np.array([[0.013, 10.0, -9.5, edges[51], 3.99, 0.0, 0.3, 0.04]])
    logvar = np.array([[-3.0, 0.0, -60.0, -60.0, 0.5, 20.0, 2 * math.log(0.01), -60.0]])
    q = bin_posteriors(torch.tensor(mu), torch.tensor(logvar), torch.from_numpy(edges))[0].numpy()
    expected = np.array([reference_posterior(m, v) for m, v in zip(mu[0], logvar[0])])
    np.testing.assert_allclose(q, expected, rtol=0, atol=1e-14)
    np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-14)
    # 10 with σ = 1 peaks at ~1e-8 < 1e-5: one-hot on the last bin (μ clipped to 4).
    assert q[1, 99] == 1.0
    # Tiny σ at -9.5: clipped to -4, the first bin.
    assert q[2, 0] == 1.0
    # Tiny σ on the edge between bins 50 and 51: the upper one, as numpy.digitize.
    assert q[3, 51] == 1.0
    # σ = e^10 is flat everywhere (peak ~3e-7): one-hot on the bin holding 0.
    assert q[5, 50] == 1.0
    # σ = 0.01 at 0.3 is a proper distribution over a few bins, not a fallback.
    assert 0.5 < q[6].max() < 1.0
    # Tiny σ on a bin centre: the density there is huge, no fallback, same one-hot.
    assert q[7, 50] == 1.0


def test_perfect_code_scores_one():
    # Factor k copied into latent k: means spread over [-3, 3] (bins apart), σ = e^-5
    # = 0.0067 << bin width 0.08, so Q(z_k) identifies y_k and I_(1) = H(y_k); on the
    # full grid every other code latent is exactly independent of y_k, and the
    # broad noise latent's plug-in MI is < 1e-3 nats: RMIG > 0.99.
    sizes = (3, 6, 10, 8)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), -1).reshape(-1, 4)
    rng = np.random.default_rng(0)
    mu = np.concatenate([-3 + 6 * grid / (np.array(sizes) - 1), rng.normal(size=(len(grid), 1))], axis=1)
    logvar = np.concatenate([np.full(grid.shape, -10.0), np.zeros((len(grid), 1))], axis=1)
    result = rmig_score(mu, logvar, grid)
    assert min(result["per_factor"]) > 0.99


def test_independent_codes_score_near_zero():
    rng = np.random.default_rng(1)
    factors = rng.integers(0, (3, 8, 16), size=(5000, 3))
    mu, logvar = rng.normal(size=(5000, 6)), rng.uniform(-3, 0, size=(5000, 6))
    assert rmig_score(mu, logvar, factors)["score"] < 0.01


def test_duplicated_latent_has_zero_gap():
    rng = np.random.default_rng(2)
    factors = rng.integers(0, (4, 5), size=(800, 2))
    mu, logvar = random_posteriors(rng, 800, 3, factors)
    assert rmig_score(mu, logvar, factors)["per_factor"][0] > 0.1
    dup = rmig_score(np.concatenate([mu, mu[:, :1]], 1), np.concatenate([logvar, logvar[:, :1]], 1), factors)
    assert dup["per_factor"][0] == 0.0


def test_invariant_to_permuting_latents_and_chunking():
    rng = np.random.default_rng(3)
    factors = rng.integers(0, (3, 6), size=(600, 2))
    mu, logvar = random_posteriors(rng, 600, 5, factors)
    perm = rng.permutation(5)
    a = rmig_score(mu, logvar, factors)
    b = rmig_score(mu[:, perm], logvar[:, perm], factors, chunk_size=37)
    np.testing.assert_allclose(b["mi"], a["mi"][perm], rtol=0, atol=1e-13)
    np.testing.assert_allclose(b["per_factor"], a["per_factor"], rtol=0, atol=1e-12)


def binned_means_mi(mu, factors, num_bins=100, lo=-4.0, hi=4.0):
    """MI of (bin holding the clipped mean, factor) on the same fixed bins."""
    edges = np.linspace(lo, hi, num_bins + 1)
    bins = np.digitize(np.clip(mu, lo, hi), edges[1:-1])
    return np.array([[mutual_info_score(factors[:, k], bins[:, i]) for k in range(factors.shape[1])]
                     for i in range(mu.shape[1])])


def test_vanishing_sigma_approaches_binned_means():
    rng = np.random.default_rng(4)
    factors = rng.integers(0, (3, 5), size=(1500, 2))
    mu = np.stack([factors[:, 0] * 0.7 + 0.3 * rng.normal(size=1500), 2.5 * rng.normal(size=1500),
                   factors[:, 1] - 2 + 0.5 * rng.normal(size=1500)], axis=1)
    target = binned_means_mi(mu, factors)
    errors = []
    for sigma in (0.2, 0.05, 0.01, 1e-3, 1e-6):
        result = rmig_score(mu, np.full(mu.shape, 2 * math.log(sigma)), factors)
        errors.append(np.abs(result["mi"] - target).max())
    assert all(later < earlier for earlier, later in zip(errors[:3], errors[1:4])), errors
    assert errors[-1] < 1e-9, errors  # every posterior is one-hot on the bin holding μ


def test_means_outside_range_are_clipped():
    # A latent entirely outside [-4, 4] with tiny σ carries exactly the MI of its sign.
    rng = np.random.default_rng(5)
    factors = rng.integers(0, 4, size=(500, 1))
    sign = np.where(rng.random(500) < 0.3 + 0.1 * factors[:, 0], 1.0, -1.0)
    mu = np.stack([sign * rng.uniform(5, 50, size=500), rng.normal(size=500)], 1)
    logvar = np.stack([np.full(500, -20.0), np.zeros(500)], 1)
    result = rmig_score(mu, logvar, factors)
    assert result["mi"][0, 0] == pytest.approx(mutual_info_score(factors[:, 0], sign), abs=1e-12)


GOOD_MU = np.random.default_rng(6).normal(size=(20, 3))
GOOD_FACTORS = np.tile([[0, 1], [1, 0]], (10, 1))


@pytest.mark.parametrize("mu, logvar, factors, kwargs, message", [
    (GOOD_MU, GOOD_MU[:, :2], GOOD_FACTORS, {}, "mu and logvar must have the same shape"),
    (GOOD_MU, np.where(GOOD_MU > 1, np.nan, GOOD_MU), GOOD_FACTORS, {}, "logvar holds NaN or Inf"),
    (GOOD_MU, GOOD_MU, np.tile([[0, 1], [0, 2]], (10, 1)), {}, "'shape' (column 0) takes a single value"),
    (GOOD_MU, GOOD_MU, GOOD_FACTORS[:10], {}, "factors have 10 rows"),
    (GOOD_MU, GOOD_MU, GOOD_FACTORS + 0.5, {}, "integer factor indices"),
    (GOOD_MU, GOOD_MU, GOOD_FACTORS, {"num_bins": 1}, "num_bins must be an integer >= 2"),
    (GOOD_MU, GOOD_MU, GOOD_FACTORS, {"value_range": (4.0, -4.0)}, "value_range must be two finite numbers"),
    (GOOD_MU, GOOD_MU, GOOD_FACTORS, {"value_range": (-np.inf, 4.0)}, "value_range must be two finite numbers"),
    (GOOD_MU, GOOD_MU, GOOD_FACTORS, {"chunk_size": 0}, "chunk_size must be a positive integer"),
])
def test_bad_input_is_a_clear_error(mu, logvar, factors, kwargs, message):
    with pytest.raises(DisbenchError, match=re.escape(message)):
        rmig_score(mu, logvar, factors, factor_names=("shape", "scale"), **kwargs)


def test_extreme_log_variances_stay_finite():
    rng = np.random.default_rng(7)
    factors = rng.integers(0, 3, size=(50, 1))
    mu = rng.normal(size=(50, 2)).astype(np.float32)
    logvar = np.where(rng.random((50, 2)) < 0.5, -3e38, 3e38).astype(np.float32)
    mu[:5, 0] = 0.04  # μ exactly on a bin edge with σ = 0
    result = rmig_score(mu, logvar, factors)
    assert np.all(np.isfinite(result["mi"])) and math.isfinite(result["score"])


def test_bit_identical_whatever_the_thread_count_which_is_restored():
    rng = np.random.default_rng(8)
    factors = rng.integers(0, (3, 5), size=(700, 2))
    mu, logvar = random_posteriors(rng, 700, 4, factors)
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(rmig_score(mu, logvar, factors, chunk_size=50))
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    for other in results[1:]:
        np.testing.assert_array_equal(other["mi"], results[0]["mi"])
