"""The β-scheduler and KL set-point interfaces, and the trivial constant β.

A scheduler is closed-loop and stateful: the training loop calls
``step(kl)`` once per optimizer step with that step's detached KL and weighs
the step's KL with the β it returns. ``kl`` is a Python float or a 0-dim
tensor; a scheduler returns the same kind (a tensor on the same device, so
the training step needs no host synchronisation).

Schedulers record the arguments they were built with in ``config`` (they go
into results.json) and may report extra scalars for the log (``scalars()``).

Groups of runs
--------------
A fused group trains K runs at once and feeds its schedulers the [K] KLs of
all members in one tensor (:func:`group_scheduler`). A scheduler class takes a
whole group at once by defining the classmethod ``stack_group(schedulers)``,
which receives the K member instances (built as for K separate runs, so each
has its own gin bindings) and returns an object with:

* ``step(kl)`` — ``kl`` a [K] tensor; returns the [K] βs as a tensor, with no
  per-member Python loop and no host synchronisation;
* ``scalars()`` — ``{name: [K] tensor}`` (may be empty);
* ``member_state_dicts()`` / ``load_member_state_dicts(states)`` — one state per
  member, each exactly what that member's own scheduler's ``state_dict`` would
  be, so each member's checkpoint is an ordinary run's checkpoint.

Optionally, for a training step that can be compiled and captured in a CUDA
graph (``Protocol.compile``):

* ``capturable = True`` — ``step`` does nothing on the host that changes from
  step to step: its state (its step counter and set point included) lives in
  tensors on the device, updated in place, and it reads no value back. Such a
  group is stepped inside the compiled step; any other group (``capturable``
  absent or False) is stepped outside it, eagerly, and works as before;
* ``to(device)`` — move the state to the training device before the first step;
* ``state_tensors()`` — the tensors ``step`` updates in place (their addresses
  are kept fixed for CUDA graphs).

``stack_group`` may return None when it cannot batch these members (say,
different windows); a scheduler without it — a third party's written for one
run — keeps working: the group steps each member's instance in turn.

A closed-loop scheduler need not write any of this: a subclass of
:class:`disbench.control.ClosedLoopScheduler` declares its control law (gains,
state, a step on [K] tensors) and gets ``stack_group``, a capturable group,
checkpoints and float/tensor KLs from :class:`disbench.control.ClosedLoopGroup`.
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
        self._tensor = None

    def step(self, kl):
        if isinstance(kl, torch.Tensor):  # one tensor per device, dtype and shape, made once
            t = self._tensor
            if t is None or t.device != kl.device or t.dtype != kl.dtype or t.shape != kl.shape:
                self._tensor = torch.full_like(kl, self.beta)
            return self._tensor
        return self.beta

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    @classmethod
    def stack_group(cls, schedulers) -> "ConstantGroup":
        return ConstantGroup([s.beta for s in schedulers])


class ConstantGroup:
    """K constant βs: the [K] tensor is made once per device, not every step."""

    capturable = True

    def __init__(self, betas):
        # in the KL's dtype (models sum the KL in float32), so that a compiled step sees
        # the same tensor from its first step on; ``step`` converts once for another
        self.betas = torch.tensor(betas, dtype=torch.float64).to(torch.float32)

    def to(self, device) -> "ConstantGroup":
        self.betas = self.betas.to(device)
        return self

    def state_tensors(self) -> list:
        return []

    def step(self, kl: torch.Tensor) -> torch.Tensor:
        if self.betas.device != kl.device or self.betas.dtype != kl.dtype:
            self.betas = self.betas.to(device=kl.device, dtype=kl.dtype)
        return self.betas

    def scalars(self) -> dict:
        return {}

    def member_state_dicts(self) -> list[dict]:
        return [{} for _ in range(len(self.betas))]

    def load_member_state_dicts(self, states) -> None:
        pass


class PerMemberGroup:
    """A group of schedulers that cannot be batched: each member's own instance
    is stepped on its own KL (a Python loop over K; third-party schedulers).
    Not ``capturable``: a compiled step steps it outside the compiled code."""

    capturable = False

    def __init__(self, schedulers):
        self.schedulers = list(schedulers)

    def step(self, kl: torch.Tensor) -> torch.Tensor:
        betas = [s.step(kl[k]) for k, s in enumerate(self.schedulers)]
        return torch.stack([torch.as_tensor(b, dtype=kl.dtype, device=kl.device) for b in betas])

    def scalars(self) -> dict:
        per_member = [scheduler_scalars(s) for s in self.schedulers]
        keys = [k for k in per_member[0] if all(k in m for m in per_member)]
        return {k: torch.stack([torch.as_tensor(m[k], dtype=torch.float64) for m in per_member]) for k in keys}

    def member_state_dicts(self) -> list[dict]:
        return [s.state_dict() for s in self.schedulers]

    def load_member_state_dicts(self, states) -> None:
        for s, state in zip(self.schedulers, states):
            s.load_state_dict(state)


def group_scheduler(schedulers):
    """One object stepping the schedulers of a group's K members (see the module docstring)."""
    schedulers = list(schedulers)
    cls = type(schedulers[0])
    stack = getattr(cls, "stack_group", None)
    if callable(stack) and all(type(s) is cls for s in schedulers):
        batched = stack(schedulers)
        if batched is not None:
            return batched
    return PerMemberGroup(schedulers)
