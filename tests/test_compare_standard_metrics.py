"""The comparison tables with the disentanglement_lib metrics: named-score columns,
both representations labelled, and the long-format CSV's representation column."""

import csv
import inspect
import io
import json

import numpy as np
import pytest

from disbench.cli import main
from disbench.compare.aggregate import aggregate
from disbench.compare.plan import plan_runs
from disbench.compare.tables import csv_text, markdown
from disbench.execution import COLUMNS as EXECUTION_COLUMNS
from tests.compare_helpers import md_table, results
from tests.conftest import TOY_PROTOCOL
from tests.test_standard_metrics_registered import SMALL_GIN

SEEDS = (1, 2)


@pytest.fixture
def compared(toy_host, tmp_path):
    """vae × seeds 1-2 compared on toy_metric, DCI and the unsupervised scores (mean representation),
    then each run also scored on the sampled representation and the tables redrawn."""
    gin_file = tmp_path / "small_metrics.gin"
    gin_file.write_text(SMALL_GIN)
    out = tmp_path / "cmp"
    assert main(["compare", "--models", "vae", "--seeds", "1-2", "--protocol", TOY_PROTOCOL, "--out", str(out),
                 "--metrics", "toy_metric,dci,unsupervised", "--gin_file", str(gin_file), "--device", "cpu",
                 "--no-progress", "--no-figures"]) == 0
    mean_only = (out / "table.md").read_text()
    for seed in SEEDS:
        assert main(["evaluate", str(out / "runs" / "vae" / f"seed{seed}"), "--metrics", "dci,unsupervised",
                     "--representation", "sampled", "--device", "cpu", "--no-progress"]) == 0
    assert main(["report", str(out)]) == 0
    return out, mean_only


def test_compare_tables_show_the_new_columns_and_label_the_representation(compared):
    out, mean_only = compared
    assert "## DCI (mean representation)" in mean_only and "(sampled representation)" not in mean_only
    md = (out / "table.md").read_text()
    runs = [results(out / "runs" / "vae" / f"seed{s}") for s in SEEDS]

    dci = md_table(md, "DCI (mean representation)")
    assert dci[0] == ["model", "n", "pos. x", "pos. y", "size", "completeness", "informativeness (test)",
                      "informativeness (train)", "DCI", "failed"]
    sampled = md_table(md, "DCI (sampled representation)")
    assert sampled[0] == dci[0]
    for row, key in ((dci[1], "dci"), (sampled[1], "dci@sampled")):
        values = {"pos. x": [r["metrics"][key]["per_factor"]["pos_x"] for r in runs],
                  "completeness": [r["metrics"][key]["scores"]["completeness"] for r in runs],
                  "DCI": [r["metrics"][key]["score"] for r in runs]}
        for column, seeds in values.items():
            assert row[dci[0].index(column)] == f"{np.mean(seeds):.3f} ± {np.std(seeds, ddof=1):.3f}"
    assert "DCI: disentanglement. Factor columns: completeness of the factor." in md

    unsupervised = md_table(md, "UNSUPERVISED (sampled representation)")
    assert unsupervised[0] == ["model", "n", "Wasserstein corr.", "Wasserstein corr. (norm.)", "mutual info",
                               "UNSUPERVISED", "failed"]
    assert md_table(md, "TOY_METRIC (mean representation)")[0][-2] == "TOY_METRIC"
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings[:5] == ["## TOY_METRIC (mean representation)", "## DCI (mean representation)",
                            "## DCI (sampled representation)", "## UNSUPERVISED (mean representation)",
                            "## UNSUPERVISED (sampled representation)"]

    rows = list(csv.DictReader(io.StringIO((out / "table.csv").read_text())))
    assert set(rows[0]) == {"model", "metric", "representation", "column", "mean", "std", "median", "q1", "q3", "n",
                            "failed", "seeds",
                            *EXECUTION_COLUMNS}
    by_key = {(r["metric"], r["representation"], r["column"]): r for r in rows}
    completeness = [r["metrics"]["dci@sampled"]["scores"]["completeness"] for r in runs]
    assert float(by_key[("dci", "sampled", "score:completeness")]["mean"]) == pytest.approx(np.mean(completeness))
    assert float(by_key[("dci", "mean", "score")]["mean"]) == pytest.approx(
        np.mean([r["metrics"]["dci"]["score"] for r in runs]))
    assert by_key[("final", "", "recon")]["n"] == "2"
    assert {r["representation"] for r in rows if r["metric"] == "toy_metric"} == {"mean"}


def test_results_saved_before_representations_read_as_the_mean(tmp_path):
    run = tmp_path / "runs" / "vae" / "seed1"
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({
        "status": "complete", "protocol_fingerprint": "f", "dataset": {"factor_names": ["a", "b"]},
        "metrics": {"mig": {"score": 0.2, "per_factor": {"a": 0.1, "b": 0.3}}},
        "final": {"recon": 1.0, "kl": 2.0, "beta": 1.0}}))
    comparison = aggregate(tmp_path, ["vae"], [1])
    assert md_table(markdown(comparison), "MIG (mean representation)")[0] == ["model", "n", "a", "b", "MIG", "failed"]
    assert {r["representation"] for r in csv.DictReader(io.StringIO(csv_text(comparison)))
            if r["metric"] == "mig"} == {"mean"}


@pytest.mark.skipif("representations" not in inspect.signature(plan_runs).parameters,
                    reason="compare --representation is wired in disbench/cli/compare_cmd.py and compare/plan.py")
def test_compare_with_both_representations_end_to_end(toy_host, tmp_path, capsys):
    gin_file = tmp_path / "small_metrics.gin"
    gin_file.write_text(SMALL_GIN)

    def compare(metrics):
        return main(["compare", "--models", "vae", "--seeds", "1", "--protocol", TOY_PROTOCOL, "--out", "cmp",
                     "--metrics", metrics, "--representation", "mean,sampled", "--gin_file", str(gin_file),
                     "--device", "cpu", "--no-progress", "--no-figures"])

    assert compare("toy_metric") == 2  # toy_metric declares no sampled form: refused before anything is made
    assert "metric 'toy_metric' has no sampled form" in capsys.readouterr().err and not (tmp_path / "cmp").exists()
    assert compare("unsupervised,toy_metric@mean") == 0  # a name with its representation keeps it
    metrics = results(tmp_path / "cmp" / "runs" / "vae" / "seed1")["metrics"]
    assert set(metrics) == {"toy_metric", "unsupervised", "unsupervised@sampled"}
    manifest = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert manifest["metrics"] == ["unsupervised", "unsupervised@sampled", "toy_metric"]
    assert "--representation mean,sampled" in manifest["command"]
    md = (tmp_path / "cmp" / "table.md").read_text()
    assert md_table(md, "UNSUPERVISED (sampled representation)")[1][0] == "vae"
    capsys.readouterr()
    assert compare("unsupervised,toy_metric@mean") == 0 and "all complete" in capsys.readouterr().out
