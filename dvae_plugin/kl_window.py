"""The moving average of the observed KL that both PI controllers feed back (docs/controllers.md, §4).

y(t) = mean of the last ``window`` KL values, the current one included. The
window starts filled with zeros (Algorithm 1's y_KL(0) = 0), and the mean
always divides by ``window``, also during the first ``window - 1`` steps.

The values are a Python list of floats, or of 0-dim tensors: the same code
serves both paths. Pushing is a list assignment (no kernel), and the sum runs
over the slots in a fixed order (slot 0 first, not oldest first), so the float
path and the float64-tensor path perform the very same additions and agree
bit for bit.
"""

from __future__ import annotations

from typing import Any, Callable


class KLMovingAverage:
    def __init__(self, window: int):
        self.values: list[Any] = [0.0] * window
        self.pos = 0  # the slot the next KL goes into (the oldest value)

    @property
    def window(self) -> int:
        return len(self.values)

    def push(self, kl) -> None:
        self.values[self.pos] = kl
        self.pos = (self.pos + 1) % len(self.values)

    def mean(self):
        total = self.values[0]
        for v in self.values[1:]:
            total = total + v
        return total / len(self.values)

    def convert(self, fn: Callable[[Any], Any]) -> None:
        """Replace every stored value by ``fn(value)`` (float -> tensor, device moves)."""
        self.values = [fn(v) for v in self.values]
