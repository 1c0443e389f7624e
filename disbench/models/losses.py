"""Loss terms of docs/objective.md: sums over pixels / latents, means over the batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor, likelihood: str) -> torch.Tensor:
    batch = x.shape[0]
    if likelihood == "bernoulli":
        return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / batch
    if likelihood == "gaussian":
        return F.mse_loss(torch.sigmoid(logits), x, reduction="sum") / batch
    raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Batch mean of KL(q(z_j|x) || N(0, 1)) for each latent j: shape (latent_dim,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).mean(dim=-2)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """z = μ + ε·σ, with ε the given standard normal ``noise`` (drawn when None)."""
    return mu + (torch.randn_like(mu) if noise is None else noise) * torch.exp(0.5 * logvar)
