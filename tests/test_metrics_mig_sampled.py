"""mig_sampled_score (docs/metrics.md ``mig_sampled``, Chen et al. 2018's estimator)."""

import math
import re

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import norm

from disbench.errors import DisbenchError
from dvae_plugin.metrics import mig_sampled_score
from dvae_plugin.metrics.mig_sampled import mixture_entropy

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels


def reference_entropy(samples, mu, logvar):
    """-mean_s log((1/n) Σ_n N(z_s; μ_n, σ_n)) per latent, with the full (S, n, L) tensor."""
    log_q = norm.logpdf(samples[:, None, :], mu[None], np.exp(0.5 * logvar)[None])
    return -np.mean(logsumexp(log_q, axis=1) - math.log(mu.shape[0]), axis=0)


def reference_mig_sampled(mu, logvar, factors, sizes, seed):
    """The estimator when S >= N, so every image is a sample and no subset is drawn:
    z = μ + σ ε with ε the seed's first (N, L) standard normals."""
    mu, logvar = mu.astype(np.float64), logvar.astype(np.float64)
    z = mu + np.exp(0.5 * logvar) * np.random.default_rng(seed).standard_normal(mu.shape)
    marginal = reference_entropy(z, mu, logvar)
    conditional = np.zeros((mu.shape[1], factors.shape[1]))
    for k in range(factors.shape[1]):
        for v in np.unique(factors[:, k]):
            m = factors[:, k] == v
            conditional[:, k] += m.mean() * reference_entropy(z[m], mu[m], logvar[m])
    mi = np.maximum(marginal[:, None] - conditional, 0)
    ordered = np.sort(mi, axis=0)
    per_factor = (ordered[-1] - ordered[-2]) / np.log(sizes)
    return per_factor.mean(), per_factor, mi, marginal, conditional


def grid(sizes):
    return np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), -1).reshape(-1, len(sizes))


@pytest.mark.parametrize("sample_chunk, component_chunk", [(64, 1024), (5, 7), (1, 1000)])
def test_mixture_entropy_equals_dense_logsumexp(sample_chunk, component_chunk):
    rng = np.random.default_rng(0)
    mu, logvar = rng.normal(size=(90, 3)), rng.uniform(-8, 2, size=(90, 3))
    samples = mu[:40] + np.exp(0.5 * logvar[:40]) * rng.normal(size=(40, 3))
    got = mixture_entropy(*(torch.from_numpy(a) for a in (samples, mu, logvar)),
                          sample_chunk=sample_chunk, component_chunk=component_chunk)
    np.testing.assert_allclose(got, reference_entropy(samples, mu, logvar), rtol=0, atol=1e-12)


def test_mixture_entropy_is_stable_where_densities_underflow():
    # Samples ~40σ from every component: each density underflows to 0 in float64,
    # the log-sum-exp does not.
    mu, logvar = np.zeros((4, 1)), np.full((4, 1), -10.0)
    samples = np.array([[0.27], [-0.3]])
    got = mixture_entropy(*(torch.from_numpy(a) for a in (samples, mu, logvar)))
    np.testing.assert_allclose(got, reference_entropy(samples, mu, logvar), rtol=1e-12)


@pytest.mark.parametrize("sizes, num_latents, seed, balanced", [
    ((2, 3), 2, 0, True), ((3, 4, 2), 4, 1, True), ((5,), 3, 2, True), ((3, 4), 3, 3, False),
])
def test_equals_reference_when_every_image_is_a_sample(sizes, num_latents, seed, balanced):
    # Unbalanced factors tell frequency weights ("averaged over values") from plain ones.
    rng = np.random.default_rng(10 + seed)
    factors = np.tile(grid(sizes), (3, 1))
    if not balanced:
        factors = np.minimum(rng.geometric(0.4, size=(60, len(sizes))) - 1, np.array(sizes) - 1)
    factors = factors[rng.permutation(len(factors))]
    mu = rng.normal(size=(len(factors), num_latents)).astype(np.float32)
    mu[:, 0] += factors[:, 0]
    logvar = rng.uniform(-5, 1, size=mu.shape).astype(np.float32)
    score, per_factor, mi, marginal, conditional = reference_mig_sampled(mu, logvar, factors, sizes, seed)
    result = mig_sampled_score(mu, logvar, factors, sizes, num_entropy_samples=len(factors), seed=seed)
    np.testing.assert_allclose(result["marginal_entropy"], marginal, rtol=0, atol=1e-10)
    np.testing.assert_allclose(result["conditional_entropy"], conditional, rtol=0, atol=1e-10)
    np.testing.assert_allclose(result["mi"], mi, rtol=0, atol=1e-10)
    np.testing.assert_allclose(result["per_factor"], per_factor, rtol=0, atol=1e-10)
    np.testing.assert_allclose(result["entropy"], np.log(sizes), rtol=0, atol=1e-15)
    assert result["score"] == pytest.approx(score, abs=1e-10)


def perfect_code(sizes, copies=4, seed=0):
    """Factor k in latent k (2 units apart, σ = e^-4 = 0.02) plus one broad noise latent."""
    factors = np.tile(grid(sizes), (copies, 1))
    rng = np.random.default_rng(seed)
    mu = np.concatenate([2.0 * factors, rng.normal(size=(len(factors), 1))], axis=1)
    logvar = np.concatenate([np.full(factors.shape, -8.0), np.zeros((len(factors), 1))], axis=1)
    return mu, logvar, factors


def test_perfect_code_scores_high():
    # With every image a sample, the marginal and conditional estimates average the same
    # log-densities, so I(z_k; v_k) = log|v_k| up to Gaussian tails 2 units / 0.018 σ away.
    # The gap is diluted only by the noise latent's estimator bias (a mixture of n/|v|
    # vs n broad components): ~0.03 here. A subset of S < N samples adds ~0.05 nats of
    # sampling noise to each entropy.
    sizes = (3, 4, 5)
    mu, logvar, factors = perfect_code(sizes)
    exact = mig_sampled_score(mu, logvar, factors, sizes, num_entropy_samples=len(mu), seed=0)
    np.testing.assert_allclose(np.diag(exact["mi"]), np.log(sizes), rtol=0, atol=1e-9)
    assert min(exact["per_factor"]) > 0.95
    sampled = mig_sampled_score(mu, logvar, factors, sizes, num_entropy_samples=100, seed=0)
    assert min(sampled["per_factor"]) > 0.9


def test_noise_code_scores_near_zero():
    sizes = (3, 4, 5)
    factors = np.tile(grid(sizes), (8, 1))
    rng = np.random.default_rng(1)
    mu, logvar = rng.normal(size=(len(factors), 5)), np.full((len(factors), 5), -1.0)
    result = mig_sampled_score(mu, logvar, factors, sizes, num_entropy_samples=300, seed=0)
    assert result["score"] < 0.03


def test_deterministic_for_a_seed_and_varies_with_it():
    mu, logvar, factors = perfect_code((3, 4), copies=20)
    mu = mu + np.random.default_rng(2).normal(size=mu.shape)
    logvar = logvar + 7
    a = mig_sampled_score(mu, logvar, factors, (3, 4), num_entropy_samples=50, seed=5)
    b = mig_sampled_score(mu, logvar, factors, (3, 4), num_entropy_samples=50, seed=5)
    c = mig_sampled_score(mu, logvar, factors, (3, 4), num_entropy_samples=50, seed=6)
    assert a["per_factor"] == b["per_factor"] and a["marginal_entropy"] == b["marginal_entropy"]
    assert a["marginal_entropy"] != c["marginal_entropy"]


def test_subsampled_estimate_is_close_to_the_full_one():
    mu, logvar, factors = perfect_code((3, 4), copies=25, seed=3)
    mu = mu + 0.5 * np.random.default_rng(3).normal(size=mu.shape)
    logvar = logvar + 6
    full = mig_sampled_score(mu, logvar, factors, (3, 4), num_entropy_samples=len(mu), seed=0)
    sub = mig_sampled_score(mu, logvar, factors, (3, 4), num_entropy_samples=100, seed=0)
    np.testing.assert_allclose(sub["marginal_entropy"], full["marginal_entropy"], atol=0.15)
    assert sub["score"] == pytest.approx(full["score"], abs=0.05)


def test_absent_factor_values_get_no_weight():
    # Value 2 of a 3-valued factor never occurs: weights are frequencies, normaliser log 3.
    sizes = (3, 4)
    mu, logvar, factors = perfect_code((2, 4))
    result = mig_sampled_score(mu, logvar, factors, sizes, num_entropy_samples=100, seed=0)
    assert result["entropy"][0] == pytest.approx(math.log(3))
    assert result["mi"][0, 0] == pytest.approx(math.log(2), abs=0.02)


GOOD_MU = np.random.default_rng(6).normal(size=(20, 3))
GOOD_FACTORS = np.tile([[0, 1], [1, 0]], (10, 1))


@pytest.mark.parametrize("logvar, factors, sizes, kwargs, message", [
    (GOOD_MU, GOOD_FACTORS, (2,), {}, "factor_sizes must be 2 integers"),
    (GOOD_MU, GOOD_FACTORS, (2.0, 2.0), {}, "factor_sizes must be 2 integers"),
    (GOOD_MU, GOOD_FACTORS, (2, 1), {}, "'scale' (column 1) has value 1, outside its 1 values"),
    (GOOD_MU, GOOD_FACTORS * [[1, 0]], (2, 1), {}, "'scale' (column 1) has a single possible value"),
    (GOOD_MU[:, :2], GOOD_FACTORS, (2, 2), {}, "mu and logvar must have the same shape"),
    (np.full_like(GOOD_MU, np.inf), GOOD_FACTORS, (2, 2), {}, "logvar holds NaN or Inf"),
    (GOOD_MU, GOOD_FACTORS, (2, 2), {"num_entropy_samples": 0}, "num_entropy_samples must be a positive"),
])
def test_bad_input_is_a_clear_error(logvar, factors, sizes, kwargs, message):
    with pytest.raises(DisbenchError, match=re.escape(message)):
        mig_sampled_score(GOOD_MU, logvar, factors, sizes, factor_names=("shape", "scale"), **kwargs)


def test_extreme_log_variances_stay_finite():
    rng = np.random.default_rng(7)
    factors = np.tile(grid((2, 3)), (5, 1))
    mu = rng.normal(size=(30, 2)).astype(np.float32)
    logvar = np.where(rng.random((30, 2)) < 0.5, -3e38, 3e38).astype(np.float32)
    result = mig_sampled_score(mu, logvar, factors, (2, 3), num_entropy_samples=10)
    assert np.all(np.isfinite(result["mi"])) and math.isfinite(result["score"])


def test_bit_identical_whatever_the_thread_count_which_is_restored():
    mu, logvar, factors = perfect_code((3, 4), copies=10, seed=4)
    logvar = logvar + 6
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(mig_sampled_score(mu, logvar, factors, (3, 4), num_entropy_samples=40, seed=1))
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    for other in results[1:]:
        assert other["marginal_entropy"] == results[0]["marginal_entropy"]
        np.testing.assert_array_equal(other["conditional_entropy"], results[0]["conditional_entropy"])
