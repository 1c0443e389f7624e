"""A step that can be captured (Protocol.compile): the training step reads nothing
back to the host, compiles without recompiling per step, and 'cudagraph' needs CUDA."""

import functools
from pathlib import Path

import pytest
import torch

from disbench.cli import main
from disbench.config import Protocol
from disbench.errors import DisbenchError
from disbench.plugins import get_registry
from disbench.training.group import RunGroup
from tests.conftest import TOY_PROTOCOL

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels

HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")


def images():
    return (torch.rand(72, 1, 64, 64, generator=torch.Generator().manual_seed(0)) > 0.8).to(torch.uint8) * 255


MIXED = "dynamicvae,factorvae,betavae_b"  # a group of several models: k runs of each


def group(model, k, scheduler=None, **protocol):
    """A group of ``k`` runs of ``model`` (of each, for a comma-separated list)."""
    names = [name for name in model.split(",") for _ in range(k)]
    torch.manual_seed(1)
    models = [get_registry("models").get(name)(latent_dim=4, num_channels=1, likelihood="bernoulli", dataset_size=72,
                                               scheduler=scheduler and scheduler()) for name in names]
    return RunGroup(models, images(), list(range(1, len(names) + 1)), Protocol(batch_size=8, latent_dim=4, **protocol),
                    "cpu")


@pytest.mark.parametrize("model", ["dynamicvae", "controlvae", "betavae_b", "factorvae", MIXED])
@pytest.mark.parametrize("k", [1, 2])
def test_the_step_reads_nothing_back_to_the_host(full_host, monkeypatch, model, k):
    """Every way a tensor's value reaches the host raises during the steps: the
    step counter, the set point C(t), the controller and the losses stay on the
    device. (Only Adam on the CPU reads its step count, a CPU tensor: host memory,
    no synchronisation; on CUDA the fused Adam keeps it on the device.)"""
    g = group(model, k)
    g.step()  # Adam's state exists from here on
    adam_steps = {id(s["step"]) for o in (g.optimizer, *g.auxiliary_optimizers.values()) for s in o.state.values()}
    reads = []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def guarded(self, *args, _name=name, _original=original, **kwargs):
            if id(self) not in adam_steps:
                reads.append(_name)
                raise AssertionError(f"the step read a tensor back to the host: Tensor.{_name}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, guarded)
    for _ in range(3):
        g.step()
    monkeypatch.undo()
    assert not reads
    assert g.step_count.device == g.device and int(g.step_count) == 4


def compile_counters(monkeypatch):
    """torch.compile with the aot_eager backend: Dynamo's tracing, guards and the
    compiled autograd graph as in 'compile' mode, without Inductor's slow C++ build."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    return counters


@pytest.mark.parametrize("model, k", [
    ("dynamicvae", 1),  # draws, forward, controller, loss, gradients, Adam, the log: one graph
    ("betavae_b", 2),   # its capacity C(step) reads the step counter: a tensor, no recompile
    ("factorvae", 2),   # and the discriminator's step, in the same graph
    (MIXED, 2),         # three models in one group: one forward, three losses, schedulers of two classes
])
def test_compile_traces_the_whole_step_once_and_matches_eager(full_host, monkeypatch, model, k):
    """One graph, no graph break (fullgraph), no recompile over 20 steps, which cross a
    new block of draws (drawn on the host between two steps)."""
    monkeypatch.setattr("disbench.training.draws.BLOCK_STEPS", 8)
    counters = compile_counters(monkeypatch)
    eager, compiled = group(model, k), group(model, k, compile="compile")
    for step in range(1, 21):
        beta_c, logged_c = compiled.step()
        beta, logged = eager.step()
        if step == 1:
            traced = dict(counters["stats"])
            assert traced["unique_graphs"] == 1 and not counters["graph_break"], dict(counters["graph_break"])
        if step == 1:
            assert torch.allclose(beta_c, beta, rtol=1e-6, atol=0)
            for key, value in logged.items():
                assert torch.allclose(logged_c[key].double(), value.double(), rtol=1e-4, atol=1e-6,
                                      equal_nan=True), key  # NaN: what another model of the group logs
    assert dict(counters["stats"]) == traced and not counters["recompiles"]  # steps 2..20 reuse the graph
    # reordered sums and Adam's tensor bias corrections drift a little (measured: 8.6e-6 for betavae_b)
    with torch.no_grad():
        drift = sum((compiled.params[n] - p).square().sum() for n, p in eager.params.items()).sqrt()
        assert drift <= 1e-4 * sum(p.square().sum() for p in eager.params.values()).sqrt()


def test_compile_steps_a_third_party_scheduler_outside_the_graph(full_host, monkeypatch):
    """A scheduler group that is not capturable (here a third party's, stepped member
    by member with Python state) runs eagerly between the compiled parts and gives
    the βs it gives uncompiled."""
    import cyclical_beta  # examples/third_party_scheduler

    from disbench.schedulers import PerMemberGroup

    counters = compile_counters(monkeypatch)
    scheduler = functools.partial(cyclical_beta.CyclicalBeta, period=3)
    eager, compiled = group("vae", 2, scheduler), group("vae", 2, scheduler, compile="compile")
    assert isinstance(compiled.schedulers, PerMemberGroup) and not compiled.schedulers.capturable
    for _ in range(6):
        beta, beta_c = eager.step()[0], compiled.step()[0]
        assert torch.equal(beta, beta_c)
    # the step splits where the host steps the scheduler (the gradients' graph splits with it)
    assert counters["stats"]["unique_graphs"] <= 4 and not counters["recompiles"]


def test_cudagraph_needs_cuda(full_host, capsys, monkeypatch):
    with pytest.raises(DisbenchError, match=r"Protocol.compile = 'cudagraph' needs CUDA and this run trains on cpu"):
        group("vae", 1, compile="cudagraph")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", "--model", "vae", "--protocol", TOY_PROTOCOL, "--out", "run", "--device", "cpu",
                 "--no-progress", "--gin_param", "Protocol.compile = 'cudagraph'"]) == 2
    err = capsys.readouterr().err
    assert "Protocol.compile = 'cudagraph' needs CUDA" in err and len(err.strip().splitlines()) == 1
    assert not Path("run").exists()  # refused before the run folder was made


def test_adam_is_multi_tensor_on_the_cpu(full_host):
    g = group("factorvae", 2)
    for optimizer in (g.optimizer, *g.auxiliary_optimizers.values()):
        assert optimizer.param_groups[0]["foreach"] is True and not optimizer.param_groups[0]["fused"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cudagraph_steps_without_syncs_and_match_eager(full_host):
    def on_cuda(model, k, **protocol):
        cls = get_registry("models").get(model)
        torch.manual_seed(1)
        models = [cls(latent_dim=4, num_channels=1, likelihood="bernoulli", dataset_size=72).cuda()
                  for _ in range(k)]
        return RunGroup(models, images(), [1, 2][:k], Protocol(batch_size=8, latent_dim=4, **protocol), "cuda")

    eager, captured = on_cuda("dynamicvae", 2), on_cuda("dynamicvae", 2, compile="cudagraph")
    assert captured.optimizer.param_groups[0]["fused"] is True
    for _ in range(3):  # warm-up and recording
        captured.step()
        eager.step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(5):
            beta_c, logged_c = captured.step()
            beta, logged = eager.step()
            copied = {k: v.clone() for k, v in logged_c.items()}
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.allclose(beta_c, beta, rtol=1e-4)
    assert torch.allclose(copied["loss"], logged["loss"], rtol=1e-3)
    assert int(captured.step_count) == 8 and int(captured.schedulers.t) == 8
