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
* ``scalars()`` — ``{name: [K] tensor}`` (may be empty); optionally
  ``scalar_members()`` — ``{name: member indices}``, the members a scalar belongs
  to when not all do (a name left out: all K; the other entries are not read), so
  each member's row in ``scalars.jsonl`` has exactly the keys it has alone;
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

Members of several classes (runs of different models fused) make a
:class:`MixedGroup`: one group per class, as above, each stepped on its
members' KLs gathered by index on the device (one Python step per class, no
host read), so each member's β equals its scheduler's alone bit for bit. It
is ``capturable`` when every class's group is, and reports each scalar for
the members whose class logs it (``scalar_members``): a constant β's member
logs none, a PI controller's its set point.

A closed-loop scheduler need not write any of this: a subclass of
:class:`disbench.control.ClosedLoopScheduler` declares its control law (gains,
state, a step on [K] tensors) and gets ``stack_group``, a capturable group,
checkpoints and float/tensor KLs from :class:`disbench.control.ClosedLoopGroup`.
"""

from __future__ import annotations

import math
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


class MixedGroup:
    """Members of several scheduler classes: one group per class (a partition,
    made as :func:`group_scheduler` makes a group of that class alone), stepped
    on its members' KLs gathered by index tensors made once and moved by ``to``.
    ``capturable`` when every partition is."""

    def __init__(self, parts, slots):
        self.parts = list(parts)
        self.slots = [list(s) for s in slots]  # each partition's member indices, in member order
        self.size = sum(len(s) for s in self.slots)
        self.capturable = all(getattr(p, "capturable", False) for p in self.parts)
        self.device = torch.device("cpu")
        self.index = [torch.tensor(s, dtype=torch.int64) for s in self.slots]
        # member k's β is entry order[k] of the partitions' βs concatenated
        self.order = torch.argsort(torch.cat(self.index))

    def __len__(self) -> int:
        return self.size

    def to(self, device) -> "MixedGroup":
        self.device = torch.device(device)
        self.index = [ix.to(self.device) for ix in self.index]
        self.order = self.order.to(self.device)
        for part in self.parts:
            if callable(getattr(part, "to", None)):
                part.to(self.device)
        return self

    def state_tensors(self) -> list:
        return [t for part in self.parts for t in getattr(part, "state_tensors", list)()]

    def step(self, kl: torch.Tensor) -> torch.Tensor:
        if kl.shape != (self.size,):
            raise ValueError(f"a group of {self.size} schedulers takes [{self.size}] KLs, got {tuple(kl.shape)}")
        if kl.device != self.device:
            self.to(kl.device)
        betas = [part.step(kl.index_select(0, ix)) for part, ix in zip(self.parts, self.index)]
        return torch.cat(betas).index_select(0, self.order)

    def scalars(self) -> dict:
        """``{name: [K] float64 tensor}``, names in the order the partitions first report
        them: each partition's values at its members' places, NaN at the other members'."""
        blank = torch.full((self.size,), math.nan, dtype=torch.float64, device=self.device)
        out = {}
        for part, ix in zip(self.parts, self.index):
            for name, value in scheduler_scalars(part).items():
                value = torch.as_tensor(value).to(device=self.device, dtype=torch.float64)
                out[name] = out.get(name, blank).index_copy(0, ix, value)
        return out

    def scalar_members(self) -> dict:
        """``{name: member indices}``: the members whose partition reports it (and gives it to them)."""
        owners = {}
        for part, slots in zip(self.parts, self.slots):
            for name, own in scalar_owners(part, scheduler_scalars(part), len(slots)).items():
                owners.setdefault(name, []).extend(slots[i] for i in own)
        return {name: sorted(ks) for name, ks in owners.items()}

    def member_state_dicts(self) -> list[dict]:
        states = [None] * self.size
        for part, slots in zip(self.parts, self.slots):
            for k, state in zip(slots, part.member_state_dicts()):
                states[k] = state
        return states

    def load_member_state_dicts(self, states) -> None:
        states = list(states)
        for part, slots in zip(self.parts, self.slots):
            part.load_member_state_dicts([states[k] for k in slots])


def scalar_owners(group, scalars: dict, size: int) -> dict:
    """``{name: member indices}`` for each of a group's ``scalars``: what its optional
    ``scalar_members()`` says, all ``size`` members for a name it leaves out."""
    fn = getattr(group, "scalar_members", None)
    owned = dict(fn()) if callable(fn) else {}
    return {name: list(owned.get(name, range(size))) for name in scalars}


def stacked(schedulers):
    """Members of one scheduler class as one group: its ``stack_group``, else one by one."""
    stack = getattr(type(schedulers[0]), "stack_group", None)
    batched = stack(schedulers) if callable(stack) else None
    return PerMemberGroup(schedulers) if batched is None else batched


def group_scheduler(schedulers):
    """One object stepping the schedulers of a group's K members (see the module docstring):
    one class's group, or a :class:`MixedGroup` of one per class."""
    schedulers = list(schedulers)
    by_class: dict[type, list[int]] = {}  # in order of first appearance
    for k, s in enumerate(schedulers):
        by_class.setdefault(type(s), []).append(k)
    if len(by_class) == 1:
        return stacked(schedulers)
    slots = list(by_class.values())
    return MixedGroup([stacked([schedulers[k] for k in s]) for s in slots], slots)
