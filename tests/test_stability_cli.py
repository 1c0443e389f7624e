"""``disbench stability``, driven through its own argparse parser (add_parser + args.func)."""

import argparse
import json
import math

import numpy as np
import pytest

from disbench.errors import DisbenchError
from dvae_plugin.stability import exact_stable
from dvae_plugin.stability.cli import REPORT_NAME, add_parser
from dvae_plugin.stability.region import region_grid

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
POINT = ["--kp", "0.01", "--ki", "0.005", "--a", "0.0004", "--g-prime", "-3.2"]


def stability(argv):
    parser = argparse.ArgumentParser(prog="disbench")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["stability", *argv])
    return args.func(args)


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5_000
    assert not list(path.parent.glob(".*.tmp"))  # atomic writes leave no temporaries


# ---------------------------------------------------------------- one operating point

def test_point_text(capsys):
    assert stability(POINT) == 0
    out = capsys.readouterr().out
    assert "STABLE (spectral radius < 1)" in out and "paper Eq. 19:    all hold" in out
    assert "DISAGREEMENT" not in out


def test_point_disagreement_is_said_plainly(capsys):
    assert stability(["--kp", "0.01", "--ki", "0.2", "--a", "0.0004", "--g-prime", "-3.2"]) == 0
    out = capsys.readouterr().out
    assert "STABLE" in out and "FAILS" in out
    assert "DISAGREEMENT: the paper's Eq. 19 calls this loop unstable" in out


def test_point_json(capsys):
    assert stability([*POINT, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["stable"] and d["exact_stable"] and d["paper_conditions"]["all_hold"]
    assert d["margin"] == pytest.approx(1 - d["spectral_radius"])


@pytest.mark.parametrize("argv, needle", [
    (["--kp", "0.01", "--ki", "0", "--a", "0.0004", "--g-prime", "-3.2"], "Ki must be > 0"),
    (["--kp", "-1", "--ki", "0.005", "--a", "0.0004", "--g-prime", "-3.2"], "Kp must be >= 0"),
    (["--kp", "0.01", "--ki", "0.005", "--a", "0", "--g-prime", "-3.2"], "a (the plant's rate"),
    (["--kp", "0.01", "--ki", "0.005", "--a", "0.0004", "--g-prime", "3.2"], "g' must be < 0"),
    (["--kp", "0.01", "--ki", "0.005", "--g-prime", "-3.2"], "needs --a"),
    ([*POINT, "--beta-star", "3"], "--beta-star: only used with --fit"),
    (["--region", "--a", "0.0004"], "--region needs --g-prime"),
    (["--region", "--a", "0.0004", "--g-prime", "-3.2", "--kp", "0.01"], "both --kp and --ki"),
    (["--fit", "x", "--a", "0.0004"], "--a: --fit identifies a and g'"),
    (["--fit", "/nonexistent/run"], "run directory not found: /nonexistent/run"),
])
def test_bad_input_is_a_one_line_error(argv, needle):
    with pytest.raises(DisbenchError) as err:
        stability(argv)
    assert needle in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- --region

def test_region_png(tmp_path, capsys):
    out = tmp_path / "fig" / "region.png"
    assert stability(["--region", *POINT, "--out", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["figure"] == str(out) and d["operating_point"]["stable"]
    assert_png(out)


def test_region_grid_is_the_exact_region_and_contains_both_verdicts():
    grid = region_grid(1 / 2500, -3.2, 0.01, 0.005, n=60)
    KP, KI = np.meshgrid(grid.kp, grid.ki)
    stable = grid.radius < 1
    assert 0.2 < stable.mean() < 0.9
    np.testing.assert_array_equal(stable, exact_stable(KP, KI, 1 / 2500, -3.2))
    assert not ((grid.paper_value > 0) & ~stable).any()  # the paper's region lies inside
    assert grid.kp[0] < 0.01 < grid.kp[-1] and grid.ki[0] < 0.005 < grid.ki[-1]


# ---------------------------------------------------------------- --fit

A_TRUE, B_TRUE, RATE = 26.38, 0.0476, 1 / 2500


def write_run(path, scheduler, kl, beta, every=50):
    path.mkdir(parents=True)
    rows = [{"step": 1 + i * every, "kl": float(k), "beta": float(b)} for i, (k, b) in
            enumerate(zip(kl, beta))]
    (path / "scalars.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "results.json").write_text(json.dumps({"model": "dynamicvae", "status": "complete",
                                                   "scheduler": scheduler}))
    return str(path)


def synthetic_runs(root, betas=(10.0, 25.0, 40.0), beta_star=30.0, ki=0.005):
    rng = np.random.default_rng(0)
    t = np.arange(1, 400 * 50, 50)
    dirs = [write_run(root / "pi", {"name": "pi", "kp": 0.01, "ki": ki},
                      A_TRUE * math.exp(-B_TRUE * beta_star) + rng.normal(0, 0.1, len(t)),
                      np.full(len(t), beta_star))]
    for beta in betas:
        c0 = A_TRUE * math.exp(-B_TRUE * beta)
        dirs.append(write_run(root / f"beta{beta:g}", {"name": "constant", "beta": beta},
                              c0 * (1 - np.exp(-RATE * t)) + rng.normal(0, 0.1, len(t)),
                              np.full(len(t), beta)))
    return dirs


def test_fit_writes_report_and_figures(tmp_path, capsys):
    dirs = synthetic_runs(tmp_path / "runs")
    out = tmp_path / "report"
    assert stability(["--fit", *dirs, "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    report = json.loads((out / REPORT_NAME).read_text())
    assert printed["report"] == str(out / REPORT_NAME)
    assert [r["status"] for r in report["runs"]] == ["complete"] * 4
    assert report["a"]["least_squares"] == pytest.approx(RATE, rel=0.03)
    assert report["g"]["A"] == pytest.approx(A_TRUE, rel=0.05)
    assert report["g"]["b"] == pytest.approx(B_TRUE, rel=0.05)
    [op] = report["operating_points"]
    g_prime = -A_TRUE * B_TRUE * math.exp(-B_TRUE * 30.0)
    assert op["beta_star"] == pytest.approx(30.0) and op["g_prime"] == pytest.approx(g_prime, rel=0.05)
    assert op["analysis"]["stable"] and op["analysis"]["kp"] == 0.01
    assert len(report["figures"]) == 4  # one rise fit per constant-β run, and g(β)
    for fig in report["figures"]:
        assert_png(out / fig.rsplit("/", 1)[-1])


def test_fit_default_out_is_beside_the_runs_and_text_output(tmp_path, capsys):
    dirs = synthetic_runs(tmp_path / "runs", betas=(10.0, 40.0))
    assert stability(["--fit", *dirs]) == 0
    out = capsys.readouterr().out
    assert "g(β) = " in out and "operating point" in out and "STABLE" in out
    report_dir = (tmp_path / "runs" / "stability").resolve()
    assert (report_dir / REPORT_NAME).is_file() and (report_dir / "g_fit.png").is_file()


def test_fit_with_authors_sign_of_ki_names_the_problem(tmp_path):
    dirs = synthetic_runs(tmp_path / "runs", betas=(10.0, 40.0), ki=-0.005)
    with pytest.raises(DisbenchError, match=r"operating point from .*pi .*Ki must be > 0"):
        stability(["--fit", *dirs, "--out", str(tmp_path / "r")])


def test_fit_needs_two_constant_beta_runs(tmp_path):
    dirs = synthetic_runs(tmp_path / "runs", betas=(10.0,))
    with pytest.raises(DisbenchError, match="2 or more different β"):
        stability(["--fit", *dirs])
