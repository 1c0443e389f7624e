"""The KL plant of docs/stability.md, for closed-loop tests of the β schedulers.

    y(t) = y(t−1)/(1+a) + a/(1+a) · g(β(t)),   g(β) = amplitude·exp(−rate·β) + floor

y is the KL the model shows at a step; it answers β with a first-order lag of
time constant ≈ 1/a steps and settles at g(β), which falls as β grows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class KLPlant:
    a: float
    amplitude: float
    rate: float
    floor: float

    def g(self, beta: float) -> float:
        return self.amplitude * math.exp(-self.rate * beta) + self.floor

    def g_prime(self, beta: float) -> float:
        return -self.amplitude * self.rate * math.exp(-self.rate * beta)

    def beta_for(self, kl: float) -> float:
        """The β at which the plant settles at ``kl`` (g⁻¹)."""
        return -math.log((kl - self.floor) / self.amplitude) / self.rate

    def respond(self, y_prev: float, beta: float) -> float:
        return y_prev / (1 + self.a) + self.a / (1 + self.a) * self.g(beta)

    def spectral_radius(self, kl: float, kp: float, ki: float) -> float:
        """Of the loop's Jacobian at the equilibrium where y = C = kl (docs/stability.md); < 1 is stable."""
        a, g1 = self.a, self.g_prime(self.beta_for(kl))
        jacobian = np.array([[1.0, ki + kp / 4, -kp / 4],
                             [a * g1 / (1 + a), 1 / (1 + a), 0.0],
                             [0.0, 1.0, 0.0]])
        return float(max(abs(np.linalg.eigvals(jacobian))))


def run_closed_loop(scheduler, plant: KLPlant, steps: int, y0: float, *, tensors: bool = False) -> dict:
    """Feed each step's KL to ``scheduler`` and its β to the plant, as training would:
    the KL of step t is the plant's output so far; β(t) then moves the plant to y(t).
    With ``tensors`` the scheduler sees float64 0-dim tensors (the plant reads β back)."""
    y, kls, betas, setpoints = y0, [], [], []
    for _ in range(steps):
        beta = scheduler.step(torch.tensor(y, dtype=torch.float64) if tensors else y)
        beta = beta.item() if tensors else beta
        kls.append(y)
        betas.append(beta)
        setpoints.append(float(scheduler.scalars()["setpoint"]))
        y = plant.respond(y, beta)
    return {"kl": kls, "beta": betas, "setpoint": setpoints}
