"""VAE (β = 1) and β-VAE_H (constant β; Higgins et al. 2017)."""

from __future__ import annotations

import gin

from ..models import VAEModel
from ..schedulers import ConstantBeta


@gin.configurable
class VAE(VAEModel):
    """The plain VAE: β(t) = 1."""


@gin.configurable
class BetaVAEH(VAEModel):
    """β-VAE with a constant β (paper: β = 4)."""

    def __init__(self, beta: float = 4.0, scheduler=None, **arch):
        self.beta = float(beta)
        super().__init__(scheduler=scheduler, **arch)

    def default_scheduler(self):
        return ConstantBeta(self.beta)
