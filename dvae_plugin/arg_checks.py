"""Construction-time checks of numeric arguments, with errors that name the parameter.

A bad gain or period must fail when the object is built (gin adds the binding
to the message), not show up as a silently wrong run hours later. Every check
raises ValueError: "PIBetaScheduler.ki must be > 0, got -0.005".
"""

from __future__ import annotations

import math
import numbers


def real(owner: str, name: str, value, *, gt: float | None = None, ge: float | None = None) -> float:
    """``value`` as a finite float, optionally bounded below (strictly with ``gt``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}")
    value = float(value)
    if gt is not None and not value > gt:
        raise ValueError(f"{owner}.{name} must be > {gt:g}, got {value!r}")
    if ge is not None and not value >= ge:
        raise ValueError(f"{owner}.{name} must be >= {ge:g}, got {value!r}")
    return value


def integer(owner: str, name: str, value, *, ge: int) -> int:
    """``value`` as an int >= ``ge``; floats (even 6000.0) are refused, bools too."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{owner}.{name} must be an integer, got {value!r}")
    value = int(value)
    if value < ge:
        raise ValueError(f"{owner}.{name} must be >= {ge}, got {value!r}")
    return value


def training_step(owner: str, t) -> int:
    """A training step index: steps are counted from t = 1."""
    if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 1:
        raise ValueError(f"{owner}.value(t): t is a training step, an integer >= 1 (steps are counted from 1); got {t!r}")
    return int(t)
