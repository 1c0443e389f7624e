"""mig_score (docs/metrics.md ``mig``) against disentanglement_lib's slow form."""

import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from disbench.errors import DisbenchError
from dvae_plugin.metrics import mig_score
from dvae_plugin.metrics.mig import histogram_bins
from dvae_plugin.metrics.reference import disentanglement_lib_mig

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels


def assert_matches_reference(codes, factors, num_bins):
    reference = disentanglement_lib_mig(codes, factors, num_bins)
    result = mig_score(codes, factors, num_bins)
    for key in ("mi", "entropy", "per_factor"):
        np.testing.assert_allclose(result[key], reference[key], rtol=0, atol=1e-9)
    assert result["score"] == pytest.approx(reference["score"], abs=1e-9)


def mixed_codes(rng, n, num_latents, factors, dtype):
    """Codes with some latents tied to factors (so MI is not all ~0) and some heavy-tailed."""
    codes = rng.normal(size=(n, num_latents))
    for i in range(min(num_latents, factors.shape[1])):
        codes[:, i] += factors[:, i] * rng.uniform(0.2, 2.0)
    codes[:, -1] = rng.standard_cauchy(n)
    return codes.astype(dtype)


@pytest.mark.parametrize("n, num_latents, sizes, num_bins, dtype", [
    (50, 2, (2,), 2, np.float64),
    (300, 3, (3, 5), 7, np.float32),
    (1000, 5, (2, 4, 9), 20, np.float32),
    (2000, 10, (3, 6, 40, 32, 32), 20, np.float32),
    (777, 4, (5, 3), 50, np.float64),
])
def test_equals_disentanglement_lib(n, num_latents, sizes, num_bins, dtype):
    rng = np.random.default_rng(n + num_bins)
    factors = rng.integers(0, sizes, size=(n, len(sizes)))
    assert_matches_reference(mixed_codes(rng, n, num_latents, factors, dtype), factors, num_bins)


@settings(max_examples=40, deadline=None)
@given(
    codes=hnp.arrays(np.float64, st.tuples(st.integers(4, 60), st.integers(2, 5)),
                     elements=st.floats(-1e3, 1e3, allow_subnormal=False)),
    num_bins=st.integers(2, 25),
    data=st.data(),
)
def test_equals_disentanglement_lib_property(codes, num_bins, data):
    # Hypothesis finds ties, constant latents and values on bin edges.
    factors = data.draw(hnp.arrays(np.int64, (codes.shape[0], 2), elements=st.integers(0, 4)))
    factors[:2] = [[0, 0], [1, 1]]  # every factor takes >= 2 values
    try:
        disentanglement_lib_mig(codes, factors, num_bins)
    except ValueError:  # numpy cannot bin a range of < num_bins floats; see test_collapsed_latent
        assume(False)
    assert_matches_reference(codes, factors, num_bins)


def test_collapsed_latent_carries_no_information():
    # Latent 1 spans 2 float32 values: numpy.histogram raises there, so there is no
    # reference; it goes in one bin (MI 0) and the other latents are unaffected.
    rng = np.random.default_rng(8)
    factors = rng.integers(0, 2, size=(200, 1))
    codes = rng.normal(size=(200, 3)).astype(np.float32)
    codes[:, 1] = np.where(factors[:, 0] == 1, np.nextafter(np.float32(1), np.float32(2)), np.float32(1))
    result = mig_score(codes, factors)
    assert result["mi"][1, 0] == 0.0
    np.testing.assert_allclose(result["mi"][[0, 2]], mig_score(codes[:, [0, 2]], factors)["mi"], atol=1e-15)


def test_bins_are_disentanglement_libs_minus_one():
    rng = np.random.default_rng(0)
    codes = np.concatenate([rng.normal(size=(500, 3)), np.ones((500, 1))], axis=1).astype(np.float32)
    codes[:5, 0] = np.histogram_bin_edges(codes[:, 0], 20)[[0, 3, 10, 19, 20]]  # values on edges
    discretized = disentanglement_lib_mig(codes, (np.arange(500) % 2)[:, None], 20)["discretized"]
    np.testing.assert_array_equal(histogram_bins(codes, 20) + 1, discretized.T)


def test_perfect_code_scores_one():
    # Each factor copied into its own latent plus 0.01 noise, and two noise latents.
    # The binned copy determines its factor (sizes <= num_bins, values 1 apart, bins
    # <= 1 wide), so I_(1) = H exactly; I_(2) is the plug-in MI of an independent pair,
    # biased up by ~(bins-1)(values-1)/2N <= 0.02 nats against H >= log 3: >= 0.98.
    rng = np.random.default_rng(1)
    sizes = (3, 5, 8, 20)
    factors = rng.integers(0, sizes, size=(10000, 4))
    codes = np.concatenate([factors + 0.01 * rng.normal(size=factors.shape), rng.normal(size=(10000, 2))], 1)
    result = mig_score(codes, factors)
    assert min(result["per_factor"]) > 0.98
    for k in range(4):
        assert result["mi"][k, k] == pytest.approx(result["entropy"][k], abs=1e-12)


def test_independent_codes_score_near_zero():
    # Plug-in MI of independent pairs: mean ~df/2N, spread ~sqrt(2 df)/2N nats, so the
    # top-two gap is ~1e-3 nats; 0.01 of H leaves a wide margin.
    rng = np.random.default_rng(2)
    factors = rng.integers(0, (4, 10, 16), size=(10000, 3))
    result = mig_score(rng.normal(size=(10000, 6)), factors)
    assert result["score"] < 0.01


def test_duplicated_latent_has_zero_gap():
    rng = np.random.default_rng(3)
    factors = rng.integers(0, (5, 7), size=(3000, 2))
    codes = np.stack([factors[:, 0] + 0.1 * rng.normal(size=3000), factors[:, 1] + 0.0, rng.normal(size=3000)], 1)
    assert mig_score(codes, factors)["per_factor"][0] > 0.9
    duplicated = np.concatenate([codes, codes[:, :1]], axis=1)
    result = mig_score(duplicated, factors)
    assert result["per_factor"][0] == 0.0
    assert result["per_factor"][1] == mig_score(codes, factors)["per_factor"][1]


def test_invariant_to_permuting_latents():
    rng = np.random.default_rng(4)
    factors = rng.integers(0, (3, 6, 9), size=(2000, 3))
    codes = mixed_codes(rng, 2000, 6, factors, np.float32)
    perm = rng.permutation(6)
    a, b = mig_score(codes, factors), mig_score(codes[:, perm], factors)
    assert a["per_factor"] == b["per_factor"]
    np.testing.assert_array_equal(a["mi"][perm], b["mi"])


def test_unused_and_large_factor_values():
    # Values that never occur, and sparse huge labels (renumbered), change nothing.
    rng = np.random.default_rng(5)
    factors = rng.integers(0, 4, size=(400, 2))
    codes = mixed_codes(rng, 400, 3, factors, np.float64)
    a = mig_score(codes, factors)
    b = mig_score(codes, factors * np.array([[7, 10 ** 9]]))
    np.testing.assert_allclose(a["mi"], b["mi"], atol=1e-12)
    assert b["score"] == pytest.approx(a["score"], abs=1e-12)


def test_result_shape():
    rng = np.random.default_rng(6)
    factors = rng.integers(0, (3, 4), size=(100, 2))
    result = mig_score(rng.normal(size=(100, 5)), factors, num_bins=10)
    assert set(result) == {"score", "per_factor", "mi", "entropy"}
    assert isinstance(result["score"], float) and len(result["per_factor"]) == 2
    assert result["mi"].shape == (5, 2) and len(result["entropy"]) == 2


GOOD_CODES = np.random.default_rng(7).normal(size=(20, 3))
GOOD_FACTORS = np.tile([[0, 1], [1, 0]], (10, 1))


@pytest.mark.parametrize("codes, factors, kwargs, message", [
    (GOOD_CODES, np.tile([[0, 1], [0, 0]], (10, 1)), {}, "'shape' (column 0) takes a single value"),
    (np.where(np.arange(60).reshape(20, 3) == 7, np.nan, GOOD_CODES), GOOD_FACTORS, {}, "NaN or Inf"),
    (np.where(np.arange(60).reshape(20, 3) == 7, np.inf, GOOD_CODES), GOOD_FACTORS, {}, "NaN or Inf"),
    (GOOD_CODES[:19], GOOD_FACTORS, {}, "factors have 20 rows, but the codes have 19"),
    (GOOD_CODES, GOOD_FACTORS.astype(float), {}, "integer factor indices"),
    (GOOD_CODES, GOOD_FACTORS.astype(bool), {}, "integer factor indices"),
    (GOOD_CODES, GOOD_FACTORS - 1, {}, "negative"),
    (GOOD_CODES, GOOD_FACTORS[:, 0], {}, "2-D array (samples, factors)"),
    (GOOD_CODES[:, 0], GOOD_FACTORS, {}, "2-D array (samples, latents)"),
    (GOOD_CODES[:, :1], GOOD_FACTORS, {}, "at least 2"),
    (GOOD_CODES[:0], GOOD_FACTORS[:0], {}, "empty"),
    (GOOD_CODES, GOOD_FACTORS, {"num_bins": 1}, "num_bins must be an integer >= 2"),
    (GOOD_CODES, GOOD_FACTORS, {"num_bins": 2.5}, "num_bins must be an integer >= 2"),
    (GOOD_CODES.astype(str), GOOD_FACTORS, {}, "real numbers"),
])
def test_bad_input_is_a_clear_error(codes, factors, kwargs, message):
    with pytest.raises(DisbenchError, match=re.escape(message)):
        mig_score(codes, factors, factor_names=("shape", "scale"), **kwargs)
