"""The training step's engine: every model compiles, one device name, no select in a
run's backward, Adam's kernel follows the device, cuDNN autotuning follows
determinism, a layout that is NHWC for every convolution, bf16 only in the
encoder and decoder."""

from __future__ import annotations

import functools

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from disbench.cli import main
from disbench.config import Protocol
from disbench.determinism import configure_determinism
from disbench.errors import DisbenchError
from disbench.plugins import get_registry
from disbench.training.group import RunGroup
from tests.test_compiled_step import compile_counters, group, images
from tests.test_training import train_args

MODELS = ("betatcvae", "betavae_b", "betavae_h", "controlvae", "dipvae_i", "dipvae_ii", "dynamicvae",
          "dynamicvae_p", "dynamicvae_step", "dynamicvae_t", "factorvae", "vae")


class Ops(TorchDispatchMode):
    """Records the aten ops below vmap (what the kernels receive): name, tensor arguments."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        self.calls.append((func.overloadpacket.__name__, tensors))
        return func(*args, **(kwargs or {}))

    def named(self, name):
        return [tensors for op, tensors in self.calls if op == name]


def test_the_registered_models_are_the_ones_tested_here(full_host):
    shipped = [name for name in get_registry("models").names() if not name.startswith("toy_")]  # toy: the tests'
    assert tuple(shipped) == MODELS


@pytest.mark.parametrize("model", MODELS)
def test_every_registered_model_trains_under_compile(full_host, monkeypatch, model):
    """Dynamo and AOTAutograd as in 'compile' (aot_eager: without Inductor's C++ build),
    a run (K = 1), three steps, one trace of each part, no graph breaks."""
    counters = compile_counters(monkeypatch)
    g = group(model, 1, compile="compile")
    for _ in range(3):
        beta, logged = g.step()
    assert not counters["graph_break"] and not counters["recompiles"], dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] == 1  # the whole step, the auxiliary one included
    assert torch.isfinite(logged["loss"]).all() and int(g.step_count) == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
@pytest.mark.parametrize("model", MODELS)
def test_every_registered_model_trains_under_cudagraph(full_host, model):
    cls = get_registry("models").get(model)
    torch.manual_seed(1)
    models = [cls(latent_dim=4, num_channels=1, likelihood="bernoulli", dataset_size=72).cuda() for _ in range(2)]
    g = RunGroup(models, images(), [1, 2], Protocol(batch_size=8, latent_dim=4, compile="cudagraph"), "cuda")
    for _ in range(4):
        beta, logged = g.step()
        kept = {k: v.clone() for k, v in logged.items()}  # read before the next step begins
    assert all(torch.isfinite(v).all() for v in kept.values()) and int(g.step_count) == 4


def test_a_model_that_fails_to_compile_is_one_line_naming_it(full_host, monkeypatch, capsys):
    def failing_backend(graph, inputs):
        raise RuntimeError("no kernel for this\nand a long story")

    torch._dynamo.reset()
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=failing_backend))
    g = group("factorvae", 1, compile="compile")
    with pytest.raises(DisbenchError, match=r"Protocol.compile = 'compile': FactorVAE's step failed under "
                                            r"torch.compile \(.*no kernel for this\); train it with"):
        g.step()
    torch._dynamo.reset()
    assert main(train_args("run", "--no-eval", "--gin_param", "Protocol.compile = 'compile'")) != 0
    err = capsys.readouterr().err.strip()
    assert "VAE's step failed under torch.compile" in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_a_device_named_without_its_index_compiles_once(full_host, monkeypatch):
    """'cpu:0' (like 'cuda' against tensors on 'cuda:0') is normalised once: the
    controller's device matches the KL's, so step 2 does not recompile."""
    counters = compile_counters(monkeypatch)
    cls = get_registry("models").get("dynamicvae")
    torch.manual_seed(1)
    g = RunGroup([cls(latent_dim=4, num_channels=1, likelihood="bernoulli", dataset_size=72)], images(), [1],
                 Protocol(batch_size=8, latent_dim=4, compile="compile"), "cpu:0")
    assert g.device == torch.device("cpu")
    for _ in range(5):
        g.step()
    assert counters["stats"]["unique_graphs"] == 1 and not counters["recompiles"], dict(counters["recompiles"])


def test_a_run_uses_its_parameters_without_select():
    """K = 1 runs the model on each stacked [1, ...] parameter squeezed (a view, whose
    backward is a view too), not indexed ([0]: select, whose backward allocates and copies)."""
    g = group("vae", 1)
    with Ops() as ops:
        g.step()
    names = {name for name, _ in ops.calls}
    assert "select_backward" not in names and "squeeze" in names
    parameters = {p.data_ptr() for p in g.params.values()}
    assert not [ts for ts in ops.named("select") if ts[0].data_ptr() in parameters]


def test_adam_takes_the_kernel_of_the_device_it_resumes_on(full_host):
    """A checkpoint from CUDA (fused Adam) resumed on the CPU gets the CPU's multi-tensor
    Adam, and the other way round: the flags are the device's, not the checkpoint's."""
    trained = group("factorvae", 2)
    trained.step()
    states = trained.member_states()
    for s in states:
        for saved in (s["optimizer"], *s["auxiliary_optimizers"].values()):
            for param_group in saved["param_groups"]:
                param_group.update(fused=True, foreach=False)  # as saved by a CUDA run
    resumed = group("factorvae", 2)
    resumed.load_member_states(states, step=1)
    for optimizer in (resumed.optimizer, *resumed.auxiliary_optimizers.values()):
        assert (optimizer.param_groups[0]["foreach"], optimizer.param_groups[0]["fused"]) == (True, False)
    resumed.step()
    assert int(resumed.step_count) == 2


def test_cudnn_autotunes_unless_deterministic():
    before = torch.backends.cudnn.benchmark
    try:
        configure_determinism(False)
        assert torch.backends.cudnn.benchmark is True
        configure_determinism(True)
        assert torch.backends.cudnn.benchmark is False
    finally:
        configure_determinism(False)
        torch.backends.cudnn.benchmark = before


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_channels_last_reaches_every_convolution(k, channels_last):
    """Under Protocol.channels_last every convolution of encoder and decoder, forward and
    backward, in a run and in a fused group (vmap folds K into the channels), gets its
    input and weight in NHWC; without it, not."""
    g = group("vae", k, channels_last=channels_last)
    g.step()  # Adam's state exists: the layout survives an update
    with Ops() as ops:
        g.step()
    forward, backward = ops.named("convolution"), ops.named("convolution_backward")
    assert len(forward) == 10 and len(backward) == 10  # 5 convolutions, 5 transposed
    for x, w, *_ in forward + [ts[1:3] for ts in backward]:  # backward: (grad_out, input, weight)
        for t in (x, w):
            if t.shape[1] == 1 or t.shape[-2:] == (1, 1):  # one channel or one pixel: both layouts at once
                continue
            assert t.is_contiguous(memory_format=torch.channels_last) == channels_last, (t.shape, t.stride())


@pytest.mark.parametrize("k", [1, 2])
def test_bf16_runs_the_encoder_and_decoder_only(full_host, k):
    """Protocol.precision = 'bf16': every convolution in bfloat16 (also under vmap on the
    CPU, where autocast does not reach them); the reconstruction loss, the KL and
    FactorVAE's discriminator in float32."""
    g = group("factorvae", k, precision="bf16")
    with Ops() as ops:
        beta, logged = g.step()
    convolutions = ops.named("convolution") + ops.named("convolution_backward")
    assert convolutions and all(t.dtype == torch.bfloat16 for ts in convolutions for t in ts[:2])
    # the reconstruction loss over the pixels: one op, or under vmap a sum (the bf16 sums
    # are the decoder's last bias gradient, as under autocast)
    over_pixels = [ts for op in ("binary_cross_entropy_with_logits", "sum") for ts in ops.named(op)
                   if ts[0].shape[-2:] == (64, 64)]
    assert any(ts[0].dtype == torch.float32 for ts in over_pixels)
    assert all(ts[0].dtype == torch.float32 for ts in ops.named("binary_cross_entropy_with_logits"))
    products = [ts for op in ("addmm", "mm", "bmm", "baddbmm") for ts in ops.named(op)]
    discriminator = [ts for ts in products if any(1000 in t.shape for t in ts)]  # its 1000-unit layers
    assert discriminator and all(t.dtype == torch.float32 for ts in discriminator for t in ts)
    assert all(v.dtype == torch.float32 for v in logged.values())


@pytest.mark.numerical
def test_bf16_trains_as_fp32_does_within_its_precision(full_host):
    """100 steps of DynamicVAE from one seed in fp32 and in bf16: the logged losses differ
    (bf16 ran) by at most 1 % at any step and 0.2 % on average. bf16 keeps 8 bits of
    mantissa (a relative rounding of 2^-9 ≈ 0.2 % per value); the losses are sums over
    4096 pixels accumulated in float32, where independent roundings average out.
    Measured on an AMD EPYC (Zen 4), AVX-512 and AVX2 kernels: at most 0.14 %, on
    average 0.02-0.03 %."""
    losses = {}
    for precision in ("fp32", "bf16"):
        g = group("dynamicvae", 1, precision=precision)
        losses[precision] = torch.stack([g.step()[1]["loss"][0] for _ in range(100)])
    relative = (losses["bf16"] - losses["fp32"]).abs() / losses["fp32"].abs()
    assert relative.max() > 0
    assert relative.max() < 1e-2 and relative.mean() < 2e-3, (relative.max().item(), relative.mean().item())
