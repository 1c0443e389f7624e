"""The positional PI controller of β: ControlVAE, and the DynamicVAE-P ablation (docs/controllers.md)."""

from __future__ import annotations

import gin

from .arg_checks import real
from .closed_loop_scheduler import ClosedLoopBetaScheduler
from .setpoints import StepAnnealing

W_PREV_INIT = 1.0  # docs/controllers.md: w_prev starts at 1 (ControlVAE's code), whatever beta_min is


@gin.configurable
class PositionalPIBetaScheduler(ClosedLoopBetaScheduler):
    """β(t) from the positional PI law of docs/controllers.md::

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
    GROUP_GAINS = ("kp", "ki", "beta_min")  # may differ between the members of a group

    def __init__(self, kp: float = 0.01, ki: float = 0.001, beta_min: float = 1.0,
                 window: int = 1, setpoint=None, anti_windup: str = "latch"):
        owner = type(self).__name__
        self.kp = real(owner, "kp", kp, gt=0)
        self.ki = real(owner, "ki", ki, gt=0)
        self.beta_min = real(owner, "beta_min", beta_min, gt=0)
        super().__init__(window=window, setpoint=setpoint, default_setpoint=StepAnnealing, anti_windup=anti_windup)
        self.config = {"name": self.name, "kp": self.kp, "ki": self.ki, "beta_min": self.beta_min,
                       "window": self.window, "setpoint": self._setpoint_config(), **self._mode_config()}

    def _initial_state(self) -> dict[str, float]:
        return {"integral": 0.0, "w_prev": W_PREV_INIT}

    def _control(self, e, ops):
        s = self._vars
        p = self.kp * ops.sigmoid_neg(e) + self.beta_min
        freeze = self._freeze_integral(s["w_prev"] < self.beta_min, e, ops)
        integral = (s["integral"] - self.ki * e if freeze is None
                    else ops.where(freeze, s["integral"], s["integral"] - self.ki * e))
        w = p + integral
        s["integral"], s["w_prev"] = integral, w
        return w

    def _extra_scalars(self) -> dict:
        return {"integral": self._vars["integral"]}
