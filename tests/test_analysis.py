"""Controller quality and emergence, from hand-made logs."""

import math

import pytest

from disbench.analysis import Emergence, controller_quality


def row(step, kl, c, beta, kl_per_dim=None):
    r = {"step": step, "kl": kl, "setpoint": c, "beta": beta}
    if kl_per_dim is not None:
        r["kl_per_dim"] = kl_per_dim
    return r


def test_controller_quality_by_hand():
    rows = [row(100, 0.2, 0.5, 150.0), row(200, 0.5, 0.5, 50.0),     # phase C = 0.5
            row(300, 0.9, 1.0, 10.0), row(400, 1.3, 1.0, 0.8),       # C rises to 1: overshoot 0.3
            row(500, 1.1, 1.5, 0.1), row(600, 1.6, 1.5, 0.1)]        # last phase C = 1.5 at β_min
    q = controller_quality(rows, beta_min=0.1)
    errors = [-0.3, 0.0, -0.1, 0.3, -0.4, 0.1]
    assert q["error_rms"] == pytest.approx(math.sqrt(sum(e * e for e in errors) / 6))
    assert q["error_max"] == pytest.approx(0.4)
    assert q["last_phase"] == {"from_step": 500, "to_step": 600, "setpoint": 1.5,
                               "error_rms": pytest.approx(math.sqrt((0.16 + 0.01) / 2)),
                               "error_max": pytest.approx(0.4)}
    assert q["beta_crosses_1_at"] == 400 and q["final_beta"] == 0.1
    assert q["fraction_at_beta_min"] == pytest.approx(2 / 6)
    assert [o["step"] for o in q["overshoots"]] == [300, 500]
    assert [o["overshoot"] for o in q["overshoots"]] == pytest.approx([0.3, 0.1])
    assert q["overshoot_max"] == pytest.approx(0.3)


def test_open_loop_runs_have_no_controller_quality():
    assert controller_quality([{"step": 10, "kl": 1.0, "beta": 1.0}]) is None


def test_emergence_by_hand():
    rows = [row(100, 0, 0, 1, [0.1, 0.0, 0.0]), row(200, 0, 0, 1, [0.6, 0.1, 0.0]),
            row(300, 0, 0, 1, [0.9, 0.2, 0.0]), row(400, 0, 0, 1, [1.0, 0.7, 0.0])]
    e = Emergence(threshold=0.5)(rows)
    assert e["steps"] == [200, 400, None] and e["order"] == [0, 1] and e["smallest_gap"] == 200
    assert "factors" not in e
    info = lambda mi: {"mig": {"mi": mi, "entropy": {"a": 2.0, "b": 0.5}, "factor_names": ["a", "b"]}}  # noqa
    metric_rows = [{"step": 250, "metrics": info([[0.8, 0.3], [0.0, 0.0], [0, 0]])},
                   {"step": 450, "metrics": info([[0.8, 0.3], [0.6, 0.2], [0, 0]])}]
    e = Emergence(threshold=0.5)(rows, metric_rows)
    # latent 0 (step 200) at the evaluation of step 250: a 0.8/2 = 0.4 < b 0.3/0.5 = 0.6 -> b;
    # latent 1 (step 400) at step 450: a 0.6/2 = 0.3 < b 0.2/0.5 = 0.4 -> b ... normalised by H
    assert e["factors"] == {"0": "b", "1": "b"}
    metric_rows[1]["metrics"] = info([[0.8, 0.3], [1.6, 0.1], [0, 0]])  # a 0.8 > b 0.2
    assert Emergence(threshold=0.5)(rows, metric_rows)["factors"] == {"0": "b", "1": "a"}
    assert Emergence(threshold=0.95)(rows)["steps"] == [400, None, None]


def test_emergence_threshold_is_checked():
    with pytest.raises(ValueError, match="Emergence.threshold must be > 0"):
        Emergence(threshold=0)


def test_analyse_run_reads_a_trained_run(toy_host):
    from pathlib import Path

    from disbench.analysis import analyse_run
    from disbench.cli import main
    from tests.conftest import TOY_PROTOCOL

    assert main(["train", "--model", "vae", "--protocol", TOY_PROTOCOL, "--out", "run", "--device", "cpu",
                 "--no-eval", "--no-progress"]) == 0
    analysis = analyse_run(Path("run"), {"name": "constant", "beta": 1.0})
    assert analysis["controller"] is None  # a constant β tracks no set point
    assert len(analysis["emergence"]["steps"]) == 4 and analysis["emergence"]["threshold"] == 0.5


def test_every_closed_loop_result_holds_its_controller_quality_and_emergence(full_host):
    import json
    from pathlib import Path

    from disbench.cli import main
    from tests.conftest import TOY_PROTOCOL

    assert main(["train", "--model", "dynamicvae", "--protocol", TOY_PROTOCOL, "--out", "run", "--device", "cpu",
                 "--no-eval", "--no-progress", "--gin_param", "PIBetaScheduler.beta_init = 2.0"]) == 0
    results = json.loads(Path("run/results.json").read_text())
    controller = results["controller"]
    assert controller["rows"] == 6 and controller["last_phase"]["setpoint"] == 0.5
    assert controller["final_beta"] == results["final"]["beta"] and 0 <= controller["fraction_at_beta_min"] <= 1
    assert set(results["emergence"]) >= {"threshold", "steps", "order", "smallest_gap"}


def test_compare_tables_show_controller_and_emergence(full_host):
    import csv
    from pathlib import Path

    from disbench.cli import main
    from tests.conftest import TOY_PROTOCOL

    assert main(["compare", "--models", "dynamicvae,vae", "--seeds", "1-2", "--protocol", TOY_PROTOCOL, "--out", "c",
                 "--no-figures", "--device", "cpu", "--no-progress", "--steps", "20",
                 "--gin_param", "PIBetaScheduler.beta_init = 2.0"]) == 0
    md = Path("c/table.md").read_text()
    section = md.split("## Controller and emergence")[1].split("##")[0]
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| ") and "model" not in line}
    assert rows["dynamicvae"].split("|")[2].strip() == "2"
    assert rows["vae"].split("|")[3].strip() == "—"  # no set point: no tracking error
    dynamics = [r for r in csv.DictReader(open("c/table.csv")) if r["metric"] == "dynamics" and r["model"] == "dynamicvae"]
    assert {r["column"] for r in dynamics} >= {"last_phase_error_rms", "smallest_emergence_gap"}
    assert next(r for r in dynamics if r["column"] == "last_phase_error_rms")["n"] == "2"


def test_per_latent_kl_figure_marks_emergence(tmp_path):
    from matplotlib.figure import Figure

    from disbench.figures import curves

    drawn = {}
    real = curves.save_figure

    def keep(fig: Figure, stem):
        drawn["fig"] = fig
        return real(fig, stem)

    rows = [row(100 * i, 0, 0, 1, [0.2 * i, 0.1 * i, 0.0]) for i in range(1, 6)]
    emergence = {"run": {"threshold": 0.5, "steps": [300, None, None], "order": [0], "smallest_gap": None}}
    curves.save_figure = keep
    try:
        assert curves.plot_kl_per_latent({"run": rows}, tmp_path / "kl", emergence)
    finally:
        curves.save_figure = real
    ax = drawn["fig"].axes[0]
    marks = [line for line in ax.lines if line.get_marker() == "^"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [300] and list(marks[0].get_ydata()) == [0.5]
    assert "1 emerged" in ax.get_title()


def test_beta_min_logged_from_float32_counts_as_saturated():
    import numpy as np

    logged = float(np.float32(0.1))  # 0.10000000149011612: how a float32 β_min reaches scalars.jsonl
    rows = [row(100, 1.0, 1.0, 0.5), row(200, 1.0, 1.0, logged), row(300, 1.0, 1.0, 0.1000002)]
    assert controller_quality(rows, beta_min=0.1)["fraction_at_beta_min"] == pytest.approx(1 / 3)
