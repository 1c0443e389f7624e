"""DIP-VAE-I and -II: the objective against a literal element-by-element form, the
defaults of disentanglement_lib, the gin files, and a short training run."""

from pathlib import Path

import gin
import numpy as np
import pytest
import torch

from disbench.baselines import MODELS, DIPVAEI, DIPVAEII
from disbench.baselines.dipvae import dip_covariance, dip_regularizer
from disbench.cli import main
from disbench.config import find_gin
from disbench.models import Terms
from disbench.training.scalars import read_scalars
from tests.conftest import TOY_PROTOCOL

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels


def hand_terms(latent_dim=3, batch=6, seed=0):
    torch.manual_seed(seed)
    mu, logvar = torch.randn(batch, latent_dim) * 1.5, torch.randn(batch, latent_dim) * 0.3
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
    kl_per_dim = 0.5 * (mu ** 2 + logvar.exp() - logvar - 1).mean(0)
    return Terms(x=None, mu=mu, logvar=logvar, z=z, logits=None, recon=torch.tensor(100.0), kl_per_dim=kl_per_dim)


def literal_dip(mu, logvar, dip_type, lambda_od, lambda_d):
    """λ_od Σ_{i≠j} Cov_ij² + λ_d Σ_i (Cov_ii − 1)², every entry by its definition."""
    mu, var = mu.double().numpy(), logvar.double().exp().numpy()
    n, latents = mu.shape
    mean = [sum(mu[b, i] for b in range(n)) / n for i in range(latents)]
    total = 0.0
    for i in range(latents):
        for j in range(latents):
            cov = sum(mu[b, i] * mu[b, j] for b in range(n)) / n - mean[i] * mean[j]  # E[μμᵀ] − E[μ]E[μ]ᵀ
            if dip_type == "ii" and i == j:
                cov += sum(var[b, i] for b in range(n)) / n
            total += lambda_od * cov ** 2 if i != j else lambda_d * (cov - 1.0) ** 2
    return total


@pytest.mark.parametrize("cls, dip_type, lambda_d", [(DIPVAEI, "i", 100.0), (DIPVAEII, "ii", 10.0)])
def test_objective_equals_the_literal_form_with_the_default_weights(cls, dip_type, lambda_d):
    model = cls(latent_dim=3)
    assert (model.lambda_od, model.lambda_d, model.dip_type) == (10.0, lambda_d, dip_type)
    terms = hand_terms()
    beta = model.scheduler.step(terms.kl.detach())
    loss, extras = model.loss(terms, beta, 1)
    dip = literal_dip(terms.mu, terms.logvar, dip_type, 10.0, lambda_d)
    assert float(beta) == 1.0
    assert float(extras["dip"]) == pytest.approx(dip, rel=1e-5)
    assert float(loss) == pytest.approx(100.0 + float(terms.kl) + dip, rel=1e-5)
    assert model.config() | {"dip_type": dip_type, "lambda_d": lambda_d} == model.config()


def test_the_two_types_differ_by_the_encoder_variance_and_agree_without_it():
    terms = hand_terms()
    cov_i = dip_covariance(terms.mu, terms.logvar, "i")
    cov_ii = dip_covariance(terms.mu, terms.logvar, "ii")
    torch.testing.assert_close(cov_ii - cov_i, torch.diag(terms.logvar.exp().mean(0)))
    torch.testing.assert_close(cov_i, torch.from_numpy(np.cov(terms.mu.numpy().T, ddof=0)).float())
    # a batch whose means are already decorrelated with unit variance costs nothing under DIP-VAE-I
    white = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert float(dip_regularizer(dip_covariance(white, torch.zeros(4, 2), "i"), 10.0, 100.0)) == 0.0


def test_the_penalty_runs_per_member_under_vmap():
    mus, logvars = torch.randn(3, 8, 4), torch.randn(3, 8, 4) * 0.2
    batched = torch.func.vmap(lambda m, lv: dip_regularizer(dip_covariance(m, lv, "ii"), 10.0, 10.0))(mus, logvars)
    one_by_one = torch.stack([dip_regularizer(dip_covariance(m, lv, "ii"), 10.0, 10.0) for m, lv in zip(mus, logvars)])
    torch.testing.assert_close(batched, one_by_one)


def test_registered_with_gin_defaults_and_checked():
    assert MODELS["dipvae_i"] is DIPVAEI and MODELS["dipvae_ii"] is DIPVAEII
    for name, cls, factor in (("dipvae_i", DIPVAEI, 10.0), ("dipvae_ii", DIPVAEII, 1.0)):
        try:
            gin.parse_config_file(str(find_gin("models", name)))
            model = cls(latent_dim=2)
            assert (model.lambda_od, model.lambda_d_factor) == (10.0, factor)
        finally:
            gin.clear_config()
    with pytest.raises(ValueError, match="lambda_od and lambda_d_factor must be >= 0"):
        DIPVAEI(lambda_od=-1.0, latent_dim=2)


@pytest.mark.parametrize("model", ["dipvae_i", "dipvae_ii"])
def test_short_training_lowers_the_loss_and_logs_the_penalty(toy_host, model):
    assert main(["train", "--model", model, "--protocol", TOY_PROTOCOL, "--out", model, "--device", "cpu",
                 "--no-progress", "--no-eval", "--steps", "60", "--gin_param", "Protocol.log_every = 10",
                 "--gin_param", "Protocol.checkpoint_every = 60", "--gin_param", "Protocol.batch_size = 16"]) == 0
    rows = read_scalars(Path(model) / "scalars.jsonl")
    assert rows[-1]["loss"] < rows[0]["loss"] and all(r["dip"] >= 0 for r in rows)
