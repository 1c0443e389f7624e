"""Baseline objectives on hand-built batches, short training runs, FactorVAE's discriminator."""

import math
from pathlib import Path

import pytest
import torch

from disbench.baselines import BetaTCVAE, BetaVAEB, FactorVAE
from disbench.baselines.betatcvae import total_correlation_mws
from disbench.baselines.factorvae import permute_dims
from disbench.cli import main
from disbench.models import Terms
from disbench.training.scalars import read_scalars
from tests.conftest import TOY_PROTOCOL

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels


def hand_terms(latent_dim=3, batch=4):
    torch.manual_seed(0)
    mu, logvar = torch.randn(batch, latent_dim), torch.randn(batch, latent_dim) * 0.3
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
    kl_per_dim = 0.5 * (mu ** 2 + logvar.exp() - logvar - 1).mean(0)
    return Terms(x=None, mu=mu, logvar=logvar, z=z, logits=None, recon=torch.tensor(100.0), kl_per_dim=kl_per_dim)


def test_betavae_b_capacity_objective():
    model = BetaVAEB(gamma=100.0, c_max=20.0, c_stop=100_000, latent_dim=3)
    terms = hand_terms()
    assert model.capacity(1) == pytest.approx(20 / 100_000)
    assert model.capacity(50_000) == pytest.approx(10.0)
    assert model.capacity(500_000) == 20.0
    beta = model.scheduler.step(terms.kl.detach())
    loss, extras = model.loss(terms, beta, 50_000)
    assert float(beta) == 100.0
    assert float(loss) == pytest.approx(100.0 + 100.0 * abs(float(terms.kl) - 10.0), rel=1e-6)
    assert extras["capacity"] == pytest.approx(10.0)


def test_betatcvae_tc_estimate_by_hand():
    terms = hand_terms(latent_dim=2, batch=3)
    n, m = 1000, 3
    z, mu, logvar = terms.z.double(), terms.mu.double(), terms.logvar.double()

    def log_normal(x, mean, lv):
        return -0.5 * (math.log(2 * math.pi) + lv + (x - mean) ** 2 / math.exp(lv))

    tc = 0.0
    for i in range(m):
        joint = [sum(log_normal(z[i, d], mu[j, d], logvar[j, d]) for d in range(2)) for j in range(m)]
        log_qz = torch.logsumexp(torch.tensor(joint), 0) - math.log(n * m)
        log_marg = sum(torch.logsumexp(torch.tensor([log_normal(z[i, d], mu[j, d], logvar[j, d]) for j in range(m)]), 0)
                       - math.log(n * m) for d in range(2))
        tc += float(log_qz - log_marg) / m
    assert float(total_correlation_mws(z, mu, logvar, n)) == pytest.approx(tc, rel=1e-9)
    model = BetaTCVAE(beta=6.0, latent_dim=2, dataset_size=n)
    loss, extras = model.loss(terms, 1.0, 1)
    expected = 100.0 + float(terms.kl) + 5.0 * float(total_correlation_mws(terms.z, terms.mu, terms.logvar, n))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="dataset size"):
        BetaTCVAE(latent_dim=2)


def test_factorvae_tc_term_and_permutation():
    torch.manual_seed(0)
    model = FactorVAE(gamma=10.0, latent_dim=3)
    terms = hand_terms()
    with torch.no_grad():
        loss, extras = model.loss(terms, 1.0, 1)
        logits = model.discriminator(terms.z)
    tc = (logits[:, 0] - logits[:, 1]).mean()
    assert float(loss) == pytest.approx(100.0 + float(terms.kl) + 10.0 * float(tc), rel=1e-5)
    z = torch.arange(12.0).view(4, 3)
    permuted = permute_dims(z, torch.rand(4, 3))
    for d in range(3):  # each column is a permutation of itself
        assert sorted(permuted[:, d].tolist()) == z[:, d].tolist()


def test_permute_dims_shuffles_each_column_independently():
    """Each column is a permutation of its input column, and rows are not kept
    together: the identity, or one permutation applied to whole rows, fails."""
    torch.manual_seed(0)
    batch, dims = 64, 5
    z = torch.randperm(batch * dims).double().view(batch, dims)  # distinct values
    permuted = permute_dims(z, torch.rand(batch, dims))
    assert permuted.shape == z.shape
    for d in range(dims):
        assert sorted(permuted[:, d].tolist()) == sorted(z[:, d].tolist())
    rows = {tuple(r) for r in z.tolist()}
    kept = sum(tuple(r) in rows for r in permuted.tolist())
    assert kept < batch // 8  # independent shuffles almost never rebuild an input row
    moved = [int((permuted[:, d] != z[:, d]).sum()) for d in range(dims)]
    assert all(m > batch // 2 for m in moved)  # every column is actually shuffled
    for name, fake in (("identity", z.clone()), ("whole rows", z[torch.randperm(batch)])):
        assert sum(tuple(r) in rows for r in fake.tolist()) == batch, name  # what the check above rejects


def factorvae_group():
    from disbench.config import Protocol
    from disbench.training.group import RunGroup

    torch.manual_seed(0)
    images = (torch.rand(8, 1, 64, 64) > 0.5).to(torch.uint8) * 255
    return RunGroup([FactorVAE(latent_dim=3)], images, [0], Protocol(batch_size=4, latent_dim=3), "cpu")


def test_factorvae_vae_loss_sees_the_discriminator_as_constants():
    """The VAE step does not train D (D's weights come in detached), yet its TC
    term does reach the encoder; D's step does not train the encoder."""
    group = factorvae_group()
    discriminator = list(group.parts[0].params.values())
    assert discriminator and all(n.startswith("discriminator.") for n in group.parts[0].params)
    draw = lambda: torch.randn(1, 4, 3)  # noqa: E731
    terms = group._terms(group._images(torch.randint(0, 8, (1, 4))), draw())
    loss, _ = group._loss(terms, torch.ones(1), torch.tensor(1))
    loss.sum().backward()
    assert all(p.grad is None for p in discriminator)
    assert group.params["encoder.net.0.weight"].grad is not None
    for p in group.params.values():
        p.grad = None
    other = {"x": group._images(torch.randint(0, 8, (1, 4))), "noise": draw(), "uniform": torch.rand(1, 4, 3)}
    aux, _ = group._auxiliary_loss(terms, [other], torch.tensor(1))
    aux.sum().backward()
    assert all(p.grad is None for p in group.params.values())
    assert all(p.grad is not None for p in discriminator)


def test_factorvae_discriminator_learns_correlated_codes():
    """On codes with strongly dependent dimensions, D leaves chance level."""
    torch.manual_seed(0)
    model = FactorVAE(latent_dim=4, disc_lr=1e-3)
    optimizer = torch.optim.Adam(model.discriminator.parameters(), lr=1e-3, betas=(0.5, 0.9))

    def correlated(n):
        u = torch.randn(n, 1)
        return torch.cat([u, u + 0.1 * torch.randn(n, 1), -u, torch.randn(n, 1)], dim=1)

    accs = []
    for _ in range(150):
        loss, scalars = model.discriminator_loss(correlated(64), correlated(64), torch.rand(64, 4))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        accs.append(float(scalars["disc_acc"]))
    assert sum(accs[-20:]) / 20 > 0.8


@pytest.mark.parametrize("model", ["betavae_b", "factorvae", "betatcvae"])
def test_short_training_lowers_the_loss(toy_host, model):
    args = ["train", "--model", model, "--protocol", TOY_PROTOCOL, "--out", model, "--device", "cpu",
            "--no-progress", "--no-eval", "--steps", "60", "--gin_param", "Protocol.log_every = 10",
            "--gin_param", "Protocol.checkpoint_every = 60", "--gin_param", "Protocol.batch_size = 16"]
    if model == "betavae_b":
        args += ["--gin_param", "BetaVAEB.gamma = 1.0"]
    assert main(args) == 0
    rows = read_scalars(Path(model) / "scalars.jsonl")
    assert rows[-1]["loss"] < rows[0]["loss"]
    if model == "factorvae":
        assert {"disc_loss", "disc_acc", "tc"} <= set(rows[-1])
    if model == "betatcvae":
        assert "tc" in rows[-1]
