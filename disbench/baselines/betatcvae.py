"""β-TCVAE (Chen et al. 2018, "Isolating sources of disentanglement in VAEs"), docs/baselines.md.

    loss = recon + KL + (β − 1) · TC

with TC estimated on the minibatch by minibatch-weighted sampling (MWS):
log q(z) ≈ logsumexp_j log q(z|x_j) − log(N·M), and the same per latent
dimension for the product of marginals; N is the dataset size, M the batch.
The analytic KL is kept, so (β − 1)·TC adds exactly the extra TC penalty.
"""

from __future__ import annotations

import math

import gin
import torch

from ..models import VAEModel


def log_density_gaussian(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z_i,d; mu_j,d, exp(logvar_j,d)) for all pairs (i, j): shape (M, M, D)."""
    z, mu, logvar = z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0)
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) * torch.exp(-logvar))


def total_correlation_mws(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int) -> torch.Tensor:
    """Minibatch-weighted-sampling estimate of TC = KL(q(z) || Π_d q(z_d))."""
    batch = z.shape[0]
    log_qz_pairs = log_density_gaussian(z, mu, logvar)
    log_norm = math.log(batch * dataset_size)
    log_qz = torch.logsumexp(log_qz_pairs.sum(dim=2), dim=1) - log_norm
    log_prod_marginals = (torch.logsumexp(log_qz_pairs, dim=1) - log_norm).sum(dim=1)
    return (log_qz - log_prod_marginals).mean()


@gin.configurable
class BetaTCVAE(VAEModel):
    def __init__(self, beta: float = 6.0, scheduler=None, **arch):
        if not beta >= 1:
            raise ValueError(f"BetaTCVAE.beta must be >= 1, got {beta}")
        self.tc_beta = float(beta)
        super().__init__(scheduler=scheduler, **arch)
        if not self.dataset_size:
            raise ValueError("BetaTCVAE needs the dataset size (dataset_size) for its TC estimate")

    def loss(self, terms, beta, step):
        tc = total_correlation_mws(terms.z, terms.mu, terms.logvar, self.dataset_size)
        return terms.recon + beta * terms.kl + (self.tc_beta - 1.0) * tc, {"tc": tc.detach()}

    def config(self) -> dict:
        return {**super().config(), "beta": self.tc_beta, "dataset_size": self.dataset_size}
