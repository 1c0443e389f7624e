"""DynamicVAE and its relatives as registered models, trained through the harness."""

import json
from pathlib import Path

import pytest
import torch

from disbench.cli import main
from disbench.training.scalars import read_scalars
from tests.conftest import TOY_PROTOCOL

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels

DVAE_NAMES = {
    "models": {"dynamicvae", "controlvae", "dynamicvae_p", "dynamicvae_step", "dynamicvae_t"},
    "schedulers": {"pi", "positional_pi"},
    "setpoints": {"hybrid", "step", "constant"},
}


def test_installed_entry_point_registers_everything(installed_plugins_json):
    data = installed_plugins_json
    dvae = next(p for p in data["plugins"] if p["name"] == "dvae")
    assert dvae["error"] is None and dvae["module"] == "dvae_plugin.plugin"
    for kind, names in DVAE_NAMES.items():
        assert names <= set(data[kind]), kind
    assert {"vae", "betavae_h", "betavae_b", "factorvae", "betatcvae"} <= set(data["models"])


def train(out, *extra, model="dynamicvae"):
    args = ["train", "--protocol", TOY_PROTOCOL, "--out", out, "--device", "cpu", "--no-progress", "--no-eval",
            "--gin_param", "Protocol.log_every = 1", *extra]
    if model:
        args += ["--model", model]
    return main(args)


def test_dynamicvae_logs_beta_from_beta0_decreasing_with_controller_scalars(full_host):
    assert train("dvae") == 0
    rows = read_scalars(Path("dvae/scalars.jsonl"))
    betas = [r["beta"] for r in rows]
    # step 1: window [kl, 0, 0, 0, 0], e = 0.5 − kl/5 > 0 → β just below β(0) = 150
    assert 149.9 < betas[0] < 150.0
    assert all(b2 < b1 for b1, b2 in zip(betas, betas[1:]))
    assert all(r["setpoint"] == 0.5 for r in rows)
    first = rows[0]
    assert first["kl_avg"] == pytest.approx(first["kl"] / 5, rel=1e-6)
    assert first["error"] == pytest.approx(0.5 - first["kl_avg"], rel=1e-6)
    results = json.loads(Path("dvae/results.json").read_text())
    assert results["scheduler"]["name"] == "pi" and results["scheduler"]["beta_init"] == 150.0
    assert results["model_config"]["class"] == "DynamicVAE"


def test_model_chosen_by_gin_binding_and_gin_params_reach_the_controller(full_host):
    assert train("bound", "--gin_param", "Run.model = 'dynamicvae'", "--gin_param", "PIBetaScheduler.beta_init = 30.0",
                 "--gin_param", "HybridAnnealing.start = 2.0", model=None) == 0
    rows = read_scalars(Path("bound/scalars.jsonl"))
    assert 29.9 < rows[0]["beta"] < 30.0 and rows[0]["setpoint"] == 2.0


@pytest.mark.parametrize("model, scheduler, window, setpoint", [
    ("controlvae", "positional_pi", 1, "step"),
    ("dynamicvae_p", "positional_pi", 5, "hybrid"),
    ("dynamicvae_step", "pi", 5, "step"),
    ("dynamicvae_t", "pi", 1, "hybrid"),
])
def test_ablation_models_train_with_their_controllers(full_host, model, scheduler, window, setpoint):
    assert train(model, "--steps", "10", model=model) == 0
    config = json.loads(Path(model, "results.json").read_text())["scheduler"]
    assert (config["name"], config["window"], config["setpoint"]["name"]) == (scheduler, window, setpoint)
    assert len(read_scalars(Path(model, "scalars.jsonl"))) == 10


def test_bad_controller_binding_is_a_clear_error(full_host, capsys):
    assert train("bad", "--gin_param", "PIBetaScheduler.ki = -0.005") == 2
    err = capsys.readouterr().err
    assert "PIBetaScheduler.ki must be > 0" in err and "Traceback" not in err


def test_dynamicvae_resume_continues_the_same_beta_sequence(full_host, monkeypatch):
    from tests.test_training import interrupted_at_step

    assert train("whole") == 0
    with interrupted_at_step(monkeypatch, 15):
        assert train("cut") == 130
    assert main(["train", "--resume", "--out", "cut", "--device", "cpu", "--no-progress", "--no-eval"]) == 0
    assert read_scalars(Path("whole/scalars.jsonl")) == read_scalars(Path("cut/scalars.jsonl"))
    a = torch.load("whole/checkpoint.pt", weights_only=True)
    b = torch.load("cut/checkpoint.pt", weights_only=True)
    assert a["scheduler"]["t"] == b["scheduler"]["t"] == 30
    assert torch.equal(a["scheduler"]["beta_prev"], b["scheduler"]["beta_prev"])
