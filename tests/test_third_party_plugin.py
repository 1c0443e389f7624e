"""The example third-party scheduler (examples/third_party_scheduler), installed
as its own distribution, is found through the `disbench` entry point and usable
from gin. The README's test command installs it."""

import functools
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch

from disbench.training.scalars import read_scalars
from tests.conftest import TOY_PROTOCOL
from tests.test_training import _toy_entry_point


def test_example_is_installed():
    names = {ep.name for ep in metadata.entry_points(group="disbench")}
    assert {"cyclical_beta", "kl_target_beta"} <= names, (
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


def test_a_closed_loop_law_is_batched_and_captured_for_free(full_host, monkeypatch):
    """examples/third_party_scheduler/kl_target_beta.py declares gains, state and a step on
    [K] tensors, nothing else: a fused group of 3 steps its members as one ClosedLoopGroup
    (equal, member by member, to each scheduler alone), and a compiled training step traces
    it inside its one graph, without recompiling, giving the eager βs."""
    import kl_target_beta

    from disbench.control import ClosedLoopGroup
    from disbench.schedulers import group_scheduler
    from tests.test_compiled_step import compile_counters, group

    make = lambda: [kl_target_beta.KLTargetBeta(target=2.0, rate=r) for r in (0.01, 0.02, 0.05)]  # noqa: E731
    batched, alone = group_scheduler(make()), make()
    assert isinstance(batched, ClosedLoopGroup) and batched.capturable
    kls = torch.rand(40, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 4
    for kl in kls:
        betas = batched.step(kl)
        assert all(torch.equal(betas[k], s.step(kl[k])) for k, s in enumerate(alone))
    assert alone[0].config == {"name": "kl_target", "rate": 0.01, "beta_init": 1.0, "beta_min": 1e-3,
                               "beta_max": 1e3, "window": 5, "setpoint": {"name": "constant", "value": 2.0}}

    counters = compile_counters(monkeypatch)
    scheduler = functools.partial(kl_target_beta.KLTargetBeta, target=2.0, rate=0.05)
    eager, compiled = group("vae", 3, scheduler), group("vae", 3, scheduler, compile="compile")
    assert isinstance(compiled.schedulers, ClosedLoopGroup)
    for _ in range(5):
        beta, beta_c = eager.step()[0], compiled.step()[0]
        assert torch.allclose(beta_c, beta, rtol=1e-6, atol=0)
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"] and not counters["recompiles"]


def test_a_closed_loop_third_party_scheduler_trains_in_a_fused_group(full_host):
    from disbench.cli import main

    assert main(["compare", "--models", "vae", "--seeds", "1-3", "--protocol", TOY_PROTOCOL, "--out", "cmp",
                 "--device", "cpu", "--no-progress", "--no-figures", "--fuse", "3", "--threads", "1",
                 "--gin_param", "Run.scheduler = 'kl_target'", "--gin_param", "KLTargetBeta.target = 3.0"]) == 0
    for seed in (1, 2, 3):
        results = json.loads((Path("cmp/runs/vae") / f"seed{seed}" / "results.json").read_text())
        assert results["execution"]["fused_group"]["size"] == 3 and results["scheduler"]["name"] == "kl_target"
        rows = read_scalars(Path("cmp/runs/vae") / f"seed{seed}" / "scalars.jsonl")
        assert {"setpoint", "kl_avg", "error"} <= set(rows[-1]) and rows[-1]["setpoint"] == 3.0
