"""Runs of several models in one fused group: which may share one, how a compare
forms them, and that each member stays an ordinary run (the numerical equivalence
of a mixed group is in test_fused_groups.py and test_compiled_step.py)."""

import json
from pathlib import Path

import pytest
import torch

from disbench.baselines.dipvae import DIPVAEI
from disbench.baselines.factorvae import FactorVAE
from disbench.baselines.vae import VAE, BetaVAEH
from disbench.cli import main
from disbench.compare.execute import execute_unit, group_units
from disbench.compare.plan import plan_runs
from disbench.config import ConfigSources, Protocol
from disbench.errors import DisbenchError
from disbench.execution import ExecutionRequest
from disbench.training.group import RunGroup
from disbench.training.parts import configuration_spans, forward_key, ordered_by_configuration
from tests.compare_helpers import compare_args, results
from tests.conftest import TOY_PROTOCOL
from tests.toy_plugin import DivergingVAE

TABLE_1 = ["vae", "betavae_h", "factorvae", "betatcvae", "controlvae", "dynamicvae"]  # the paper's Table 1


class OwnForward(VAE):
    """A VAE whose forward pass is its own code (the same parameters)."""

    def forward(self, x, noise=None):
        return super().forward(x * 0.5, noise)


def test_models_on_one_architecture_share_a_forward_pass():
    arch = {"latent_dim": 4, "num_channels": 1}
    keys = {forward_key(cls(**arch)) for cls in (VAE, BetaVAEH, FactorVAE, DIPVAEI, DivergingVAE)}
    assert len(keys) == 1  # a discriminator (FactorVAE's auxiliary parameters) is the model's own
    assert forward_key(VAE(latent_dim=5, num_channels=1)) not in keys
    assert forward_key(VAE(latent_dim=4, num_channels=3)) not in keys
    assert forward_key(VAE(likelihood="gaussian", **arch)) not in keys
    assert forward_key(OwnForward(**arch)) not in keys


def test_a_group_refuses_models_whose_forward_differs():
    images = torch.zeros(8, 1, 64, 64, dtype=torch.uint8)
    with pytest.raises(DisbenchError, match="cannot share a fused group: their forward passes differ"):
        RunGroup([VAE(latent_dim=4), OwnForward(latent_dim=4)], images, [1, 2], Protocol(latent_dim=4), "cpu")


def test_members_are_grouped_by_configuration():
    models = [VAE(latent_dim=4), FactorVAE(latent_dim=4, gamma=2.0), VAE(latent_dim=4), FactorVAE(latent_dim=4, gamma=8.0)]
    assert ordered_by_configuration(models) == [0, 2, 1, 3]
    assert configuration_spans([models[k] for k in (0, 2, 1, 3)]) == [(0, 2), (2, 3), (3, 4)]
    with pytest.raises(DisbenchError, match="ordered by model configuration"):
        configuration_spans(models)


def test_table_1_fits_in_two_groups(full_host, tmp_path):
    """Six models x five seeds: two groups of 15 with --fuse 15, one with --fuse 30."""
    plan = plan_runs(tmp_path, TABLE_1, [1, 2, 3, 4, 5], ConfigSources(protocol=TOY_PROTOCOL))
    assert len({job.fuse_key for job in plan.jobs}) == 1
    assert [len(unit) for unit in group_units(plan.todo, 15)] == [15, 15]
    assert [len(unit) for unit in group_units(plan.todo, 30)] == [30]
    assert group_units(plan.todo, 30)[0] == plan.todo  # in the plan's order: model by model


def test_a_compare_fuses_across_models_into_ordinary_runs(toy_host, capsys):
    assert main(compare_args("out", "--fuse", "4", "--no-figures", models="vae,betavae_h", seeds="1-2")) == 0
    assert "--fuse 4; 1 unit(s) of work" in capsys.readouterr().out
    members = [f"out/runs/{m}/seed{s}" for m in ("vae", "betavae_h") for s in (1, 2)]
    for index, run in enumerate(members):
        done = results(run)
        assert done["status"] == "complete" and "toy_metric" in done["metrics"]
        assert done["execution"]["fused_group"] == {"size": 4, "index": index, "members": members}
        assert done["model"] == run.split("/")[2] and done["final"]["beta"] == (1.0 if "vae/" in run else 4.0)


def test_members_given_out_of_order_come_back_in_their_order(toy_host, tmp_path):
    plan = plan_runs(tmp_path, ["vae", "betavae_h"], [1, 2], ConfigSources(protocol=TOY_PROTOCOL))
    vae1, vae2, beta1, beta2 = plan.todo
    interleaved = [beta1, vae1, beta2, vae2]
    outcomes = execute_unit(interleaved, device="cpu", execution=ExecutionRequest(threads=1), progress=False)
    assert [(o["model"], o["seed"], o["status"]) for o in outcomes] == [
        ("betavae_h", 1, "complete"), ("vae", 1, "complete"), ("betavae_h", 2, "complete"), ("vae", 2, "complete")]
    # the group held each model's runs together, models in order of first appearance
    assert [results(job.run_dir)["execution"]["fused_group"]["index"] for job in interleaved] == [0, 2, 1, 3]


def test_a_member_that_diverges_fails_alone_in_a_mixed_group(toy_host):
    """toy_diverging's loss turns NaN at step 5: it fails with no checkpoint; the vae
    runs of its group finish."""
    assert main(compare_args("out", "--fuse", "3", "--no-figures", models="vae,toy_diverging", seeds="1")) == 1
    assert results("out/runs/toy_diverging/seed1")["status"] == "failed"
    assert "non-finite" in results("out/runs/toy_diverging/seed1")["error"]
    assert results("out/runs/vae/seed1")["status"] == "complete"
    assert results("out/runs/vae/seed1")["execution"]["fused_group"]["size"] == 2
    assert json.loads(Path("out/compare.json").read_text())["fuse_rule"]["size"] == 3


def test_a_group_checkpoint_is_replaced_whole_or_not_at_all(tmp_path):
    """A member whose state cannot be written (here: a lambda, which torch.save refuses)
    leaves every member's checkpoint and results.json as they were, and no stray files:
    members are never left at different steps by a failed or interrupted write."""
    from disbench.runs import update_results
    from disbench.training.checkpoint import CHECKPOINT_NAME, save_group_checkpoint

    runs = [tmp_path / f"run{k}" for k in range(3)]
    for run in runs:
        run.mkdir()
        update_results(run, checkpoint_step=10)
    save_group_checkpoint([(run, {"step": 10}, {"checkpoint_step": 10}) for run in runs])
    before = {p: p.read_bytes() for run in runs for p in run.iterdir()}
    states = [{"step": 20}, {"step": 20}, {"step": 20, "bad": lambda: 0}]
    with pytest.raises(Exception):
        save_group_checkpoint([(run, state, {"checkpoint_step": 20}) for run, state in zip(runs, states)])
    assert {p: p.read_bytes() for run in runs for p in run.iterdir()} == before
    save_group_checkpoint([(run, {"step": 20}, {"checkpoint_step": 20}) for run in runs])
    assert all(torch.load(run / CHECKPOINT_NAME, weights_only=True)["step"] == 20 and
               results(run)["checkpoint_step"] == 20 for run in runs)
