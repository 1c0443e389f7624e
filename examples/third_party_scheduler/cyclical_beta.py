"""Cyclical β annealing (Fu et al. 2019, "Cyclical annealing schedule"):
within each cycle of ``period`` steps β rises linearly from 0 to ``beta_max``
over the first ``ratio`` of the cycle, then holds.

An open-loop scheduler: it ignores the KL it is given, but follows the same
interface as the closed-loop ones (``step(kl)`` returns the kind it was given).
"""

import gin
import torch

from disbench.hookspecs import hookimpl


@gin.configurable
class CyclicalBeta:
    def __init__(self, beta_max: float = 1.0, period: int = 10_000, ratio: float = 0.5):
        if not beta_max > 0 or not period >= 1 or not 0 < ratio <= 1:
            raise ValueError("CyclicalBeta needs beta_max > 0, period >= 1 and 0 < ratio <= 1")
        self.beta_max, self.period, self.ratio = float(beta_max), int(period), float(ratio)
        self.t = 0
        self.config = {"name": "cyclical", "beta_max": self.beta_max, "period": self.period, "ratio": self.ratio}

    def value(self, t: int) -> float:
        phase = ((t - 1) % self.period) / self.period
        return self.beta_max * min(1.0, phase / self.ratio)

    def step(self, kl):
        self.t += 1
        beta = self.value(self.t)
        return torch.full_like(kl, beta) if isinstance(kl, torch.Tensor) else beta

    def state_dict(self):
        return {"t": self.t}

    def load_state_dict(self, state):
        self.t = int(state["t"])


@hookimpl
def register_schedulers(registry):
    registry.add("cyclical", CyclicalBeta)
