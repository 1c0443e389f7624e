"""Stability analysis (paper Theorem 3.1, docs/stability.md): exact test vs eigenvalues vs Eq. 19."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from disbench.errors import DisbenchError
from dvae_plugin.stability import (
    PAPER_COUNTEREXAMPLE,
    TABLE5_PLANTS,
    analyze,
    exact_stable,
    jacobian,
    paper_stable,
    spectral_radius,
)
from dvae_plugin.stability.analysis import (
    bilinear_coefficients,
    characteristic_coefficients,
    hurwitz_coefficients,
)

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels


def draws(seed, n=20_000, scaled=False):
    """Log-uniform plants and gains over wide ranges.

    ``scaled``: gains drawn around the scales where the boundary lies (Kp ~ 4(1+a)/(a|g'|),
    Ki ~ 1/|g'|), so both verdicts and the paper-vs-exact band are well populated.
    """
    rng = np.random.default_rng(seed)
    lu = lambda lo, hi: 10.0 ** rng.uniform(lo, hi, n)  # noqa: E731
    a, g = lu(-6, 1), -lu(-3, 2)
    if scaled:
        kp = lu(-2, 1) * 4 * (1 + a) / (a * -g)
        ki = lu(-2, 1) / -g
    else:
        kp, ki = lu(-6, 3), lu(-6, 2)
    return kp, ki, a, g


@pytest.fixture(scope="module", params=[False, True], ids=["wide", "boundary-scaled"])
def sweep(request):
    kp, ki, a, g = draws(seed=7, scaled=request.param)
    return dict(kp=kp, ki=ki, a=a, g=g, eig=spectral_radius(kp, ki, a, g) < 1,
                exact=exact_stable(kp, ki, a, g), paper=paper_stable(kp, ki, a, g))


def test_jacobian_is_specs():
    A = jacobian(0.01, 0.005, 0.0004, -3.2)
    expected = [[1, 0.005 + 0.0025, -0.0025],
                [0.0004 * -3.2 / 1.0004, 1 / 1.0004, 0],
                [0, 1, 0]]
    np.testing.assert_allclose(A, expected, rtol=0, atol=1e-15)


def test_closed_forms_match_the_characteristic_polynomial_and_bilinear_map():
    kp, ki, a, g = draws(seed=3, n=500)
    a = a / (1 + a) + 1e-3  # moderate a: the generic b0 cancels badly as a -> 0
    A = jacobian(kp, ki, a, g)
    coeffs = np.array([np.poly(m) for m in A])  # from eigenvalues: an independent route
    c2, c1, c0 = characteristic_coefficients(kp, ki, a, g)
    scale = np.abs(coeffs).max(axis=1)
    for got, col in ((c2, 1), (c1, 2), (c0, 3)):
        np.testing.assert_allclose(got, coeffs[:, col], rtol=1e-9, atol=1e-12 * scale.max())
    generic = bilinear_coefficients(c2, c1, c0)
    closed = hurwitz_coefficients(kp, ki, a, g)
    for gen, clo in zip(generic, closed[:4]):
        np.testing.assert_allclose(clo, gen, rtol=1e-8, atol=1e-9 * np.abs(gen).max())
    b0, b1, b2, b3, delta = closed
    np.testing.assert_allclose(delta, b1 * b2 - b0 * b3, rtol=1e-7, atol=1e-9 * np.abs(delta).max())
    # the ξ-roots map back to the eigenvalues through λ = (1+ξ)/(1-ξ)
    for i in range(20):
        xi = np.roots([b3[i], b2[i], b1[i], b0[i]])
        lam = np.sort_complex((1 + xi) / (1 - xi))
        np.testing.assert_allclose(lam, np.sort_complex(np.linalg.eigvals(A[i])), atol=1e-8)


def test_exact_verdict_equals_eigenvalue_verdict_on_random_draws(sweep):
    assert 0.2 < sweep["eig"].mean() < 0.9  # both verdicts well represented
    mismatch = np.flatnonzero(sweep["exact"] != sweep["eig"])
    assert mismatch.size == 0, tuple(sweep[k][mismatch[0]] for k in ("kp", "ki", "a", "g"))


def test_paper_conditions_never_call_an_unstable_loop_stable(sweep):
    assert not (sweep["paper"] & ~sweep["eig"]).any()
    # ... but they call some stable loops unstable: sufficient, not necessary
    assert (~sweep["paper"] & sweep["eig"]).sum() > 100


@settings(max_examples=300, deadline=None, derandomize=True)
@given(log_kp=st.floats(-6, 3), log_ki=st.floats(-6, 2), log_a=st.floats(-6, 1),
       log_g=st.floats(-3, 2))
def test_property_exact_agrees_and_paper_is_sufficient(log_kp, log_ki, log_a, log_g):
    r = analyze(10**log_kp, 10**log_ki, 10**log_a, -(10**log_g))
    assert r.exact_stable == r.stable
    assert r.stable or not r.paper_stable
    assert math.isclose(r.margin, 1 - r.spectral_radius)


def _bisect_boundary(kp, ki, a, g, iters=60):
    """Scale s with spectral radius(s·Kp, s·Ki) = 1; stable for s < s* along the ray."""
    lo, hi = np.zeros_like(kp), np.ones_like(kp)
    while (grow := spectral_radius(hi * kp, hi * ki, a, g) < 1).any():
        hi = np.where(grow, hi * 4, hi)
    for _ in range(iters):
        mid = (lo + hi) / 2
        inside = spectral_radius(mid * kp, mid * ki, a, g) < 1
        lo, hi = np.where(inside, mid, lo), np.where(inside, hi, mid)
    return (lo + hi) / 2


@pytest.mark.parametrize("scaled", [False, True])
def test_exact_verdict_just_inside_and_outside_the_boundary(scaled):
    kp, ki, a, g = draws(seed=11, n=2_000, scaled=scaled)
    s = _bisect_boundary(kp, ki, a, g)
    for factor, expect_stable in ((1 - 1e-5, True), (1 + 1e-5, False)):
        f = s * factor
        radius = spectral_radius(f * kp, f * ki, a, g)
        assert ((radius < 1) == expect_stable).all()
        assert (exact_stable(f * kp, f * ki, a, g) == expect_stable).all()
        assert not (paper_stable(f * kp, f * ki, a, g) & (radius >= 1)).any()


@pytest.mark.parametrize("dataset", ["mnist", "dsprites"])
def test_table5_operating_points_are_stable(dataset):
    r = analyze(0.01, 0.005, **TABLE5_PLANTS[dataset])
    assert r.stable and r.exact_stable and r.paper_stable
    assert r.margin > 0 and r.disagreement is None


def test_counterexample_stable_but_paper_conditions_fail():
    r = analyze(**PAPER_COUNTEREXAMPLE)  # Kp 0.01, Ki 0.2, dSprites plant
    assert r.stable and r.exact_stable
    assert r.margin == pytest.approx(7.36e-5, rel=1e-2)
    failing = [c.name for c in r.paper_conditions if not c.holds]
    assert failing == ["quadratic"] and not r.paper_stable
    assert "sufficient, not necessary" in r.disagreement


def test_unstable_point_is_reported_unstable():
    r = analyze(0.01, 0.32, 1 / 2500, -3.2)  # just past the exact Ki bound (≈ 0.315)
    assert not r.stable and not r.exact_stable and not r.paper_stable
    assert r.margin < 0 and r.disagreement is None


def test_kp_zero_is_allowed_and_eq19_rejects_it():
    r = analyze(0.0, 0.005, 1 / 2500, -3.2)
    assert r.stable and not r.paper_stable and "Kp > 0" in r.disagreement


def test_to_dict_is_json_serialisable():
    d = json.loads(json.dumps(analyze(0.01, 0.005, 1 / 2500, -3.2).to_dict()))
    assert d["stable"] is True and len(d["eigenvalues"]) == 3 and len(d["jacobian"]) == 3
    assert d["paper_conditions"]["all_hold"] is True
    assert {c["name"] for c in d["paper_conditions"]["conditions"]} == {
        "kp_plus_ki_bound", "quadratic", "ki_positive", "kp_positive"}
    assert set(d["hurwitz"]) == {"b0", "b1", "b2", "b3", "b1*b2-b0*b3"}


@pytest.mark.parametrize("kwargs, needle", [
    (dict(kp=0.01, ki=0.0, a=4e-4, g_prime=-3.2), "Ki must be > 0"),
    (dict(kp=0.01, ki=-0.005, a=4e-4, g_prime=-3.2), "Ki must be > 0"),
    (dict(kp=-0.01, ki=0.005, a=4e-4, g_prime=-3.2), "Kp must be >= 0"),
    (dict(kp=0.01, ki=0.005, a=0.0, g_prime=-3.2), "a (the plant's rate"),
    (dict(kp=0.01, ki=0.005, a=-1.0, g_prime=-3.2), "a (the plant's rate"),
    (dict(kp=0.01, ki=0.005, a=4e-4, g_prime=0.0), "g' must be < 0"),
    (dict(kp=0.01, ki=0.005, a=4e-4, g_prime=2.0), "g' must be < 0"),
    (dict(kp=float("nan"), ki=0.005, a=4e-4, g_prime=-3.2), "Kp must be a finite"),
])
def test_bad_input_is_a_one_line_error(kwargs, needle):
    with pytest.raises(DisbenchError) as err:
        analyze(**kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)
