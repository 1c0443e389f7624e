"""`disbench sweep`: grid points as ordinary runs, one table row per (model, point), refusals before training."""

import csv
import json
from pathlib import Path

import pytest

from disbench.cli import main
from disbench.compare.sweep import grid_points, parse_grid
from disbench.errors import DisbenchError
from tests.compare_helpers import md_table, results
from tests.conftest import TOY_PROTOCOL

pytest_plugins = ["tests.compare_fixtures"]


def sweep_args(out, *extra, models="betavae_h", seeds="1-2", grid=("BetaVAEH.beta=2,8",)):
    return ["sweep", "--models", models, "--seeds", seeds, "--protocol", TOY_PROTOCOL, "--out", str(out),
            "--device", "cpu", "--no-progress", *(x for g in grid for x in ("--grid", g)), *extra]


def test_grid_values_are_literals_or_bare_words():
    grid = parse_grid(["PIBetaScheduler.ki=0.005, 0.01", "PIBetaScheduler.anti_windup=latch,'none'",
                       "scope/BetaVAEH.beta=4,True"])
    assert grid == {"PIBetaScheduler.ki": [0.005, 0.01], "PIBetaScheduler.anti_windup": ["latch", "none"],
                    "scope/BetaVAEH.beta": [4, True]}


@pytest.mark.parametrize("options, message", [
    ([], "at least one --grid"),
    (["PIBetaScheduler.ki"], "expected 'Configurable.parameter=v1,v2,...'"),
    (["ki=0.1,0.2"], "expected 'Configurable.parameter=v1,v2,...'"),
    (["A.b=1", "A.b=2"], "given twice"),
    (["A.b=1,1.0"], "listed twice"),
    (["A.b=1,"], "an empty value"),
    (["A.b=1/2"], "'1/2' is not a value"),
])
def test_bad_grid_options_are_refused(options, message):
    with pytest.raises(DisbenchError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        parse_grid(options)


def test_points_are_the_product_in_order_with_short_names_unless_ambiguous():
    points = grid_points(parse_grid(["A.ki=1,2", "B.stop=x,y"]))
    assert [p.name for p in points] == ["ki=1,stop=x", "ki=1,stop=y", "ki=2,stop=x", "ki=2,stop=y"]
    assert dict(points[1].bindings) == {"A.ki": 1, "B.stop": "y"}
    assert [p.name for p in grid_points(parse_grid(["A.ki=1", "B.ki=2"]))] == ["A.ki=1,B.ki=2"]
    with pytest.raises(DisbenchError, match="would share the folder"):
        grid_points(parse_grid(["A.b='a b','a_b'"]))


def test_sweep_runs_each_point_and_tabulates_one_row_per_point(toy_host, train_calls, capsys):
    assert main(sweep_args("sw", "--fuse", "2")) == 0
    rows = md_table(Path("sw/table.md").read_text(), "TOY_METRIC (mean representation)")
    assert [r[:2] for r in rows[1:]] == [["betavae_h [beta=2]", "2"], ["betavae_h [beta=8]", "2"]]
    for beta in (2, 8):
        for seed in (1, 2):
            run = Path(f"sw/runs/betavae_h/beta={beta}/seed{seed}")
            assert f"BetaVAEH.beta = {beta}" in (run / "config.gin").read_text()
            assert results(run)["grid_point"] == {"BetaVAEH.beta": beta}
            assert results(run)["status"] == "complete"
    # the final β of each row is its point's constant β: the rows hold different runs
    final = md_table(Path("sw/table.md").read_text(), "Final training values")
    assert [r[4] for r in final[1:]] == ["2 ± 0", "8 ± 0"]
    # a model setting differs between points, so fused groups hold one point's seeds only
    assert sorted(train_calls) == sorted((f"sw/runs/betavae_h/beta={b}/seed{s}", False) for b in (2, 8)
                                         for s in (1, 2))
    with open("sw/table.csv") as f:
        table = list(csv.DictReader(f))
    assert {(r["BetaVAEH.beta"], r["n"]) for r in table if r["metric"] == "toy_metric"} == {("2", "2"), ("8", "2")}
    assert Path("sw/figures/sweep_BetaVAEH.beta.png").stat().st_size > 0
    manifest = json.loads(Path("sw/compare.json").read_text())
    assert manifest["grid"] == [["BetaVAEH.beta", [2, 8]]] and manifest["kind"] == "sweep"
    assert "--grid BetaVAEH.beta=2,8" in manifest["command"]

    train_calls.clear()
    capsys.readouterr()
    assert main(sweep_args("sw", "--no-figures")) == 0  # a re-run does no finished work
    assert train_calls == []
    assert "4 runs in sw: all complete" in capsys.readouterr().out


def test_a_scheduler_grid_fuses_points_of_one_model(full_host, monkeypatch):
    """Points that differ only in scheduler bindings may share a fused group."""
    import disbench.compare.execute as execute

    units, real = [], execute.execute_unit

    def spy(jobs, **kwargs):
        units.append(sorted(j.point.name for j in jobs))
        return real(jobs, **kwargs)

    monkeypatch.setattr(execute, "execute_unit", spy)
    assert main(sweep_args("sw", "--fuse", "2", "--no-figures", models="dynamicvae", seeds="1",
                           grid=("PIBetaScheduler.beta_init=20.0,40.0",))) == 0
    assert units == [["beta_init=20.0", "beta_init=40.0"]]
    final = md_table(Path("sw/table.md").read_text(), "Final training values")
    assert len({r[4] for r in final[1:]}) == 2  # the points trained differently


@pytest.mark.parametrize("grid, models, message", [
    ("Protocol.lr=0.001,0.01", "betavae_h", "a protocol-level binding"),
    ("Run.seed=1,2", "betavae_h", "use --seeds"),
    ("NoSuch.x=1,2", "betavae_h", "No configurable matching 'NoSuch'"),
    ("BetaVAEH.gamma=1,2", "betavae_h", "--grid BetaVAEH.gamma=1 (model betavae_h): model 'betavae_h': "
                                         "VAEModel.__init__() got an unexpected keyword argument 'gamma'"),
    ("BetaVAEH.beta=2,8", "vae,betavae_h", "model vae does not use it"),
    ("ToyMetric.num_samples=10,20", "betavae_h", "changes the protocol fingerprint"),
    ("toy_squares.data_root='a','b'", "betavae_h", "changes the protocol fingerprint"),
])
def test_bindings_that_are_not_per_run_are_refused_before_training(toy_host, train_calls, capsys,
                                                                   grid, models, message):
    assert main(sweep_args("sw", models=models, grid=(grid,))) == 2
    assert message in capsys.readouterr().err
    assert train_calls == [] and not Path("sw").exists()
