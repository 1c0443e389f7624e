"""The β-scheduler and KL set-point interfaces, and the trivial constant β.

A scheduler is closed-loop and stateful: the training loop calls
``step(kl)`` once per optimizer step with that step's detached KL and weighs
the step's KL with the β it returns. ``kl`` is a Python float or a 0-dim
tensor; a scheduler returns the same kind (a tensor on the same device, so
the training step needs no host synchronisation).

Schedulers record the arguments they were built with in ``config`` (they go
into results.json) and may report extra scalars for the log (``scalars()``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import gin
import torch


@runtime_checkable
class BetaScheduler(Protocol):
    config: dict

    def step(self, kl): ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@runtime_checkable
class Setpoint(Protocol):
    """A KL set point C(t) for training steps t >= 1."""

    config: dict

    def value(self, t: int) -> float: ...


def scheduler_scalars(scheduler: Any) -> dict:
    """Extra scalars a scheduler wants logged (set point, error, ...), if any."""
    fn = getattr(scheduler, "scalars", None)
    return dict(fn()) if callable(fn) else {}


@gin.configurable
class ConstantBeta:
    """β(t) = ``beta`` for every step."""

    def __init__(self, beta: float = 1.0):
        beta = float(beta)
        if not beta >= 0:
            raise ValueError(f"ConstantBeta.beta must be >= 0, got {beta}")
        self.beta = beta
        self.config = {"name": "constant", "beta": beta}

    def step(self, kl):
        if isinstance(kl, torch.Tensor):
            return torch.full_like(kl, self.beta)
        return self.beta

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
