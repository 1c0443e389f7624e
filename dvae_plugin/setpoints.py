"""KL set points C(t) (docs/controllers.md): hybrid (step + ramp), step, and constant annealing.

Each is a closed form of the step index t >= 1, so it holds no state and a
resumed run needs nothing from it; ``state_dict`` / ``load_state_dict`` exist
because the scheduler interface asks every part for them.

Two forms of one formula: ``value(t)`` takes a Python int and returns a float;
``value_tensor(t)`` takes the step as an integer tensor on the training device
(any shape) and returns float64 C(t) there, with no host read — so a training
step that reads C(t) can be compiled or captured in a CUDA graph without
recompiling or synchronising per step. Both perform the same integer arithmetic
and then the same double-precision operations in the same order, so they agree
exactly (tests/test_setpoints.py checks every step of the schedules' range).
A third-party set point without ``value_tensor`` still works: its group
evaluates ``value(t)`` on the host (see ``disbench.control.ClosedLoopGroup``).
``ConstantSetpoint`` is the harness's own (``disbench.control``: any closed-loop
scheduler may be given a number as its set point); it is registered here.

Rounding: the closed forms sum ``start + k·step + r·step/ramp``, which can land
an ulp away from what exact (decimal) accumulation gives. A value within
1e-12 (relative) of ``stop`` counts as having reached it, so the step at which
C first equals ``stop`` is the one exact arithmetic gives (for the default
hybrid: t = 780,999), not one shifted by rounding.
"""

from __future__ import annotations

import gin
import torch

# ConstantSetpoint: the harness's, registered here as 'constant'
from disbench.control import ConstantSetpoint, StatelessSetpoint  # noqa: F401

from .arg_checks import integer, real, training_step

_REACHED_STOP_RTOL = 1e-12


def _capped(c: float, stop: float) -> float:
    """C never exceeds ``stop``; a value within rounding of it is ``stop`` itself."""
    return stop if c >= stop - _REACHED_STOP_RTOL * max(1.0, abs(stop)) else c


def _capped_tensor(c: torch.Tensor, stop: float) -> torch.Tensor:
    """:func:`_capped` on a tensor: the same threshold, compared on the device."""
    return torch.where(c >= stop - _REACHED_STOP_RTOL * max(1.0, abs(stop)), stop, c)


def _climb(owner: str, start, stop, step) -> tuple[float, float, float]:
    """Checked (start, stop, step) of a set point that climbs from start to stop."""
    start, stop = real(owner, "start", start, ge=0), real(owner, "stop", stop)
    if stop < start:
        raise ValueError(f"{owner}.stop must be >= start ({start!r}), got {stop!r}")
    return start, stop, real(owner, "step", step, ge=0)


@gin.configurable
class HybridAnnealing(StatelessSetpoint):
    """DynamicVAE's hybrid annealing (docs/controllers.md, paper §3 and Fig. 7).

    C starts at ``start``; at every step t with ``t >= period`` and
    ``t % period < ramp`` it grows by ``step / ramp``; it never exceeds ``stop``.
    With the defaults C is 0.5 for t < 6000, rises by 0.15 over t = 6000..6999,
    holds until t = 12000, and so on.
    """

    def __init__(self, start: float = 0.5, stop: float = 20.0, step: float = 0.15,
                 period: int = 6000, ramp: int = 1000):
        owner = type(self).__name__
        self.start, self.stop, self.step = _climb(owner, start, stop, step)
        self.ramp = integer(owner, "ramp", ramp, ge=1)
        self.period = integer(owner, "period", period, ge=1)
        if self.period <= self.ramp:
            # a ramp as long as the period never holds C: that is a ramp, not hybrid annealing
            raise ValueError(f"{owner}.period must be > ramp ({self.ramp}), got {self.period}")
        self.config = {"name": "hybrid", "start": self.start, "stop": self.stop, "step": self.step,
                       "period": self.period, "ramp": self.ramp}

    def increments(self, t: int) -> int:
        """How many ``step / ramp`` increments C has received by step t (uncapped)."""
        periods_begun = t // self.period  # ramps k = 1..periods_begun have started by t
        if periods_begun == 0:
            return 0
        in_current_ramp = min(self.ramp, t - periods_begun * self.period + 1)
        return (periods_begun - 1) * self.ramp + in_current_ramp

    def value(self, t: int) -> float:
        t = training_step(type(self).__name__, t)
        whole_ramps, partial = divmod(self.increments(t), self.ramp)
        # whole ramps as multiples of `step`, so C lands on start + k·step exactly where it can
        c = self.start + whole_ramps * self.step + partial * self.step / self.ramp
        return _capped(c, self.stop)

    def value_tensor(self, t: torch.Tensor) -> torch.Tensor:
        """``value`` of an integer step tensor, computed on its device (float64)."""
        periods_begun = torch.div(t, self.period, rounding_mode="floor")
        in_current_ramp = torch.clamp(t - periods_begun * self.period + 1, max=self.ramp)
        increments = torch.where(periods_begun == 0, 0, (periods_begun - 1) * self.ramp + in_current_ramp)
        whole_ramps = torch.div(increments, self.ramp, rounding_mode="floor").to(torch.float64)
        partial = torch.remainder(increments, self.ramp).to(torch.float64)
        # the host's order: (start + whole·step) + (partial·step) / ramp
        c = whole_ramps * self.step + self.start + partial * self.step / self.ramp
        return _capped_tensor(c, self.stop)


@gin.configurable
class StepAnnealing(StatelessSetpoint):
    """Step annealing (docs/controllers.md; ControlVAE, DynamicVAE-step ablation).

    C starts at ``start`` and grows by ``step`` at every t with ``t % period == 0``,
    capped at ``stop``.
    """

    def __init__(self, start: float = 0.5, stop: float = 20.0, step: float = 0.15, period: int = 5000):
        owner = type(self).__name__
        self.start, self.stop, self.step = _climb(owner, start, stop, step)
        self.period = integer(owner, "period", period, ge=1)
        self.config = {"name": "step", "start": self.start, "stop": self.stop, "step": self.step,
                       "period": self.period}

    def value(self, t: int) -> float:
        t = training_step(type(self).__name__, t)
        return _capped(self.start + (t // self.period) * self.step, self.stop)

    def value_tensor(self, t: torch.Tensor) -> torch.Tensor:
        """``value`` of an integer step tensor, computed on its device (float64)."""
        periods = torch.div(t, self.period, rounding_mode="floor").to(torch.float64)
        return _capped_tensor(periods * self.step + self.start, self.stop)
