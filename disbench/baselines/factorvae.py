"""FactorVAE (Kim & Mnih 2018, "Disentangling by factorising"), docs/baselines.md.

    VAE loss = recon + KL + γ · mean(D(z)[:, 0] − D(z)[:, 1])

D tells codes z ~ q(z) (class 0) from codes whose dimensions were permuted
independently across a second batch (class 1, samples of Π_d q(z_d)); its
logit difference estimates the total correlation. D has its own Adam.

Ordering avoids the in-place-update error of popular ports: the VAE loss is
back-propagated before D's optimizer touches D's weights, the VAE loss sees D's
weights as constants, and D's own step sees only detached codes.
"""

from __future__ import annotations

import gin
import torch
import torch.nn.functional as F
from torch import nn

from ..models import VAEModel, reparameterize


class Discriminator(nn.Module):
    """MLP: z -> 6 × (1000 units, LeakyReLU 0.2) -> 2 logits."""

    def __init__(self, latent_dim: int, hidden: int = 1000, layers: int = 6):
        super().__init__()
        blocks, width = [], latent_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.LeakyReLU(0.2, True)]
            width = hidden
        blocks.append(nn.Linear(width, 2))
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def permute_dims(z: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Shuffle each latent dimension independently across the batch, in the order
    that sorting the same-shaped ``uniform`` draw gives (a random permutation per column)."""
    return torch.gather(z, 0, torch.argsort(uniform, dim=0))


@gin.configurable
class FactorVAE(VAEModel):
    def __init__(self, gamma: float = 10.0, disc_lr: float = 1e-4, disc_betas=(0.5, 0.9), scheduler=None, **arch):
        if not gamma >= 0:
            raise ValueError(f"FactorVAE.gamma must be >= 0, got {gamma}")
        if not disc_lr > 0:
            raise ValueError(f"FactorVAE.disc_lr must be > 0, got {disc_lr}")
        self.gamma, self.disc_lr, self.disc_betas = float(gamma), float(disc_lr), tuple(disc_betas)
        super().__init__(scheduler=scheduler, **arch)
        self.discriminator = Discriminator(self.latent_dim)

    def loss(self, terms, beta, step):
        logits = self.discriminator(terms.z)  # D's parameters are constants here: the VAE step does not train D
        tc = (logits[:, 0] - logits[:, 1]).mean()
        return terms.recon + beta * terms.kl + self.gamma * tc, {"tc": tc.detach()}

    def auxiliary_loss(self, terms, other, step):
        """D's cross-entropy on real codes vs codes of a second batch with permuted dimensions."""
        with torch.no_grad():
            mu, logvar = self.encode(other["x"])
            z_other = reparameterize(mu, logvar, other["noise"])
        return self.discriminator_loss(terms.z.detach(), z_other, other["uniform"])

    def discriminator_loss(self, z: torch.Tensor, z_other: torch.Tensor, uniform: torch.Tensor):
        """D's cross-entropy: codes ``z`` are class 0, ``z_other`` with its dimensions
        permuted (by ``uniform``) class 1. Returns the loss and its scalars."""
        real = self.discriminator(z)
        permuted = self.discriminator(permute_dims(z_other, uniform))
        zeros = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
        loss = 0.5 * (F.cross_entropy(real, zeros) + F.cross_entropy(permuted, zeros + 1))
        accuracy = 0.5 * ((real.argmax(1) == 0).float().mean() + (permuted.argmax(1) == 1).float().mean())
        return loss, {"disc_loss": loss.detach(), "disc_acc": accuracy.detach()}

    def auxiliary_parameters(self):
        return {"discriminator": {"prefix": "discriminator.", "lr": self.disc_lr, "betas": self.disc_betas}}

    def config(self) -> dict:
        return {**super().config(), "gamma": self.gamma, "disc_lr": self.disc_lr, "disc_betas": list(self.disc_betas)}
