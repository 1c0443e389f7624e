"""DynamicVAE's incremental non-linear PI controller of β (docs/controllers.md; paper Eq. 8–11, Algorithm 1)."""

from __future__ import annotations

import gin
import torch

from disbench.control import ClosedLoopScheduler, setpoint_config

from .arg_checks import real
from .control_laws import check_anti_windup, incremental_pi
from .setpoints import HybridAnnealing


@gin.configurable
class PIBetaScheduler(ClosedLoopScheduler):
    """β(t) from the incremental PI law of docs/controllers.md (:func:`incremental_pi`)::

        e    = C(t) − y(t)                     y: mean of the last `window` KLs, zero-filled
        dP   = kp · (σ(−e) − σ(−e_prev))
        dI   = −ki · e,  or 0 when the anti-windup mode says so:
                 latch        if beta_prev < beta_min             (the paper, the authors' code)
                 conditional  if beta_prev < beta_min and e > 0   (only while it pushes β down)
                 none         never
        beta = beta_prev + dP + dI             stored un-clamped
        β(t) = max(beta, beta_min)

    ``latch`` (the default): once the stored β is below β_min, it moves only by dP, whose
    sum telescopes to at most kp: β stays at β_min for good, even when KL > C asks for
    more. ``conditional``: the integral acts again as soon as KL > C (e < 0), so β can leave
    β_min; while frozen the stored value moves by at most kp, so it sits less than kp
    (plus one step) below β_min and climbs back within a few steps. ``none`` integrates
    always and may wind up far below β_min.

    ``beta_prev`` starts at ``beta_init``, ``e_prev`` at 0. ``setpoint``: a set point,
    a zero-argument factory of one, a registered name or a number (a constant C); None
    means ``HybridAnnealing()``. Defaults: paper appendix A (dSprites β(0) = 150).
    """

    name = "pi"
    gains = ("kp", "ki", "beta_min", "beta_init")  # may differ between the members of a group
    state = ("beta_prev", "e_prev")
    logged = {"beta_unclamped": "beta_prev"}
    default_setpoint = HybridAnnealing

    def __init__(self, kp: float = 0.01, ki: float = 0.005, beta_init: float = 150.0,
                 beta_min: float = 0.1, window: int = 5, setpoint=None, anti_windup: str = "latch"):
        owner = type(self).__name__
        self.kp = real(owner, "kp", kp, gt=0)
        self.ki = real(owner, "ki", ki, gt=0)
        self.beta_min = real(owner, "beta_min", beta_min, gt=0)
        self.beta_init = real(owner, "beta_init", beta_init)
        if self.beta_init < self.beta_min:
            raise ValueError(f"{owner}.beta_init must be >= beta_min ({self.beta_min!r}), got {self.beta_init!r}")
        self.anti_windup = check_anti_windup(owner, anti_windup)
        super().__init__(window=window, setpoint=setpoint)
        self.config = {"name": self.name, "kp": self.kp, "ki": self.ki, "beta_init": self.beta_init,
                       "beta_min": self.beta_min, "window": self.window,
                       "setpoint": setpoint_config(self.setpoint), **mode_config(self.anti_windup)}

    def initial_state(self, gains: dict) -> dict:
        return {"beta_prev": gains["beta_init"].clone(), "e_prev": torch.zeros_like(gains["beta_init"])}

    def control(self, state: dict, error: torch.Tensor, gains: dict):
        return incremental_pi(state, error, gains, self.anti_windup)

    def structure(self) -> tuple:
        return (self.anti_windup,)


def mode_config(anti_windup: str) -> dict:
    """The mode in a config when it is not the default (so earlier runs' configs still match)."""
    return {} if anti_windup == "latch" else {"anti_windup": anti_windup}
