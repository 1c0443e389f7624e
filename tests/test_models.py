import math

import pytest
import torch
import torch.nn.functional as F

from disbench.baselines import VAE, BetaVAEH
from disbench.models import Decoder, Encoder, kl_per_dimension, reconstruction_loss

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels


def count_macs(module, x):
    """Multiply-adds of conv / linear layers for one forward pass."""
    total = 0

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, torch.nn.Linear):
            total += m.in_features * m.out_features * inp[0].shape[0]
        elif isinstance(m, torch.nn.Conv2d):
            total += out.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.ConvTranspose2d):
            total += inp[0].numel() * m.out_channels * m.kernel_size[0] * m.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    module(x)
    for h in handles:
        h.remove()
    return total


def test_architecture_shapes_and_cost():
    enc, dec = Encoder(1, 10), Decoder(1, 10)
    mu, logvar = enc(torch.zeros(3, 1, 64, 64))
    assert mu.shape == logvar.shape == (3, 10)
    assert dec(mu).shape == (3, 1, 64, 64)
    assert Decoder(3, 16)(torch.zeros(2, 16)).shape == (2, 3, 64, 64)
    macs = count_macs(enc, torch.zeros(1, 1, 64, 64)) + count_macs(dec, torch.zeros(1, 10))
    assert 15.5e6 < macs < 17.0e6  # docs/objective.md: about 16.3 M multiply-adds per image


def _fan_in(weight: torch.Tensor) -> int:
    """PyTorch's fan_in, which nn.init.kaiming_normal_ (mode='fan_in') uses: dim 1 times
    the kernel area. For ConvTranspose2d (weight in x out x kH x kW) that is out_channels x kH x kW."""
    return weight.shape[1] * weight[0][0].numel()


def _layers(model):
    return [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.ConvTranspose2d))]


def test_kaiming_init_zero_biases():
    model = VAE(latent_dim=10)
    for m in _layers(model):
        assert torch.count_nonzero(m.bias) == 0


def test_kaiming_normal_weights():
    """architecture.kaiming_init: kaiming_normal_ with its defaults (mode 'fan_in', leaky_relu with
    a = 0, i.e. gain sqrt(2)): weights ~ N(0, 2 / fan_in). PyTorch's own default init (uniform,
    std 1 / sqrt(3 fan_in), 0.41 of that) fails the std check; kaiming_uniform fails the tails."""
    torch.manual_seed(0)
    model = VAE(latent_dim=10)
    layers = _layers(model)
    assert len(layers) == 12
    standardised = []
    for m in layers:
        w = m.weight.detach().double()
        expected = math.sqrt(2.0 / _fan_in(w))
        assert float(w.std()) == pytest.approx(expected, rel=0.15), m
        assert abs(float(w.mean())) < 0.15 * expected, m
        standardised.append((w / expected).flatten())
    pooled = torch.cat(standardised)
    # normal: 4.55 % of the weights lie beyond 2 std; a uniform distribution has none beyond 1.73 std
    assert 0.04 < float((pooled.abs() > 2).double().mean()) < 0.051


def test_loss_terms_match_spec_formulas():
    torch.manual_seed(0)
    x = (torch.rand(4, 1, 64, 64) > 0.5).float()
    logits = torch.randn(4, 1, 64, 64)
    expected = sum(F.binary_cross_entropy_with_logits(logits[i], x[i], reduction="sum") for i in range(4)) / 4
    assert torch.allclose(reconstruction_loss(logits, x, "bernoulli"), expected)
    gauss = ((torch.sigmoid(logits) - x) ** 2).sum() / 4
    assert torch.allclose(reconstruction_loss(logits, x, "gaussian"), gauss)
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    by_hand = torch.tensor([sum(0.5 * (mu[i, j] ** 2 + math.exp(logvar[i, j]) - logvar[i, j] - 1)
                                for i in range(4)) / 4 for j in range(3)])
    assert torch.allclose(kl_per_dimension(mu, logvar), by_hand, atol=1e-6)


def test_vae_and_betavae_h_objectives():
    torch.manual_seed(0)
    x = (torch.rand(2, 1, 64, 64) > 0.5).float()
    vae, bvae = VAE(latent_dim=4), BetaVAEH(beta=4.0, latent_dim=4)
    terms = bvae(x)
    beta = bvae.scheduler.step(terms.kl.detach())
    assert float(beta) == 4.0 and isinstance(beta, torch.Tensor)
    loss, _ = bvae.loss(terms, beta, 1)
    assert torch.allclose(loss, terms.recon + 4.0 * terms.kl)
    assert vae.scheduler.step(1.5) == 1.0
    with pytest.raises(ValueError, match="beta must be >= 0"):
        BetaVAEH(beta=-1.0)
