"""Fused groups: K runs trained as one computation are K ordinary runs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from disbench.cli import main
from disbench.training.scalars import read_scalars
from tests.conftest import TOY_PROTOCOL
from tests.test_training import _toy_entry_point, kill_after_checkpoint

MODELS = ["dynamicvae", "controlvae", "vae", "betavae_b", "factorvae", "betatcvae"]


def compare(out, models, seeds="1-3", *extra):
    return main(["compare", "--models", models, "--seeds", seeds, "--protocol", TOY_PROTOCOL, "--out", str(out),
                 "--steps", "20", "--no-figures", "--device", "cpu", "--no-progress", *extra])


def load(run_dir):
    return json.loads((Path(run_dir) / "results.json").read_text())


def weights(run_dir):
    return torch.load(Path(run_dir) / "checkpoint.pt", weights_only=True)["model"]


def close(a, b, rel, abs_):
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), abs_)


@pytest.mark.parametrize("model", MODELS)
def test_a_fused_step_equals_the_members_own_steps(full_host, model):
    """One step of a group of 3 equals each member's step alone, given the same
    weights: the members draw their batches and noise from their own generators,
    so only the grouped kernels' order of summation differs (~1e-7): the logged
    scalars, β and every gradient agree to 1e-5."""
    import copy

    from disbench.config import Protocol
    from disbench.plugins import get_registry
    from disbench.training.group import RunGroup

    images = (torch.rand(72, 1, 64, 64, generator=torch.Generator().manual_seed(0)) > 0.8).to(torch.uint8) * 255
    cls = get_registry("models").get(model)
    protocol = Protocol(batch_size=8, latent_dim=4)
    torch.manual_seed(1)
    models = [cls(latent_dim=4, num_channels=1, likelihood="bernoulli", dataset_size=72) for _ in range(3)]
    fused = RunGroup([copy.deepcopy(m) for m in models], images, [1, 2, 3], protocol, "cpu")
    beta, logged = fused.step(1)
    for k, (seed, member) in enumerate(zip((1, 2, 3), models)):
        alone = RunGroup([copy.deepcopy(member)], images, [seed], protocol, "cpu")
        beta_k, logged_k = alone.step(1)
        assert torch.allclose(beta[k], beta_k[0], rtol=1e-6, atol=0)
        for key, value in logged_k.items():
            assert torch.allclose(logged[key][k].double(), value[0].double(), rtol=1e-5, atol=1e-6), key
        for name, p in alone.params.items():
            scale = p.grad.abs().max()
            assert torch.allclose(fused.params[name].grad[k], p.grad[0], rtol=1e-4, atol=1e-5 * scale), name
        ours, theirs = fused.member_states()[k], alone.member_states()[0]
        assert ours["optimizer"]["state"].keys() == theirs["optimizer"]["state"].keys()
        assert torch.equal(ours["sampler"]["generator"], theirs["sampler"]["generator"])
        assert torch.equal(ours["noise"], theirs["noise"])


@pytest.mark.parametrize("model", MODELS)
def test_a_fused_group_of_three_is_three_ordinary_runs(full_host, model):
    """After 20 steps the members' run folders are unfused runs' — same files,
    layout, fingerprint and checkpoint entries — and their losses agree to 1e-4
    relative. Not bit for bit, nor to 1e-5 in every scalar: Adam divides each
    gradient by its running RMS, so an element whose gradient is ~0 turns the
    grouped kernels' last-bit differences (see the test above) into steps of up to
    lr, and adversarial or near-zero quantities (FactorVAE's TC, a collapsing KL)
    drift further; the weights differ by less than one Adam step (lr = 1e-4) on average."""
    assert compare("alone", model, "1-3", "--fuse", "1") == 0
    assert compare("fused", model, "1-3", "--fuse", "3") == 0
    for seed in (1, 2, 3):
        a, b = Path(f"alone/runs/{model}/seed{seed}"), Path(f"fused/runs/{model}/seed{seed}")
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        assert "fused_group" not in load(a)
        group = load(b)["fused_group"]
        assert group["size"] == 3 and group["index"] == seed - 1 and len(group["members"]) == 3
        assert load(a)["protocol_fingerprint"] == load(b)["protocol_fingerprint"]
        rows_a, rows_b = read_scalars(a / "scalars.jsonl"), read_scalars(b / "scalars.jsonl")
        assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b] and rows_a
        for row_a, row_b in zip(rows_a, rows_b):
            assert row_a.keys() == row_b.keys()
            for key in ("loss", "recon"):
                assert close(row_a[key], row_b[key], rel=1e-4, abs_=0), (model, seed, row_a["step"], key)
            assert close(row_a["beta"], row_b["beta"], rel=1e-3, abs_=1e-6), (model, seed, row_a["step"])
        wa, wb = weights(a), weights(b)
        assert wa.keys() == wb.keys()
        for name in wa:
            difference = (wa[name] - wb[name]).abs()
            assert difference.mean() < 1e-4 and difference.max() < 20 * 1e-4, (model, seed, name)
        ca = torch.load(a / "checkpoint.pt", weights_only=True)
        cb = torch.load(b / "checkpoint.pt", weights_only=True)
        assert ca.keys() == cb.keys()
        assert ca["optimizer"]["state"].keys() == cb["optimizer"]["state"].keys()
        assert load(b)["metrics"].keys() == load(a)["metrics"].keys()


def test_a_member_that_diverges_fails_alone(full_host, capsys):
    """One member's β turns NaN (a per-run scheduler, stepped member by member):
    that member is marked failed with its last good checkpoint, the others finish."""
    args = ["--gin_param", "Run.scheduler = 'toy_nan_after'", "--steps", "30"]
    assert main(["compare", "--models", "vae", "--seeds", "1-3", "--protocol", TOY_PROTOCOL, "--out", "out",
                 "--no-figures", "--device", "cpu", "--no-progress", "--fuse", "3", *args]) == 1
    statuses = {s: load(f"out/runs/vae/seed{s}")["status"] for s in (1, 2, 3)}
    assert statuses == {1: "complete", 2: "failed", 3: "complete"}
    failed = load("out/runs/vae/seed2")
    assert "non-finite" in failed["error"] and "last good checkpoint (step 10" in failed["error"]
    assert torch.load("out/runs/vae/seed2/checkpoint.pt", weights_only=True)["step"] == 10
    assert load("out/runs/vae/seed1")["steps"] == 30 and "toy_metric" in load("out/runs/vae/seed3")["metrics"]


def test_a_killed_group_resumes_bit_identical(tmp_path):
    env = _toy_entry_point(tmp_path)
    cmd = [sys.executable, "-m", "disbench", "compare", "--models", "betavae_b", "--seeds", "1-2", "--protocol",
           TOY_PROTOCOL, "--device", "cpu", "--steps", "150", "--no-figures", "--fuse", "2",
           "--gin_param", "Protocol.batch_size = 4"]
    subprocess.run(cmd + ["--out", "whole"], env=env, check=True, capture_output=True)

    kill_after_checkpoint(cmd + ["--out", "killed"], env, Path("killed/runs/betavae_b/seed2/checkpoint.pt"),
                          at_least=30, total=150)
    done = subprocess.run(cmd + ["--out", "killed"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "2 to resume" in done.stdout
    for seed in (1, 2):
        whole, killed = Path(f"whole/runs/betavae_b/seed{seed}"), Path(f"killed/runs/betavae_b/seed{seed}")
        ww, wk = weights(whole), weights(killed)
        assert all(torch.equal(ww[k], wk[k]) for k in ww)
        assert read_scalars(whole / "scalars.jsonl") == read_scalars(killed / "scalars.jsonl")


def test_groups_refuse_what_does_not_fit(full_host, capsys, monkeypatch):
    import disbench.training.loop as loop

    monkeypatch.setattr(loop, "available_memory_bytes", lambda device: 10_000_000)
    assert compare("out", "vae", "1-2", "--fuse", "2") == 1
    assert "needs about" in load("out/runs/vae/seed1")["error"] and "fuse fewer runs" in load(
        "out/runs/vae/seed1")["error"]


def test_fuse_auto_says_what_it_chose(full_host, capsys):
    assert compare("out", "vae", "1-2", "--fuse", "auto") == 0
    out = capsys.readouterr().out
    assert "--fuse auto chose" in out and "K=1:" in out and "img/s" in out


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_bad_fuse_values_are_one_line_errors(full_host, capsys, value):
    assert compare("out", "vae", "1", "--fuse", value) == 2
    err = capsys.readouterr().err
    assert "--fuse" in err and len(err.strip().splitlines()) == 1


def test_fused_groups_run_in_parallel_workers(tmp_path):
    env = _toy_entry_point(tmp_path)
    done = subprocess.run([sys.executable, "-m", "disbench", "compare", "--models", "vae", "--seeds", "1-4",
                           "--protocol", TOY_PROTOCOL, "--out", "par", "--steps", "10", "--no-figures",
                           "--device", "cpu", "--fuse", "2", "--jobs", "2"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "in 2 worker processes" in done.stdout and "--fuse 2; 2 unit(s) of work" in done.stdout
    runs = json.loads(Path("par/compare.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["complete"] * 4
    pids = {r["worker"]["pid"] for r in runs}
    assert len(pids) == 2  # two groups, one per worker
    groups = {tuple(load(f"par/runs/vae/seed{s}")["fused_group"]["members"]) for s in (1, 2, 3, 4)}
    assert len(groups) == 2 and all(len(g) == 2 for g in groups)
