"""A closed-loop β scheduler written as a control law (disbench.control): β is the Lagrange
multiplier of the constraint KL ≤ C, updated multiplicatively from the KL's moving average y,
as in GECO (Rezende & Viola 2018, "Taming VAEs"): β ← clamp(β · exp(rate · (y − C))).
Gains, state and a step on [K] tensors are all it writes: in a fused group its members are
stepped as one, and a compiled training step captures it."""

import gin
import torch

from disbench.control import ClosedLoopScheduler
from disbench.hookspecs import hookimpl


@gin.configurable
class KLTargetBeta(ClosedLoopScheduler):
    name = "kl_target"
    gains = ("rate", "beta_init", "beta_min", "beta_max")
    state = ("beta",)

    def __init__(self, target: float = 10.0, rate: float = 0.01, beta_init: float = 1.0,
                 beta_min: float = 1e-3, beta_max: float = 1e3, window: int = 5):
        if not (rate > 0 and 0 < beta_min <= beta_init <= beta_max):
            raise ValueError("KLTargetBeta needs rate > 0 and 0 < beta_min <= beta_init <= beta_max")
        self.rate, self.beta_init, self.beta_min, self.beta_max = rate, beta_init, beta_min, beta_max
        super().__init__(window=window, setpoint=target)

    def initial_state(self, gains):
        return {"beta": gains["beta_init"].clone()}

    def control(self, state, error, gains):  # error = C − y
        beta = torch.clamp(state["beta"] * torch.exp(-gains["rate"] * error), gains["beta_min"], gains["beta_max"])
        return beta, {"beta": beta}


@hookimpl
def register_schedulers(registry):
    registry.add("kl_target", KLTargetBeta)
