"""β-VAE_B: capacity annealing (Burgess et al. 2018, "Understanding
disentangling in β-VAE"), docs/baselines.md.

    loss = recon + γ · |KL − C(t)|,   C(t) = min(C_max, C_max · t / C_stop)

γ is the scheduler's β (a constant γ by default), so the logged β is the
weight on the capacity term.
"""

from __future__ import annotations

import gin
import torch

from ..models import VAEModel
from ..schedulers import ConstantBeta


@gin.configurable
class BetaVAEB(VAEModel):
    def __init__(self, gamma: float = 100.0, c_max: float = 20.0, c_stop: int = 100_000, scheduler=None, **arch):
        if not gamma > 0:
            raise ValueError(f"BetaVAEB.gamma must be > 0, got {gamma}")
        if not c_max >= 0:
            raise ValueError(f"BetaVAEB.c_max must be >= 0, got {c_max}")
        if not (isinstance(c_stop, int) and c_stop >= 1):
            raise ValueError(f"BetaVAEB.c_stop must be a positive integer, got {c_stop!r}")
        self.gamma, self.c_max, self.c_stop = float(gamma), float(c_max), c_stop
        super().__init__(scheduler=scheduler, **arch)

    def default_scheduler(self):
        return ConstantBeta(self.gamma)

    def capacity(self, step):
        """C(step) for an int step (a float), or for the training loop's step counter,
        an integer tensor on the device (float64 there: the same value, no host read)."""
        if isinstance(step, torch.Tensor):
            return torch.clamp(step.to(torch.float64) * self.c_max / self.c_stop, max=self.c_max)
        return min(self.c_max, self.c_max * step / self.c_stop)

    def loss(self, terms, beta, step):
        capacity = self.capacity(step)
        capacity = (capacity.to(terms.kl.dtype) if isinstance(capacity, torch.Tensor)
                    else torch.full_like(terms.kl, capacity))
        return terms.recon + beta * (terms.kl - capacity).abs(), {"capacity": capacity}

    def config(self) -> dict:
        return {**super().config(), "gamma": self.gamma, "c_max": self.c_max, "c_stop": self.c_stop}
