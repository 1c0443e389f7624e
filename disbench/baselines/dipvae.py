"""DIP-VAE-I and DIP-VAE-II (Kumar, Sattigeri & Balakrishnan 2018), docs/baselines.md.

    loss = recon + β·KL + λ_od Σ_{i≠j} Cov_ij² + λ_d Σ_i (Cov_ii − 1)²

as disentanglement_lib defines it (``methods/unsupervised/vae.py``, ``DIPVAE``),
over the batch:

* DIP-VAE-I: Cov = Cov[μ], the batch covariance of the encoder means
  (E[μμᵀ] − E[μ]E[μ]ᵀ, i.e. ddof 0);
* DIP-VAE-II: Cov = Cov[μ] + the batch mean of diag(σ²), the covariance of
  the aggregate posterior's samples.

λ_d = ``lambda_d_factor`` · λ_od (disentanglement_lib's parametrisation).
Defaults: λ_od = 10; ``lambda_d_factor`` = 10 for I (λ_d = 100) and 1 for II
(λ_d = 10). β is the scheduler's (1 by default, the plain KL). The penalty is
a pure function of the batch's μ and log σ², so it runs per member when runs
are trained side by side.
"""

from __future__ import annotations

import gin
import torch

from ..models import VAEModel


def batch_covariance(mu: torch.Tensor) -> torch.Tensor:
    """Cov[μ] = E[μμᵀ] − E[μ]E[μ]ᵀ over the batch (dimension −2): (..., L, L)."""
    centred = mu - mu.mean(dim=-2, keepdim=True)
    return centred.transpose(-1, -2) @ centred / mu.shape[-2]


def dip_covariance(mu: torch.Tensor, logvar: torch.Tensor, dip_type: str) -> torch.Tensor:
    """Cov[μ] (type "i") or Cov[μ] + E[diag(σ²)] (type "ii")."""
    cov = batch_covariance(mu)
    if dip_type == "ii":
        cov = cov + torch.diag_embed(logvar.exp().mean(dim=-2))
    return cov


def dip_regularizer(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """λ_od Σ_{i≠j} Cov_ij² + λ_d Σ_i (Cov_ii − 1)²."""
    diagonal = torch.diagonal(cov, dim1=-2, dim2=-1)
    off_diagonal = cov - torch.diag_embed(diagonal)
    return lambda_od * off_diagonal.pow(2).sum(dim=(-2, -1)) + lambda_d * (diagonal - 1.0).pow(2).sum(dim=-1)


class DIPVAE(VAEModel):
    """The shared objective; :class:`DIPVAEI` and :class:`DIPVAEII` fix the type."""

    dip_type = "i"

    def __init__(self, lambda_od: float = 10.0, lambda_d_factor: float = 10.0, scheduler=None, **arch):
        if not lambda_od >= 0 or not lambda_d_factor >= 0:
            raise ValueError(f"{type(self).__name__}: lambda_od and lambda_d_factor must be >= 0, "
                             f"got {lambda_od} and {lambda_d_factor}")
        self.lambda_od = float(lambda_od)
        self.lambda_d_factor = float(lambda_d_factor)
        self.lambda_d = self.lambda_d_factor * self.lambda_od
        super().__init__(scheduler=scheduler, **arch)

    def loss(self, terms, beta, step):
        cov = dip_covariance(terms.mu, terms.logvar, self.dip_type)
        dip = dip_regularizer(cov, self.lambda_od, self.lambda_d)
        return terms.recon + beta * terms.kl + dip, {"dip": dip.detach()}

    def config(self) -> dict:
        return {**super().config(), "dip_type": self.dip_type, "lambda_od": self.lambda_od,
                "lambda_d_factor": self.lambda_d_factor, "lambda_d": self.lambda_d}


@gin.configurable
class DIPVAEI(DIPVAE):
    """DIP-VAE-I: Cov[μ] regularised; λ_d = 10·λ_od by default."""

    dip_type = "i"

    def __init__(self, lambda_od: float = 10.0, lambda_d_factor: float = 10.0, scheduler=None, **arch):
        super().__init__(lambda_od=lambda_od, lambda_d_factor=lambda_d_factor, scheduler=scheduler, **arch)


@gin.configurable
class DIPVAEII(DIPVAE):
    """DIP-VAE-II: Cov[μ] + E[diag σ²] regularised; λ_d = λ_od by default."""

    dip_type = "ii"

    def __init__(self, lambda_od: float = 10.0, lambda_d_factor: float = 1.0, scheduler=None, **arch):
        super().__init__(lambda_od=lambda_od, lambda_d_factor=lambda_d_factor, scheduler=scheduler, **arch)
