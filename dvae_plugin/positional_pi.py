"""The positional PI controller of β: ControlVAE, and the DynamicVAE-P ablation (docs/controllers.md)."""

from __future__ import annotations

import gin
import torch

from disbench.control import ClosedLoopScheduler, setpoint_config

from .arg_checks import real
from .control_laws import check_anti_windup, positional_pi
from .pi_scheduler import mode_config
from .setpoints import StepAnnealing

W_PREV_INIT = 1.0  # docs/controllers.md: w_prev starts at 1 (ControlVAE's code), whatever beta_min is


@gin.configurable
class PositionalPIBetaScheduler(ClosedLoopScheduler):
    """β(t) from the positional PI law of docs/controllers.md (:func:`positional_pi`)::

        e     = C(t) − y(t)                    y: mean of the last `window` KLs, zero-filled
        P     = kp · σ(−e) + beta_min
        I_new = I − ki · e,  or I when the anti-windup mode says so:
                  latch        if w_prev < beta_min             (ControlVAE's code)
                  conditional  if w_prev < beta_min and e > 0   (only while it pushes β down)
                  none         never
        w     = P + I_new                      stored un-clamped
        β(t)  = max(w, beta_min)

    Since P ≥ beta_min, w < beta_min means I < 0. ``latch`` then freezes I while w stays
    below β_min, which only P's change can undo; ``conditional`` lets I grow again as
    soon as KL > C; ``none`` integrates always.

    ``I`` starts at 0, ``w_prev`` at 1. ``setpoint`` as for :class:`PIBetaScheduler`;
    None means ``StepAnnealing()`` (0.15 every 5,000 steps). Defaults: ControlVAE's code.
    """

    name = "positional_pi"
    gains = ("kp", "ki", "beta_min")  # may differ between the members of a group
    state = ("integral", "w_prev")
    logged = {"beta_unclamped": "w_prev", "integral": "integral"}
    default_setpoint = StepAnnealing

    def __init__(self, kp: float = 0.01, ki: float = 0.001, beta_min: float = 1.0,
                 window: int = 1, setpoint=None, anti_windup: str = "latch"):
        owner = type(self).__name__
        self.kp = real(owner, "kp", kp, gt=0)
        self.ki = real(owner, "ki", ki, gt=0)
        self.beta_min = real(owner, "beta_min", beta_min, gt=0)
        self.anti_windup = check_anti_windup(owner, anti_windup)
        super().__init__(window=window, setpoint=setpoint)
        self.config = {"name": self.name, "kp": self.kp, "ki": self.ki, "beta_min": self.beta_min,
                       "window": self.window, "setpoint": setpoint_config(self.setpoint),
                       **mode_config(self.anti_windup)}

    def initial_state(self, gains: dict) -> dict:
        return {"integral": torch.zeros_like(gains["kp"]), "w_prev": torch.full_like(gains["kp"], W_PREV_INIT)}

    def control(self, state: dict, error: torch.Tensor, gains: dict):
        return positional_pi(state, error, gains, self.anti_windup)

    def structure(self) -> tuple:
        return (self.anti_windup,)
