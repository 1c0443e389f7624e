"""The example third-party scheduler (examples/third_party_scheduler), installed
as its own distribution, is found through the `disbench` entry point and usable
from gin. The README's test command installs it."""

import json
import subprocess
import sys
from importlib import metadata

import pytest

from disbench.training.scalars import read_scalars
from tests.conftest import TOY_PROTOCOL
from tests.test_training import _toy_entry_point


def test_example_is_installed():
    names = {ep.name for ep in metadata.entry_points(group="disbench")}
    assert "cyclical_beta" in names, (
        "examples/third_party_scheduler is not installed: run the README's test command "
        "(pip install -e examples/third_party_scheduler)")


def test_disbench_plugins_lists_the_third_party_scheduler(installed_plugins_json):
    data = installed_plugins_json
    plugin = next(p for p in data["plugins"] if p["name"] == "cyclical_beta")
    assert plugin["error"] is None and plugin["version"] == "0.1.0"
    assert "cyclical" in data["schedulers"]


def test_train_uses_the_third_party_scheduler_from_gin(tmp_path):
    env = _toy_entry_point(tmp_path)
    subprocess.run([sys.executable, "-m", "disbench", "train", "--model", "vae", "--protocol", TOY_PROTOCOL,
                    "--out", "cyc", "--device", "cpu", "--no-eval", "--steps", "20",
                    "--gin_param", "Run.scheduler = 'cyclical'", "--gin_param", "CyclicalBeta.period = 10",
                    "--gin_param", "CyclicalBeta.beta_max = 2.0", "--gin_param", "Protocol.log_every = 1"],
                   env=env, check=True, capture_output=True)
    betas = [r["beta"] for r in read_scalars(tmp_path / "cyc" / "scalars.jsonl")]
    # each 10-step cycle: β rises 0 -> 2 over the first half, then holds at 2
    assert betas[:10] == pytest.approx([0.0, 0.4, 0.8, 1.2, 1.6, 2.0, 2.0, 2.0, 2.0, 2.0])  # float32 β
    assert betas[10:] == betas[:10]
    results = json.loads((tmp_path / "cyc" / "results.json").read_text())
    assert results["scheduler"]["name"] == "cyclical"
