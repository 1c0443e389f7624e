"""`disbench evaluate` on a trained tiny model writes MIG, sampled MIG and RMIG into results.json."""

import json
from pathlib import Path

from disbench.cli import main
from tests.conftest import TOY_PROTOCOL


def test_evaluate_writes_all_three_metrics(full_host, capsys):
    assert main(["train", "--model", "dynamicvae", "--protocol", TOY_PROTOCOL, "--out", "run", "--device", "cpu",
                 "--no-progress", "--no-eval", "--gin_param", "PIBetaScheduler.beta_init = 5.0"]) == 0
    assert main(["evaluate", "run", "--metrics", "mig,mig_sampled,rmig", "--device", "cpu", "--no-progress",
                 ]) == 0
    out = capsys.readouterr().out
    assert "rmig" in out and "mig_sampled" in out
    metrics = json.loads(Path("run/results.json").read_text())["metrics"]
    assert set(metrics) == {"mig", "mig_sampled", "rmig"}
    for name, result in metrics.items():
        assert set(result["per_factor"]) == {"pos_x", "pos_y", "size"}, name
        assert 0.0 <= result["score"] <= 1.0, name
        assert abs(result["score"] - sum(result["per_factor"].values()) / 3) < 1e-9, name
    assert metrics["rmig"]["num_samples"] == 72  # the whole toy dataset by default
