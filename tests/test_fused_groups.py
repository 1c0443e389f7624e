"""Fused groups: K runs trained as one computation are K ordinary runs."""

import contextlib
import copy
import json
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch

from disbench.cli import main
from disbench.config import Protocol
from disbench.plugins import get_registry
from disbench.training.group import RunGroup, adam_update
from disbench.training.scalars import read_scalars
from tests.conftest import TOY_PROTOCOL
from tests.test_training import _toy_entry_point, kill_after_checkpoint

pytestmark = pytest.mark.numerical

MODELS = ["dynamicvae", "controlvae", "vae", "betavae_b", "factorvae", "betatcvae"]
SEEDS = (1, 2, 3)
STEPS = 20

# The bounds of the two equivalence tests; their docstrings give the arguments.
ORDERS = 16  # how much further off one float32 order of the same sums may be than another
ULPS = 2.0 ** -20  # 8 float32 ulps (2^-23) of a value: what rounding the value itself leaves open
SUM_IN_ANOTHER_ORDER = 2.0 ** -17  # a float32 sum of 2^15 terms, reordered: sqrt(2^15 / 3) * 2^-24 = 2^-17.3
ADAM_FLIPS = 2.0 ** -10  # mean |Δw| in units of steps x lr: one weight in 2048 stepped the opposite way throughout


def compare(out, models, seeds="1-3", *extra):
    return main(["compare", "--models", models, "--seeds", seeds, "--protocol", TOY_PROTOCOL, "--out", str(out),
                 "--steps", str(STEPS), "--no-figures", "--device", "cpu", "--no-progress", *extra])


def load(run_dir):
    return json.loads((Path(run_dir) / "results.json").read_text())


def weights(run_dir):
    return torch.load(Path(run_dir) / "checkpoint.pt", weights_only=True)["model"]


def first_step(models, seeds, images, float64=False):
    """The first step of a group of (copies of) ``models``: the group, its βs and logged scalars.
    ``float64``: the same step in float64: the ``.float()`` casts of the models (which keep
    the KL in float32 under bf16) and of the sampler become ``.double()``; the noise stays
    the float32 draw it is, exact in float64."""
    models = [copy.deepcopy(m).double() if float64 else copy.deepcopy(m) for m in models]

    def keeping_gradients(params, grads, *args, **kwargs):  # the step's gradients, as p.grad
        for param, grad in zip(params, grads):
            param.grad = grad.clone()
        return adam_update(params, grads, *args, **kwargs)

    with mock.patch.object(torch.Tensor, "float", torch.Tensor.double) if float64 else contextlib.nullcontext(), \
            mock.patch("disbench.training.group.adam_update", keeping_gradients):
        group = RunGroup(models, images, list(seeds), Protocol(batch_size=8, latent_dim=4), "cpu")
        beta, logged = group.step()
    return group, beta, logged


def assert_rounding_only(fused, alone, exact, what):
    """``fused`` is no further from ``exact`` than ORDERS x ``alone`` + ULPS of its largest element."""
    fused, alone, exact = (t.detach().double() for t in (fused, alone, exact))
    error, unit = (fused - exact).abs().max().item(), (alone - exact).abs().max().item()
    bound = ORDERS * unit + ULPS * exact.abs().max().item()
    assert error <= bound, f"{what}: fused {error:.3g} off float64, alone {unit:.3g} (bound {bound:.3g})"


@contextlib.contextmanager
def without_onednn():
    """PyTorch's own convolution kernels instead of oneDNN's (any x86 CPU has both)."""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


def drift(out, other, models, seeds=SEEDS):
    """How far the runs in ``other`` are from those in ``out`` (``models`` x ``seeds``): the largest
    relative difference of a logged loss, reconstruction or β, and the mean |Δw| over all their weights."""
    rows, total, count = 0.0, 0.0, 0
    for model, seed in ((m, s) for m in models.split(",") for s in seeds):
        a, b = Path(out, "runs", model, f"seed{seed}"), Path(other, "runs", model, f"seed{seed}")
        for row_a, row_b in zip(read_scalars(a / "scalars.jsonl"), read_scalars(b / "scalars.jsonl")):
            for x, y in ((row_a[key], row_b[key]) for key in ("loss", "recon", "beta")):
                rows = max(rows, abs(x - y) / max(abs(x), abs(y)) if x != y else 0.0)
        wa, wb = weights(a), weights(b)
        total += sum((wa[n] - wb[n]).abs().sum().item() for n in wa)
        count += sum(w.numel() for w in wa.values())
    return rows, total / count


MIXED = "mixed"  # a group of one run of each of MODELS: members of six models, one forward


@pytest.mark.parametrize("model", [*MODELS, MIXED])
def test_a_fused_step_equals_the_members_own_steps(full_host, model):
    """One step of a group of 3 is each member's step alone, given the same weights:
    the members draw their batches and noise from their own generators (whose states
    after the step are the same), so both compute the same numbers, in another order
    of float32 operations (grouped kernels). Each gradient, β and logged scalar is
    compared with the same step in float64 (its own error, ~1e-16, is nothing here):
    the fused step's largest error is at most 16 x the ordinary step's + 2^-20 of the
    largest element.

    * The ordinary step's error is the unit: this CPU's rounding of these very sums,
      whatever its kernels.
    * 16: orders of summation differ in accuracy, a sequential sum's error growing as
      sqrt(n), a blocked one's as log2(n); for the longest sums here, the loss's
      8 x 64 x 64 = 2^15 pixel terms, sqrt(2^15 / 3) / 15 = 7, and 16 leaves twice that.
    * 2^-20: 8 float32 ulps of the largest element, for a tensor the ordinary step
      happens to get (nearly) exact.

    Measured, with AVX-512 and with AVX2 kernels: errors at most 0.82 x (the ordinary
    step's + 2^-20), 0.09 x the bound. A member given another's batch or noise is
    off by O(1); one whose loss is scaled by 1.01 by 1% of a gradient, 400 x the bound."""
    images = (torch.rand(72, 1, 64, 64, generator=torch.Generator().manual_seed(0)) > 0.8).to(torch.uint8) * 255
    names = MODELS if model == MIXED else [model] * len(SEEDS)
    seeds = range(1, len(names) + 1)
    torch.manual_seed(1)
    models = [get_registry("models").get(name)(latent_dim=4, num_channels=1, likelihood="bernoulli",
                                                dataset_size=72) for name in names]
    fused, beta, logged = first_step(models, seeds, images)
    for k, (seed, member) in enumerate(zip(seeds, models)):
        alone, beta_k, logged_k = first_step([member], [seed], images)
        exact, beta_64, logged_64 = first_step([member], [seed], images, float64=True)
        assert logged_k.keys() == logged_64.keys() and set(logged_k) <= set(logged)
        # what another model of the group logs is NaN for this member, and left out of its rows
        assert all(torch.isnan(logged[key][k]).all() for key in set(logged) - set(logged_k))
        assert_rounding_only(beta[k], beta_k[0], beta_64[0], "β")
        for key in logged_k:
            assert_rounding_only(logged[key][k], logged_k[key][0], logged_64[key][0], key)
        ours, theirs, exact_tensors = (g.member_tensors(i) for g, i in ((fused, k), (alone, 0), (exact, 0)))
        assert list(ours) == list(theirs)
        for name, (p, i) in exact_tensors.items():
            assert_rounding_only(ours[name][0].grad[ours[name][1]], theirs[name][0].grad[0], p.grad[i], name)
        ours, theirs = fused.member_states()[k], alone.member_states()[0]
        assert list(ours["model"]) == list(theirs["model"])
        assert ours["optimizer"]["state"].keys() == theirs["optimizer"]["state"].keys()
        assert {n: o["state"].keys() for n, o in ours["auxiliary_optimizers"].items()} == \
            {n: o["state"].keys() for n, o in theirs["auxiliary_optimizers"].items()}
        assert torch.equal(ours["sampler"]["generator"], theirs["sampler"]["generator"])
        assert torch.equal(ours["noise"], theirs["noise"])


@pytest.mark.parametrize("model", [*MODELS, MIXED])
def test_a_fused_group_of_three_is_three_ordinary_runs(full_host, model):
    """After 20 steps the members' run folders are unfused runs' (same files, layout,
    fingerprint, checkpoint and metrics entries) and their numbers differ from the
    ordinary runs' by rounding only. Over 20 steps rounding is amplified, by chance:
    Adam divides each gradient by its running RMS, so where a gradient is ~0 rounding
    decides the sign of a step of ~lr, and the change spreads from there. So the unit
    of drift is measured: the spread between the ordinary runs and a third, ordinary
    run without oneDNN (PyTorch's own convolution kernels, on any x86 CPU: the same
    run, rounded otherwise). Over the 3 seeds, the fused runs' drift from the ordinary
    ones is at most 16 x that spread (16: as in the test above) + a floor:

    * logged loss, reconstruction and β: the largest relative difference; floor 2^-17,
      what a float32 sum of a loss's 2^15 pixel terms (8 x 64 x 64) may change by in
      another order of summation (sqrt(2^15 / 3) x 2^-24);
    * weights: the mean |Δw|; floor 2^-10 x 20 steps x lr, as if one weight in 2048
      had taken all its Adam steps (each ~lr at most) the opposite way.

    Measured, with AVX-512 and with AVX2 kernels: drift / spread at most 3.6, the
    drifts at most 0.16 x their bounds. A member trained on another's batch or noise,
    or whose Adam moments are averaged with another's, moves the logged values by
    2e-3 (relative) or more: 11 x the bound or more. (FactorVAE's discriminator drifts
    by rounding about as far as such bugs move it: there the logged values catch them.)
    A group of three models, two runs each, is held to the same bounds (measured: drifts
    at most 0.10 x their bounds with AVX2 kernels, 0.001 x with AVX-512)."""
    # MIXED: one group of three models, two runs each (each model's runs together)
    models, seeds, size = ("dynamicvae,factorvae,betatcvae", (1, 2), 6) if model == MIXED else (model, SEEDS, 3)
    seed_range = f"{seeds[0]}-{seeds[-1]}"
    assert compare("alone", models, seed_range, "--fuse", "1") == 0
    assert compare("fused", models, seed_range, "--fuse", str(size)) == 0
    with without_onednn():
        assert compare("other_kernels", models, seed_range, "--fuse", "1") == 0
    for index, (model, seed) in enumerate((m, s) for m in models.split(",") for s in seeds):
        a, b = Path(f"alone/runs/{model}/seed{seed}"), Path(f"fused/runs/{model}/seed{seed}")
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        assert load(a)["execution"]["fused_group"] == {"size": 1, "index": 0, "members": [str(a)]}
        group = load(b)["execution"]["fused_group"]
        assert group["size"] == size and group["index"] == index and len(group["members"]) == size
        assert load(a)["model_config"] == load(b)["model_config"]
        assert load(a)["protocol_fingerprint"] == load(b)["protocol_fingerprint"]
        rows_a, rows_b = read_scalars(a / "scalars.jsonl"), read_scalars(b / "scalars.jsonl")
        assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b] and rows_a
        assert all(row_a.keys() == row_b.keys() for row_a, row_b in zip(rows_a, rows_b))
        ca = torch.load(a / "checkpoint.pt", weights_only=True)
        cb = torch.load(b / "checkpoint.pt", weights_only=True)
        assert ca.keys() == cb.keys() and ca["model"].keys() == cb["model"].keys()
        assert ca["optimizer"]["state"].keys() == cb["optimizer"]["state"].keys()
        assert load(b)["metrics"].keys() == load(a)["metrics"].keys()
    (rows, dw), (rows_spread, dw_spread) = (drift("alone", "fused", models, seeds),
                                            drift("alone", "other_kernels", models, seeds))
    bound = ORDERS * rows_spread + SUM_IN_ANOTHER_ORDER
    assert rows <= bound, f"logged values {rows:.3g} apart, without oneDNN {rows_spread:.3g} (bound {bound:.3g})"
    bound = ORDERS * dw_spread + ADAM_FLIPS * STEPS * Protocol().lr
    assert dw <= bound, f"weights {dw:.3g} apart, without oneDNN {dw_spread:.3g} (bound {bound:.3g})"


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
    """A group of two models (one with an auxiliary optimizer), two runs each."""
    env = _toy_entry_point(tmp_path)
    cmd = [sys.executable, "-m", "disbench", "compare", "--models", "betavae_b,factorvae", "--seeds", "1-2",
           "--protocol", TOY_PROTOCOL, "--device", "cpu", "--steps", "150", "--no-figures", "--fuse", "4",
           "--gin_param", "Protocol.batch_size = 4"]
    subprocess.run(cmd + ["--out", "whole"], env=env, check=True, capture_output=True)

    kill_after_checkpoint(cmd + ["--out", "killed"], env, Path("killed/runs/factorvae/seed2/checkpoint.pt"),
                          at_least=30, total=150)
    done = subprocess.run(cmd + ["--out", "killed"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "4 to resume" in done.stdout
    for model, seed in ((m, s) for m in ("betavae_b", "factorvae") for s in (1, 2)):
        whole, killed = Path(f"whole/runs/{model}/seed{seed}"), Path(f"killed/runs/{model}/seed{seed}")
        assert len(load(killed)["execution"]["fused_group"]["members"]) == 4
        ww, wk = weights(whole), weights(killed)
        assert all(torch.equal(ww[k], wk[k]) for k in ww)
        assert read_scalars(whole / "scalars.jsonl") == read_scalars(killed / "scalars.jsonl")


def test_groups_refuse_what_does_not_fit(full_host, capsys, monkeypatch):
    import disbench.training.loop as loop

    monkeypatch.setattr(loop, "available_memory_bytes", lambda device: 10_000_000)
    assert compare("out", "vae", "1-2", "--fuse", "2") == 1
    assert "needs about" in load("out/runs/vae/seed1")["error"] and "fuse fewer runs" in load(
        "out/runs/vae/seed1")["error"]


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
    groups = {tuple(load(f"par/runs/vae/seed{s}")["execution"]["fused_group"]["members"]) for s in (1, 2, 3, 4)}
    assert len(groups) == 2 and all(len(g) == 2 for g in groups)
