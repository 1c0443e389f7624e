"""benchmarks/paper_table1.py and quick_table1.py, driven on the toy protocol."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.compare_helpers import SEEDS, results
from tests.conftest import TESTS, TOY_PROTOCOL

pytest_plugins = ["tests.compare_fixtures"]
BENCHMARKS = TESTS.parent / "benchmarks"


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paper_table1_plan_prints_command_and_estimate_and_trains_nothing(toy_host, capsys):
    paper = load_script("paper_table1")
    assert paper.main(["--plan", "--protocol", TOY_PROTOCOL, "--models", "vae", "--metrics", "toy_metric",
                       "--device", "cpu", "--timing-steps", "2", "--out", "planned"]) == 0
    out = capsys.readouterr().out
    assert f"command: disbench compare --models vae --seeds 1-5 --protocol {TOY_PROTOCOL} --metrics toy_metric" in out
    assert "estimate: 5 runs left, 150 training steps, 1 at a time -> about" in out
    assert "ms per training step (batch 8, cpu" in out
    assert not Path("planned").exists()


def test_quick_table1_runs_compare_and_writes_its_summary(toy_host, capsys):
    quick = load_script("quick_table1")
    assert quick.main(["--protocol", TOY_PROTOCOL, "--models", "vae,betavae_h", "--seeds", "1", "--metrics",
                       "toy_metric", "--out", "q", "--timing-steps", "1", "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "command: disbench compare --models vae,betavae_h --seeds 1" in out and "--no-figures" in out
    assert "DynamicVAE final β: n/a" in out  # no dynamicvae in this comparison: said, not invented
    summary = json.loads(Path("q/quick_summary.json").read_text())
    assert summary["score"]["vae"]["mean"] == results("q/runs/vae/seed1")["metrics"]["toy_metric"]["score"]
    assert Path("q/table.md").is_file() and not Path("q/figures").exists()


def test_quick_summary_checks_the_claims_on_the_measured_numbers(compared_copy):
    from disbench.compare.aggregate import aggregate

    quick = load_script("quick_table1")
    shutil.move(compared_copy / "runs" / "betavae_h", compared_copy / "runs" / "dynamicvae")  # β = 4 plays it
    summary = quick.summarize(aggregate(compared_copy, ["dynamicvae", "vae"], list(SEEDS)), "toy_metric")
    assert summary["final_beta"]["mean"] == 4.0 and summary["final_beta_below_1"] is False
    dyn, vae = ([results(compared_copy / "runs" / m / f"seed{s}")["metrics"]["toy_metric"]["score"] for s in SEEDS]
                for m in ("dynamicvae", "vae"))
    assert summary["score_minus"]["vae"] == pytest.approx(np.mean(dyn) - np.mean(vae))
    assert summary["score_minus"]["factorvae"] is None and summary["recon_lower_than"]["betavae_h"] is None
    lines = quick.report_lines(summary)
    assert lines[0].startswith("DynamicVAE final β: 4 ± 0 (n=2) — below 1 (paper): no")
