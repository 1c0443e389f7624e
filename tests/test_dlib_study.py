"""disentanglement_lib's study in the harness: its architecture and likelihood as
protocol settings, and its protocols (gin/protocols/dlib/)."""

import math
from pathlib import Path

import gin
import pytest
import torch
from torch import nn

from disbench.builders import build_model, check_run_config
from disbench.cli import main
from disbench.config import ConfigSources, Protocol, Run, available, fingerprint, parse_sources
from disbench.data import DatasetInfo
from disbench.errors import DisbenchError
from disbench.models.architecture import conv64, dlib_conv
from disbench.plugins import get_registry
from disbench.training.group import RunGroup
from tests.conftest import TOY_PROTOCOL

# The study's networks as its source lists them (disentanglement_lib's conv_encoder and
# deconv_decoder): (kind, out, kernel, stride) with TensorFlow's 'same' padding.
ENCODER = [("conv", 32, 4, 2), ("conv", 32, 4, 2), ("conv", 64, 2, 2), ("conv", 64, 2, 2), ("dense", 256),
           ("heads", None)]  # two dense heads: means and log variances
DECODER = [("dense", 256), ("dense", 1024), ("deconv", 64, 4, 2), ("deconv", 32, 4, 2), ("deconv", 32, 4, 2),
           ("deconv", "channels", 4, 2)]
STUDY_DATASETS = ["dsprites_full", "color_dsprites", "noisy_dsprites", "scream_dsprites", "smallnorb", "cars3d",
                  "shapes3d"]


def study_layers(channels: int, latent: int):
    """Each layer's (weight shape as torch stores it, output shape) from the lists above, for a
    64 x 64 x channels input, 'same' padding: a stride-2 layer halves (convolution) or doubles
    (transposed) the side."""
    layers, (c, side) = [], (channels, 64)
    for kind, out, *rest in ENCODER:
        if kind == "conv":
            k, _ = rest
            layers.append(((out, c, k, k), (out, side // 2, side // 2)))
            c, side = out, side // 2
        elif kind == "dense":
            layers.append(((out, c * side * side), (out,)))
            c, side = out, 1
        else:
            layers += [((latent, c), (latent,))] * 2
    c = latent
    for kind, out, *rest in DECODER:
        out = channels if out == "channels" else out
        if kind == "dense":
            layers.append(((out, c), (out,)))
            c, side = out, 1
            if out == 1024:
                c, side = 64, 4
        else:
            k, _ = rest
            layers.append(((c, out, k, k), (out, side * 2, side * 2)))
            c, side = out, side * 2
    return layers


@pytest.mark.parametrize("channels", [1, 3])
def test_dlib_conv_is_the_studys_network(channels):
    torch.manual_seed(0)
    encoder, decoder = dlib_conv(channels, 10)
    expected = study_layers(channels, 10)
    layers = [m for m in (*encoder.modules(), *decoder.modules()) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d,
                                                                                       nn.Linear))]
    outputs = []
    hooks = [m.register_forward_hook(lambda m, i, o: outputs.append(tuple(o.shape[1:]))) for m in layers]
    mu, logvar = encoder(torch.rand(2, channels, 64, 64))
    decoder(mu)
    for h in hooks:
        h.remove()
    encoder_layers = len(ENCODER) + 1
    assert [tuple(m.weight.shape) for m in layers] == [w for w, _ in expected]
    assert outputs[:encoder_layers] == [o for _, o in expected[:encoder_layers]]  # the heads run in order
    assert outputs[encoder_layers:] == [o for _, o in expected[encoder_layers:]]
    assert mu.shape == logvar.shape == (2, 10)
    count = sum(math.prod(w) + o[0] for w, o in expected)  # a bias per output channel or feature
    assert sum(p.numel() for p in (*encoder.parameters(), *decoder.parameters())) == count
    # TensorFlow's defaults: Glorot-uniform kernels (bound sqrt(6 / (fan_in + fan_out))), zero biases
    for m in layers:
        receptive = m.weight[0, 0].numel() if m.weight.dim() == 4 else 1
        fans = (m.weight.shape[0] + m.weight.shape[1]) * receptive
        bound = math.sqrt(6 / fans)
        assert m.weight.abs().max() <= bound and m.weight.abs().max() > 0.9 * bound
        assert torch.equal(m.bias, torch.zeros_like(m.bias))


def test_conv64_stays_what_it_was():
    """The default architecture: the same layers, initialisation and random stream as before
    there was a choice (a model built from one seed has the same parameters), and neither
    setting at its default changes a protocol's fingerprint or a model's config."""
    from disbench.baselines.vae import VAE
    from disbench.models.architecture import Decoder, Encoder, kaiming_init

    torch.manual_seed(3)
    built = VAE(latent_dim=10)
    torch.manual_seed(3)
    encoder, decoder = Encoder(1, 10), Decoder(1, 10)
    whole = nn.ModuleDict({"encoder": encoder, "decoder": decoder})
    kaiming_init(whole)
    assert all(torch.equal(a, b) for a, b in zip(built.parameters(), whole.parameters()))
    assert "architecture" not in built.config()
    defaults = Protocol()
    assert fingerprint(defaults) == fingerprint(Protocol(architecture="conv64", likelihood="dataset"))
    assert fingerprint(Protocol(architecture="dlib_conv")) != fingerprint(defaults)
    assert fingerprint(Protocol(likelihood="bernoulli")) != fingerprint(defaults)


@pytest.mark.parametrize("architecture", ["conv64", "dlib_conv"])
def test_every_model_trains_on_either_architecture_alone_and_fused(full_host, architecture):
    images = (torch.rand(16, 1, 64, 64, generator=torch.Generator().manual_seed(0)) > 0.7).to(torch.uint8) * 255
    registry = get_registry("models")
    names = [n for n in registry.names() if not n.startswith("toy_")]
    assert {"dynamicvae", "controlvae", "factorvae", "dipvae_i"} <= set(names)
    for name in names:
        models = [registry.get(name)(latent_dim=4, dataset_size=16, architecture=architecture) for _ in range(2)]
        assert models[0].config().get("architecture", "conv64") == architecture
        group = RunGroup(models, images, [1, 2], Protocol(batch_size=4, latent_dim=4, architecture=architecture),
                         "cpu")
        for _ in range(2):
            beta, logged = group.step()
        assert torch.isfinite(logged["loss"]).all() and torch.isfinite(beta).all(), name


def test_a_plugins_architecture_is_chosen_by_name(toy_host, capsys):
    assert main(["train", "--model", "vae", "--protocol", TOY_PROTOCOL, "--out", "run", "--device", "cpu",
                 "--no-progress", "--no-eval", "--steps", "3",
                 "--gin_param", "Protocol.architecture = 'toy_tiny'"]) == 0
    weights = torch.load("run/checkpoint.pt", weights_only=True)["model"]
    assert set(weights) == {"encoder.net.1.weight", "encoder.net.1.bias", "decoder.0.weight", "decoder.0.bias"}
    assert main(["train", "--model", "vae", "--protocol", TOY_PROTOCOL, "--out", "bad", "--device", "cpu",
                 "--no-progress", "--gin_param", "Protocol.architecture = 'conv65'"]) == 2
    err = capsys.readouterr().err
    assert "unknown architecture 'conv65'" in err and "conv64, dlib_conv, toy_tiny" in err
    assert not Path("bad").exists()


FAMILIES = {  # the datasets' own likelihoods: binary images Bernoulli, grey and colour ones Gaussian
    "binary (dSprites)": DatasetInfo("dsprites", 100, (1, 64, 64), "bernoulli"),
    "grey (SmallNORB)": DatasetInfo("smallnorb", 100, (1, 64, 64), "gaussian"),
    "colour (Shapes3D, Cars3D)": DatasetInfo("shapes3d", 100, (3, 64, 64), "gaussian"),
}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("setting", ["dataset", "bernoulli", "gaussian"])
def test_the_likelihood_is_a_protocol_setting(toy_host, family, setting):
    info = FAMILIES[family]
    model = build_model(Run(model="vae"), Protocol(likelihood=setting, latent_dim=4), info)
    expected = info.likelihood if setting == "dataset" else setting
    assert model.likelihood == expected
    x = torch.rand(2, *info.observation_shape)
    terms = model(x, torch.zeros(2, 4))
    logits = terms.logits
    if expected == "bernoulli":
        assert torch.allclose(terms.recon, nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 2)
    else:
        assert torch.allclose(terms.recon, (torch.sigmoid(logits) - x).square().sum() / 2)


def test_a_likelihood_that_does_not_exist_is_refused():
    with pytest.raises(DisbenchError, match="Protocol.likelihood must be one of dataset, bernoulli, gaussian"):
        Protocol(likelihood="laplace")


def test_the_study_protocols_hold_the_studys_settings(full_host):
    names = available("protocols")
    assert [n for n in names if n.startswith("dlib/")] == sorted(f"dlib/{d}" for d in [*STUDY_DATASETS, "trial"])
    for dataset in STUDY_DATASETS:
        parse_sources(ConfigSources(protocol=f"dlib/{dataset}"), model="vae")
        protocol = gin.get_bindings("Protocol")
        assert protocol["architecture"] == "dlib_conv" and protocol["likelihood"] == "bernoulli"
        assert (protocol["batch_size"], protocol["steps"], protocol["latent_dim"]) == (64, 300_000, 10)
        assert protocol["lr"] == 1e-4 and tuple(protocol["adam_betas"]) == (0.9, 0.999)
        suite = ["betavae_score", "factorvae_score", "mig", "modularity", "dci", "sap", "unsupervised"]
        assert list(protocol["metrics"]) == suite + [f"{m}@sampled" for m in suite]
    assert gin.get_bindings("Protocol")["dataset"] == "shapes3d"
    parse_sources(ConfigSources(protocol="dlib/dsprites_full"), model="vae")
    assert gin.get_bindings("Protocol")["dataset"] == "dsprites"


def test_the_study_trial_runs_on_the_embedded_data(full_host):
    parse_sources(ConfigSources(protocol="dlib/trial", gin_params=["Protocol.steps = 4"]), model="factorvae")
    protocol, run, info = check_run_config()
    assert protocol.architecture == "dlib_conv" and protocol.dataset == "dsprites_synth" and len(protocol.metrics) == 14


def test_a_protocol_name_cannot_leave_the_gin_folder(tmp_path, capsys):
    assert main(["train", "--model", "vae", "--protocol", "../protocols/smoke", "--out", "x", "--no-progress"]) == 2
    assert "unknown protocol '../protocols/smoke'" in capsys.readouterr().err
    assert main(["train", "--model", "vae", "--protocol", "a" * 5000, "--out", "x", "--no-progress"]) == 2
    assert "unknown protocol" in capsys.readouterr().err
