"""The harness stands alone: with the dvae plugin disabled, a shipped protocol
parses and runs the baselines, and the run records what it left out."""

import json
import os
import subprocess
import sys
from pathlib import Path


def test_compare_of_baselines_on_smoke_without_the_dvae_plugin(tmp_path):
    env = {**os.environ, "DISBENCH_DISABLE_PLUGINS": "dvae", "DISBENCH_NO_PROGRESS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "disbench", "compare", "--models", "vae,betavae_h", "--seeds", "1",
         "--protocol", "smoke", "--out", "out", "--steps", "10", "--no-figures", "--device", "cpu",
         "--gin_param", "dsprites_synth.factor_sizes = (3, 6, 4, 4, 4)", "--gin_param", "dsprites_synth.cache = False"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    for model in ("vae", "betavae_h"):
        results = json.loads((tmp_path / "out" / "runs" / model / "seed1" / "results.json").read_text())
        assert results["status"] == "complete" and results["dataset"]["name"] == "dsprites_synth"
        assert "dvae" not in results["environment"]["plugins"]
        notes = " ".join(results["config_notes"])
        assert "PIBetaScheduler" in notes and "dvae (disabled)" in notes and "'rmig', 'mig'" in notes
        assert results["protocol"]["metrics"] == []
    assert "| betavae_h | 1 |" in (tmp_path / "out" / "table.md").read_text()


def test_unknown_bindings_are_still_errors_when_every_plugin_loads(full_host, capsys):
    from disbench.cli import main

    assert main(["train", "--model", "vae", "--protocol", "smoke", "--gin_param", "PIBetaSchedulr.ki = 1.0",
                 "--out", "x", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "No configurable matching 'PIBetaSchedulr'" in err and "did you mean 'PIBetaScheduler'" in err
    assert not Path("x").exists()
