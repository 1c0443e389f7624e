"""System identification (paper appendix C.1) on synthetic runs with known a, A, b."""

import json
import math

import numpy as np
import pytest

from disbench.errors import DisbenchError
from dvae_plugin.stability import fit_kl_map, fit_rise, identify, load_run
from dvae_plugin.stability.sysid import tail_mean

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels

# MNIST-like plant (paper Eq. 30 and Table 5 orders of magnitude)
A_TRUE, B_TRUE, RATE = 26.38, 0.0476, 1 / 2500
NOISE = 0.15  # nats, on every logged KL


def write_run(path, scheduler, kl, beta=None, every=50, status="complete"):
    """A run directory as the training loop writes it (scalars.jsonl + results.json)."""
    path.mkdir(parents=True)
    steps = np.arange(1, len(kl) * every + 1, every)
    with open(path / "scalars.jsonl", "w") as f:
        for i, (step, value) in enumerate(zip(steps, kl)):
            row = {"step": int(step), "loss": 500.0, "recon": 480.0, "kl": float(value)}
            if beta is not None:
                row["beta"] = float(beta[i])
            f.write(json.dumps(row) + "\n")
    results = {"model": "dynamicvae", "seed": 1, "status": status,
               "steps": int(steps[-1]), "scheduler": scheduler}
    (path / "results.json").write_text(json.dumps(results))
    return path


def open_loop_kl(c0, a=RATE, n=400, every=50, seed=0):
    steps = np.arange(1, n * every + 1, every)
    noise = np.random.default_rng(seed).normal(0, NOISE, n)
    return c0 * (1 - np.exp(-a * steps)) + noise


def g_true(beta):
    return A_TRUE * math.exp(-B_TRUE * beta)


def write_open_loop(tmp_path, beta, seed=0):
    kl = open_loop_kl(g_true(beta), seed=seed)
    return write_run(tmp_path / f"const_{beta:g}", {"name": "constant", "beta": beta}, kl,
                     beta=np.full(len(kl), beta))


def write_closed_loop(tmp_path, beta_star=30.0, kp=0.01, ki=0.005, n=400, seed=5):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    beta = beta_star + 90 * np.exp(-t / 40) + rng.normal(0, 0.3, n)  # from β(0) = 150 down
    kl = g_true(beta_star) + rng.normal(0, NOISE, n)
    return write_run(tmp_path / "pi", {"name": "pi", "kp": kp, "ki": ki, "beta_min": 0.1}, kl,
                     beta=beta)


def test_rise_fit_recovers_a(tmp_path):
    run = load_run(write_open_loop(tmp_path, beta=20.0))  # C0 ≈ 10.2 nats
    fit = fit_rise(run)
    # stated tolerances: least squares 3 %, 63.2 % rise time 10 % (first crossing of noisy data)
    assert fit.a_least_squares == pytest.approx(RATE, rel=0.03)
    assert fit.a_rise_time == pytest.approx(RATE, rel=0.10)
    assert fit.c0_least_squares == pytest.approx(g_true(20.0), rel=0.02)
    assert fit.t_star == pytest.approx(1 / fit.a_rise_time)


def test_rise_time_within_first_logging_interval_interpolates_from_zero(tmp_path):
    steps = np.arange(1, 401 * 50, 50)[:400]
    kl = 10 * (1 - np.exp(-steps / 30.0))  # time constant 30 steps < logging interval 50
    kl[0] = 0.5  # step 1
    run = load_run(write_run(tmp_path / "fast", {"name": "constant", "beta": 1.0}, kl))
    fit = fit_rise(run)
    assert 1 < fit.t_star < 51


def test_kl_map_fit_recovers_A_and_b():
    rng = np.random.default_rng(1)
    betas = np.array([10.0, 30.0, 50.0, 80.0, 120.0])
    kls = np.array([g_true(b) for b in betas]) * (1 + rng.normal(0, 0.02, len(betas)))
    fit = fit_kl_map(betas, kls)
    assert fit.A == pytest.approx(A_TRUE, rel=0.05)
    assert fit.b == pytest.approx(B_TRUE, rel=0.05)
    assert fit.g_prime(60.0) == pytest.approx(-A_TRUE * B_TRUE * math.exp(-B_TRUE * 60), rel=0.08)


def test_kl_map_through_two_points_is_exact():
    fit = fit_kl_map([10.0, 50.0], [g_true(10.0), g_true(50.0)])
    assert fit.A == pytest.approx(A_TRUE, rel=1e-6) and fit.b == pytest.approx(B_TRUE, rel=1e-6)


def test_identify_from_runs(tmp_path):
    dirs = [write_closed_loop(tmp_path)] + [write_open_loop(tmp_path, b, seed=i)
                                            for i, b in enumerate((10.0, 25.0, 40.0, 55.0))]
    ident = identify(dirs)
    assert ident.a_least_squares == pytest.approx(RATE, rel=0.03)
    # the first 63.2 % crossing of a noisy, low-KL curve comes early: a looser tolerance
    assert ident.a_rise_time == pytest.approx(RATE, rel=0.15)
    assert ident.kl_map.A == pytest.approx(A_TRUE, rel=0.05)
    assert ident.kl_map.b == pytest.approx(B_TRUE, rel=0.05)
    [op] = ident.operating_points
    assert (op.kp, op.ki, op.source) == (0.01, 0.005, str(dirs[0]))
    assert op.beta_star == pytest.approx(30.0, abs=0.5)  # tail mean of β (tail = last 20 %)


def test_options_override_the_closed_loop_run(tmp_path):
    dirs = [write_closed_loop(tmp_path)] + [write_open_loop(tmp_path, b) for b in (10.0, 60.0)]
    [op] = identify(dirs, kp=0.02, beta_star=80.0).operating_points
    assert (op.kp, op.ki, op.beta_star) == (0.02, 0.005, 80.0)


def test_without_closed_loop_run_the_options_are_required(tmp_path):
    dirs = [write_open_loop(tmp_path, b) for b in (10.0, 60.0)]
    with pytest.raises(DisbenchError, match="pass --ki, --beta-star"):
        identify(dirs, kp=0.01)
    [op] = identify(dirs, kp=0.01, ki=0.005, beta_star=40.0).operating_points
    assert op.source == "options"


# ---------------------------------------------------------------- errors

def test_missing_run_dir(tmp_path):
    with pytest.raises(DisbenchError, match="run directory not found: .*nope"):
        load_run(tmp_path / "nope")


def test_run_without_scalars_file(tmp_path):
    run = write_open_loop(tmp_path, 10.0)
    (run / "scalars.jsonl").unlink()
    with pytest.raises(DisbenchError, match="no scalars.jsonl"):
        load_run(run)


def test_run_without_kl_scalars(tmp_path):
    run = tmp_path / "nokl"
    run.mkdir()
    (run / "scalars.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n"
                                               for s in range(1, 100, 10)))
    (run / "results.json").write_text(json.dumps({"scheduler": {"name": "constant", "beta": 4}}))
    with pytest.raises(DisbenchError, match="needs logged 'step' and 'kl'"):
        load_run(run)


def test_fewer_than_two_constant_beta_runs(tmp_path):
    dirs = [write_closed_loop(tmp_path), write_open_loop(tmp_path, 10.0)]
    with pytest.raises(DisbenchError, match="2 or more different β"):
        identify(dirs)


def test_no_open_loop_run(tmp_path):
    with pytest.raises(DisbenchError, match="no open-loop run"):
        identify([write_closed_loop(tmp_path)])


@pytest.mark.parametrize("curve", ["falling", "flat", "zero"])
def test_kl_curve_that_never_rises(tmp_path, curve):
    t = np.arange(1, 400 * 50, 50)
    kl = {"falling": 5 + 10 * np.exp(-t / 1000), "flat": np.full(len(t), 4.0),
          "zero": np.zeros(len(t))}[curve]
    run = load_run(write_run(tmp_path / curve, {"name": "constant", "beta": 4.0}, kl))
    with pytest.raises(DisbenchError, match="never rises"):
        fit_rise(run)


def test_closed_loop_run_without_beta_scalars(tmp_path):
    dirs = [write_run(tmp_path / "pi", {"name": "pi", "kp": 0.01, "ki": 0.005},
                      np.full(100, 5.0))] + [write_open_loop(tmp_path, b) for b in (10.0, 60.0)]
    with pytest.raises(DisbenchError, match="without logged 'beta'"):
        identify(dirs)


@pytest.mark.parametrize("tail", [0.0, -0.1, 1.5])
def test_bad_converged_fraction(tail):
    with pytest.raises(DisbenchError, match="converged fraction must be in"):
        tail_mean(np.ones(10), tail)


def test_tail_mean_uses_the_last_fraction():
    assert tail_mean(np.arange(10.0), 0.2) == 8.5 and tail_mean(np.arange(3.0), 0.01) == 2.0
