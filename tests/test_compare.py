"""`disbench compare`: the (model, seed) grid end to end on the toy protocol."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from disbench.cli import main
from disbench.compare.aggregate import aggregate, stat
from disbench.compare.plan import parse_seeds
from disbench.compare.tables import cell, csv_text, display_columns, header, markdown
from disbench.data import FactorGridDataset
from disbench.datasets.dsprites_synth import dsprites_synth
from disbench.errors import DisbenchError
from tests.compare_helpers import MODELS, SEEDS, FIGURES, compare_args, md_table, results
from tests.conftest import TOY_PROTOCOL
from tests.test_training import _toy_entry_point

pytest_plugins = ["tests.compare_fixtures"]

def test_compare_end_to_end_tables_match_the_runs(compared):
    runs = {(m, s): results(compared / "runs" / m / f"seed{s}") for m in MODELS for s in SEEDS}
    assert all(r["status"] == "complete" and r["steps"] == 30 for r in runs.values())
    assert {r["seed"] for r in runs.values()} == set(SEEDS) and {r["model"] for r in runs.values()} == set(MODELS)

    rows = list(csv.DictReader((compared / "table.csv").open()))
    assert len(rows) == len(MODELS) * (4 + 3 + 6)  # 3 factors + score, recon / kl / beta, controller & emergence
    by_key = {(r["model"], r["metric"], r["column"]): r for r in rows}
    md = (compared / "table.md").read_text()
    metric_rows = md_table(md, "TOY_METRIC (mean representation)")
    assert metric_rows[0] == ["model", "n", "pos. x", "pos. y", "size", "TOY_METRIC", "failed"]
    assert [r[0] for r in metric_rows[1:]] == list(MODELS)
    final_rows = md_table(md, "Final training values")
    assert final_rows[0] == ["model", "n", "recon (nats)", "KL (nats)", "β", "failed"]

    for i, model in enumerate(MODELS):
        per_seed = [runs[(model, s)] for s in SEEDS]
        for j, column in enumerate(["pos_x", "pos_y", "size", "score"]):
            values = [r["metrics"]["toy_metric"]["per_factor"][column] if column != "score"
                      else r["metrics"]["toy_metric"]["score"] for r in per_seed]
            row = by_key[(model, "toy_metric", column)]
            assert float(row["mean"]) == pytest.approx(np.mean(values), rel=1e-12)
            assert float(row["std"]) == pytest.approx(np.std(values, ddof=1), rel=1e-12)
            assert (row["n"], row["failed"], row["seeds"]) == ("2", "0", "1 2")
            assert metric_rows[i + 1][2 + j] == f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"
        recon = [r["final"]["recon"] for r in per_seed]
        assert float(by_key[(model, "final", "recon")]["mean"]) == pytest.approx(np.mean(recon), rel=1e-12)
        assert final_rows[i + 1][2] == f"{np.mean(recon):.2f} ± {np.std(recon, ddof=1):.2f}"
        beta = {r["final"]["beta"] for r in per_seed}
        assert beta == {1.0 if model == "vae" else 4.0}
        assert float(by_key[(model, "final", "beta")]["std"]) == 0.0
    assert "Runs not averaged" not in md

    manifest = json.loads((compared / "compare.json").read_text())
    assert manifest["models"] == list(MODELS) and manifest["seeds"] == list(SEEDS)
    assert manifest["fingerprint"] == runs[("vae", 1)]["protocol_fingerprint"]
    assert manifest["metrics"] == ["toy_metric"] and "--models vae,betavae_h --seeds 1-2" in manifest["command"]
    assert [(e["model"], e["seed"], e["status"], e["action"]) for e in manifest["runs"]] == \
        [(m, s, "complete", "train") for m in MODELS for s in SEEDS]


def test_compare_writes_figures_as_png_and_pdf(compared):
    from PIL import Image

    for name in FIGURES:
        png, pdf = compared / "figures" / f"{name}.png", compared / "figures" / f"{name}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000
        assert min(Image.open(png).info["dpi"]) >= 150
    assert not (compared / "figures" / "metrics_vs_steps.png").exists()  # no metrics.jsonl in these runs
    assert not [p for p in compared.rglob("*.tmp")]


def test_rerun_does_no_finished_work(compared_copy, train_calls, evaluate_calls, toy_host, capsys):
    checkpoints = sorted(compared_copy.rglob("checkpoint.pt"))
    before = {p: p.stat().st_mtime_ns for p in checkpoints}
    assert main(compare_args(compared_copy, "--no-figures")) == 0
    assert train_calls == [] and evaluate_calls == []
    assert {p: p.stat().st_mtime_ns for p in checkpoints} == before and len(before) == 4
    assert "all complete" in capsys.readouterr().out
    assert [e["action"] for e in json.loads((compared_copy / "compare.json").read_text())["runs"]] == ["done"] * 4


def test_complete_run_missing_a_metric_is_only_evaluated(compared_copy, train_calls, evaluate_calls, toy_host):
    run = compared_copy / "runs" / "vae" / "seed2"
    original = results(run)
    stripped = dict(original, metrics={})
    (run / "results.json").write_text(json.dumps(stripped))
    assert main(compare_args(compared_copy, "--no-figures")) == 0
    assert train_calls == [] and evaluate_calls == [("seed2", ["toy_metric"])]
    assert results(run)["metrics"]["toy_metric"]["score"] == original["metrics"]["toy_metric"]["score"]


def test_mixed_fingerprints_are_refused_naming_the_runs(compared_copy, train_calls, toy_host, capsys):
    other = compared_copy / "runs" / "betavae_h" / "seed2"
    (other / "results.json").write_text(json.dumps(dict(results(other), protocol_fingerprint="0123456789abcdef")))
    assert main(compare_args(compared_copy, "--no-figures")) == 2
    err = capsys.readouterr().err
    assert "runs/betavae_h/seed2" in err and "0123456789abcdef" in err and "Traceback" not in err
    assert train_calls == []

    assert main(["report", str(compared_copy), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "refusing to aggregate" in err and "0123456789abcdef: runs/betavae_h/seed2" in err
    assert "runs/vae/seed1" in err


def test_failed_run_is_reported_and_not_retried_unless_asked(toy_host, train_calls, capsys):
    args = compare_args("out", "--no-figures", models="vae,toy_diverging", seeds="1")
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "toy_diverging seed 1 (failed)" in captured.err
    assert results("out/runs/vae/seed1")["status"] == "complete"
    assert results("out/runs/toy_diverging/seed1")["status"] == "failed"

    md = Path("out/table.md").read_text()
    rows = {r[0]: r for r in md_table(md, "TOY_METRIC (mean representation)")}
    assert rows["toy_diverging"] == ["toy_diverging", "0", "—", "—", "—", "—", "1/1"]
    assert rows["vae"][1] == "1" and rows["vae"][-1] == "0" and rows["vae"][5] != "—"
    not_averaged = md_table(md, "Runs not averaged")
    assert not_averaged[1][:3] == ["toy_diverging", "1", "failed"] and "non-finite" in not_averaged[1][3]
    csv_rows = [r for r in csv.DictReader(open("out/table.csv")) if r["model"] == "toy_diverging"]
    assert csv_rows and all(r["n"] == "0" and r["failed"] == "1" and r["mean"] == "" for r in csv_rows)
    entries = {e["model"]: e for e in json.loads(Path("out/compare.json").read_text())["runs"]}
    assert entries["toy_diverging"]["status"] == "failed" and "non-finite" in entries["toy_diverging"]["error"]

    train_calls.clear()
    assert main(args) == 1  # still failed, still not trained again
    assert train_calls == []
    assert main(args + ["--retry-failed"]) == 1
    assert train_calls == [("out/runs/toy_diverging/seed1", False)]  # it failed before its first checkpoint


def test_interrupted_run_is_resumed(toy_host, train_calls, monkeypatch):
    from tests.test_training import interrupted_at_step

    args = compare_args("out", "--no-figures", models="vae", seeds="1-2")
    with interrupted_at_step(monkeypatch, 17):  # between the checkpoints at steps 10 and 20 of the first run
        assert main(args) == 130
    assert results("out/runs/vae/seed1")["status"] == "interrupted" and results("out/runs/vae/seed1")["steps"] == 10
    manifest = json.loads(Path("out/compare.json").read_text())
    assert [e["status"] for e in manifest["runs"]] == ["interrupted", "missing"]

    train_calls.clear()
    assert main(args) == 0
    assert train_calls == [("out/runs/vae/seed1", True), ("out/runs/vae/seed2", False)]
    assert main(["train", "--model", "vae", "--protocol", TOY_PROTOCOL, "--seed", "1", "--out", "whole",
                 "--device", "cpu", "--no-progress", "--no-eval"]) == 0
    resumed = torch.load("out/runs/vae/seed1/checkpoint.pt", weights_only=True)["model"]
    whole = torch.load("whole/checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert results("out/runs/vae/seed1")["status"] == "complete"


def test_parallel_workers_run_the_grid(tmp_path, compared):
    env = _toy_entry_point(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "disbench", *compare_args("par", "--jobs", "2", "--no-figures", seeds="1")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "in 2 worker processes" in stdout
    manifest = json.loads(Path("par/compare.json").read_text())
    workers = [e["worker"] for e in manifest["runs"]]
    assert [e["status"] for e in manifest["runs"]] == ["complete", "complete"]
    threads = max(1, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()) // 2)
    assert all(w["slot"] in (0, 1) and w["threads"] == threads and w["device"] == "cpu" for w in workers)
    assert all(isinstance(w["pid"], int) and w["pid"] not in (os.getpid(), proc.pid) for w in workers)
    # the workers ran the same protocol as the in-process comparison
    assert manifest["fingerprint"] == json.loads((compared / "compare.json").read_text())["fingerprint"]
    assert [r[0] for r in md_table(Path("par/table.md").read_text(), "TOY_METRIC (mean representation)")[1:]] == list(MODELS)


@pytest.mark.parametrize("change, message", [
    (["--seeds", "1-"], "'1-' is not a seed"),
    (["--seeds", "3-1"], "'3-1' is not a seed"),
    (["--seeds", "one"], "'one' is not a seed"),
    (["--seeds", "1,2,1"], "seed 1 is listed twice"),
    (["--models", "vae,vea"], "unknown model 'vea'"),
    (["--models", ","], "--models is empty"),
    (["--models", ""], "--models is empty"),
    (["--models", "vae,vae"], "lists vae more than once"),
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--protocol", "no_such_protocol"], "unknown protocol 'no_such_protocol'"),
    (["--metrics", "toy_metric,nope"], "unknown metric 'nope'"),
])
def test_bad_input_fails_before_any_training(toy_host, train_calls, capsys, change, message):
    args = compare_args("out", "--no-figures")
    flag = change[0]
    if flag in args:
        args[args.index(flag) + 1] = change[1]
    else:
        args += change
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert train_calls == [] and not Path("out/runs").exists()


def test_seed_syntax():
    assert parse_seeds("1-5") == [1, 2, 3, 4, 5]
    assert parse_seeds("1,3,7") == [1, 3, 7]
    assert parse_seeds("2") == [2]
    assert parse_seeds(" 0-2, 9 ") == [0, 1, 2, 9]


def test_statistics_and_cells():
    one = stat([0.25])
    assert (one.n, one.mean, one.std) == (1, 0.25, None) and cell(one, ".3f") == "0.250"
    two = stat([1.0, 2.0, None])
    assert two.n == 2 and two.std == pytest.approx(np.std([1.0, 2.0], ddof=1))
    assert cell(two, ".2f") == "1.50 ± 0.71" and cell(stat([]), ".3f") == "—"


def _table_of(tmp_path, dataset, per_factor):
    """table.md and table.csv of one model x two seeds whose results.json record ``dataset``."""
    for seed in (1, 2):
        run_dir = tmp_path / "runs" / "vae" / f"seed{seed}"
        run_dir.mkdir(parents=True)
        metric = {"score": 0.5 + seed, "per_factor": {k: v + seed for k, v in per_factor.items()}}
        (run_dir / "results.json").write_text(json.dumps(
            {"status": "complete", "protocol_fingerprint": "fp", "dataset": dataset.describe(),
             "metrics": {"rmig": metric}, "final": {"recon": 1.0, "kl": 2.0, "beta": 1.0}}))
    comparison = aggregate(tmp_path, ["vae"], [1, 2])
    csv_columns = [r["column"] for r in csv.DictReader(io.StringIO(csv_text(comparison))) if r["metric"] == "rmig"]
    return md_table(markdown(comparison), "RMIG (mean representation)")[0], csv_columns


def test_dsprites_factors_get_the_papers_order_and_headers(tmp_path):
    dsprites = dsprites_synth(factor_sizes=(1, 1, 2, 2, 2), cache=False)
    assert dsprites.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    md_header, csv_columns = _table_of(tmp_path, dsprites, {f: 0.1 for f in dsprites.factor_names})
    assert md_header == ["model", "n", "pos. x", "pos. y", "shape", "scale", "orientation", "RMIG", "failed"]
    assert csv_columns == ["pos_x", "pos_y", "shape", "scale", "orientation", "score"]
    assert [header(c, "rmig") for c in display_columns(["shape", "pos_x", "score"], ["pos_x", "shape"])] == \
        ["pos. x", "shape", "RMIG"]


def test_a_datasets_declared_factor_order_sets_the_columns(tmp_path):
    images = torch.zeros((12, 1, 64, 64), dtype=torch.uint8)
    declared = FactorGridDataset(name="lamps", images=images, source="test", factor_names=("hue", "height", "angle"),
                                 factor_sizes=(2, 3, 2), factor_display_order=("angle", "hue", "height"))
    assert declared.describe()["factor_display_order"] == ["angle", "hue", "height"]
    md_header, csv_columns = _table_of(tmp_path / "declared", declared, {"hue": 0.1, "height": 0.2, "angle": 0.3})
    assert md_header == ["model", "n", "angle", "hue", "height", "RMIG", "failed"]
    assert csv_columns == ["angle", "hue", "height", "score"]

    undeclared = FactorGridDataset(name="lamps", images=images, source="test",
                                   factor_names=("hue", "height", "angle"), factor_sizes=(2, 3, 2))
    assert "factor_display_order" not in undeclared.describe()
    md_header, _ = _table_of(tmp_path / "undeclared", undeclared, {"hue": 0.1, "height": 0.2, "angle": 0.3})
    assert md_header == ["model", "n", "hue", "height", "angle", "RMIG", "failed"]  # as the metric reports them
    assert display_columns(["digit", "extra", "score"], ["extra"]) == ["extra", "digit", "score"]
    with pytest.raises(DisbenchError, match="each factor"):
        FactorGridDataset(name="bad", images=images, source="test", factor_names=("a", "b"), factor_sizes=(3, 4),
                          factor_display_order=("a", "a"))
