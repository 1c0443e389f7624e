"""FactorVAE (Kim & Mnih 2018, "Disentangling by factorising"), docs/baselines.md.

    VAE loss = recon + KL + γ · mean(D(z)[:, 0] − D(z)[:, 1])

D tells codes z ~ q(z) (class 0) from codes whose dimensions were permuted
independently across a second batch (class 1, samples of Π_d q(z_d)); its
logit difference estimates the total correlation. D has its own Adam.

Ordering avoids the in-place-update error of popular ports: the VAE loss is
back-propagated before D's optimizer touches D's weights, and D's own step
sees only detached codes.
"""

from __future__ import annotations

from contextlib import contextmanager

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


@contextmanager
def frozen(module: nn.Module):
    """``module``'s parameters get no gradients inside the block; each
    parameter's own ``requires_grad`` comes back afterwards, even on an exception."""
    saved = [(p, p.requires_grad) for p in module.parameters()]
    try:
        module.requires_grad_(False)
        yield module
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def permute_dims(z: torch.Tensor) -> torch.Tensor:
    """Shuffle each latent dimension independently across the batch."""
    order = torch.argsort(torch.rand(z.shape, device=z.device), dim=0)
    return torch.gather(z, 0, order)


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
        self._disc_optimizer = None

    def loss(self, terms, beta, step):
        with frozen(self.discriminator):  # the VAE step does not train D
            logits = self.discriminator(terms.z)
        tc = (logits[:, 0] - logits[:, 1]).mean()
        return terms.recon + beta * terms.kl + self.gamma * tc, {"tc": tc.detach()}

    def auxiliary_step(self, terms, next_batch, step):
        with torch.no_grad():
            mu, logvar = self.encode(next_batch())
            z_other = reparameterize(mu, logvar)
        return self.discriminator_step(terms.z.detach(), z_other)

    def discriminator_step(self, z: torch.Tensor, z_other: torch.Tensor) -> dict:
        """One Adam step of D on real codes ``z`` vs permuted ``z_other``."""
        real, permuted = self.discriminator(z), self.discriminator(permute_dims(z_other))
        zeros = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
        loss = 0.5 * (F.cross_entropy(real, zeros) + F.cross_entropy(permuted, zeros + 1))
        optimizer = self.auxiliary_optimizers()["discriminator"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        accuracy = 0.5 * ((real.argmax(1) == 0).float().mean() + (permuted.argmax(1) == 1).float().mean())
        return {"disc_loss": loss.detach(), "disc_acc": accuracy.detach()}

    def auxiliary_optimizers(self):
        if self._disc_optimizer is None:  # made lazily: after the model has moved to its device
            self._disc_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=self.disc_lr,
                                                    betas=self.disc_betas)
        return {"discriminator": self._disc_optimizer}

    def config(self) -> dict:
        return {**super().config(), "gamma": self.gamma, "disc_lr": self.disc_lr, "disc_betas": list(self.disc_betas)}
