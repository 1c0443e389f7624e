"""Closed-loop β schedulers: a control law on [K] tensors, batched by construction.

A closed-loop scheduler feeds back the moving average y of the KL it is given,
compares it with a set point C(t), and lets a *control law* turn the error
e = C − y into β. A law is written once, as a pure function on float64 tensors
of one shape [K] — K = 1 for an ordinary run, K members for a fused group —
and a subclass of :class:`ClosedLoopScheduler` declares:

* ``gains`` — the names of its per-member numbers (attributes of the instance,
  e.g. ``("kp", "ki", "beta_min")``): a fused group stacks them into [K] tensors,
  so members may differ (a sweep over Ki fuses);
* ``state`` — the names of its state variables, and ``initial_state(gains)``:
  their [K] tensors at t = 0;
* ``control(state, error, gains) -> (beta, new_state)`` — one step of the law;
  everything in and out is a [K] float64 tensor, with no Python branch on a
  value (use ``torch.where``) and no read back to the host;
* optionally ``logged`` — ``{log name: state name}`` to log beside the set
  point, the KL average and the error, and ``structure()`` — settings that are
  not gains and must be equal for members to share a group (a mode, say).

In exchange the harness gives it, in :class:`ClosedLoopGroup`, the one engine
that runs every closed-loop scheduler: the KL moving average and the set point,
the step counter t, float and 0-dim tensor KLs for a single run ([K] for a
group), checkpoints in one format, a fused group's stacking and capture in a
compiled step or a CUDA graph (its state lives in tensors on the device,
updated in place; nothing is read back while stepping).

Checkpoint format (``state_dict``, format 1, unchanged from earlier versions):
``{"format": 1, "kind": "unstarted"|"tensor"|"float", "t": int, "window": [W]
values, "window_pos": int, <state names>: values, "setpoint": {...}}``; the
step counter and window position are read back to the host when a state is
taken (a checkpoint synchronises anyway). States of kind ``"float"`` (written by
versions with a separate float path) still load.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import gin
import torch

from .components import has_method, resolve_component

STATE_FORMAT = 1
UNSTARTED, FLOAT, TENSOR = "unstarted", "float", "tensor"


def kl_moving_average(window: torch.Tensor, pos: torch.Tensor, kl: torch.Tensor):
    """The feedback y: the mean of the last W KLs, the current one included.

    ``window`` [W, K] starts as zeros (Algorithm 1's y(0) = 0) and the mean always
    divides by W; ``pos`` [1] (int64) is the slot the next KL goes into. Returns
    (y [K], new window, new pos). The slots are summed in a fixed order, slot 0
    first, so the result does not depend on where the ring buffer stands."""
    width = window.shape[0]
    window = window.index_copy(0, pos, kl.unsqueeze(0))
    y = window[0]
    for i in range(1, width):
        y = y + window[i]
    return y / width, window, torch.remainder(pos + 1, width)


class StatelessSetpoint:
    """The state (none) and the repr of a set point that is a function of t alone; its
    ``config`` holds what it was built with."""

    config: dict

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict):
            raise ValueError(f"{type(self).__name__}.load_state_dict expects a dict, got {type(state).__name__}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items() if k != "name")
        return f"{type(self).__name__}({args})"


@gin.configurable
class ConstantSetpoint(StatelessSetpoint):
    """C(t) = ``value`` for every step t >= 1 (docs/controllers.md). The harness's own set
    point, so that any closed-loop scheduler can be given a constant target (a number)."""

    def __init__(self, value: float):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"ConstantSetpoint.value must be a finite number, got {value!r}")
        if value < 0:
            raise ValueError(f"ConstantSetpoint.value must be >= 0, got {value!r}")
        self.constant = float(value)
        self.config = {"name": "constant", "value": self.constant}

    def value(self, t: int) -> float:
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 1:
            raise ValueError(f"ConstantSetpoint.value(t): t is a training step, an integer >= 1 (steps are "
                             f"counted from 1); got {t!r}")
        return self.constant

    def value_tensor(self, t: torch.Tensor) -> torch.Tensor:
        """``value`` of an integer step tensor (a fill on its device, float64)."""
        return torch.full(t.shape, self.constant, dtype=torch.float64, device=t.device)


def resolve_setpoint(setpoint, default: Callable[[], Any] | None, owner: str):
    """A set point from: a number (constant C), None (the owner's default), a registered
    name, a class, an object with ``value(t)`` or a zero-argument factory of one."""
    if isinstance(setpoint, numbers.Real) and not isinstance(setpoint, bool):
        return ConstantSetpoint(setpoint)
    if setpoint is None and default is None:
        raise ValueError(f"{owner}.setpoint is required: a number (a constant C), a set point or a registered name")
    return resolve_component(setpoint, kind="setpoints", default=default, is_instance=has_method("value"),
                             owner=f"{owner}.setpoint")


def setpoint_config(setpoint) -> dict:
    """A set point's config, for nesting in a scheduler's (a third-party one may lack it)."""
    config = getattr(setpoint, "config", None)
    return dict(config) if isinstance(config, dict) else {"name": type(setpoint).__name__}


class ClosedLoopScheduler:
    """Base of the closed-loop β schedulers (see the module docstring): one run's
    scheduler, whose ``step(kl)`` takes a float or a 0-dim tensor and returns the same
    kind. A subclass sets ``name``, ``gains``, ``state`` (and ``logged``), sets its
    gains as attributes, calls ``super().__init__(window=..., setpoint=...)`` and
    implements ``initial_state`` and ``control``."""

    name = "closed_loop"
    gains: tuple[str, ...] = ()
    state: tuple[str, ...] = ()
    logged: dict[str, str] = {}
    default_setpoint: Callable[[], Any] | None = None

    def __init__(self, *, window: int = 1, setpoint=None):
        owner = type(self).__name__
        if isinstance(window, bool) or not isinstance(window, numbers.Integral):
            raise ValueError(f"{owner}.window must be an integer, got {window!r}")
        if window < 1:
            raise ValueError(f"{owner}.window must be >= 1, got {window!r}")
        self.window = int(window)
        self.setpoint = resolve_setpoint(setpoint, type(self).default_setpoint, owner)
        if not hasattr(self, "config"):
            self.config = {"name": self.name, **{g: getattr(self, g) for g in self.gains}, "window": self.window,
                           "setpoint": setpoint_config(self.setpoint)}
        self._run = ClosedLoopGroup([self])  # a run is a group of one

    # -- the law: what a subclass writes ------------------------------------------------
    def initial_state(self, gains: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def control(self, state: dict[str, torch.Tensor], error: torch.Tensor,
                gains: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def structure(self) -> tuple:
        """Settings other than gains that the members of one group must share."""
        return ()

    # -- one run ---------------------------------------------------------------------------
    @property
    def t(self) -> int:
        """Steps taken (read back from the device)."""
        return int(self._run.t)

    def step(self, kl):
        """Observe this step's KL and return this step's β, of the KL's kind."""
        return self._run.step_run(kl, type(self).__name__)

    def scalars(self) -> dict:
        """The last step's set point, KL average, error and ``logged`` state ({} before a step),
        of the kind the KL came in (floats, or tensors on its device)."""
        return self._run.run_scalars()

    def state_dict(self) -> dict:
        return self._run.member_state_dicts()[0]

    def load_state_dict(self, state: dict) -> None:
        self._run.load_member_state_dicts([state])

    @classmethod
    def stack_group(cls, schedulers) -> "ClosedLoopGroup | None":
        """The K schedulers of a fused group as one :class:`ClosedLoopGroup` (None when their
        windows or structure differ: the group then steps them one by one)."""
        if len({(s.window, s.structure()) for s in schedulers}) != 1:
            return None
        return ClosedLoopGroup(schedulers)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items() if k != "name")
        return f"{type(self).__name__}({args})"


class ClosedLoopGroup:
    """The engine of every closed-loop scheduler: K members (K = 1 for a run) stepped as one.

    The members' gains are [K] float64 tensors, their state [K] tensors, the KL
    window [W, K], and the step counter t an int64 tensor — all on the training
    device, updated in place, so a step reads nothing back and the same tensors
    are read and written every step (``capturable`` when every member's set point
    has ``value_tensor``; a set point for host integers is evaluated from a host
    read of t). C(t) is computed once per step when the members share a set point,
    else once per member."""

    def __init__(self, members):
        self.members = list(members)
        first = self.members[0]
        self.law = first  # the members share window and structure; each step passes the [K] gains
        configs = [setpoint_config(m.setpoint) for m in self.members]
        self.shared_setpoint = all(type(m.setpoint) is type(first.setpoint) and c == configs[0]
                                   for m, c in zip(self.members, configs))
        self.capturable = all(callable(getattr(m.setpoint, "value_tensor", None)) for m in self.members)
        self.device = torch.device("cpu")
        self.gains = {g: torch.tensor([float(getattr(m, g)) for m in self.members], dtype=torch.float64)
                      for g in type(first).gains}
        self.t = torch.zeros((), dtype=torch.int64)
        self.window = torch.zeros(first.window, len(self.members), dtype=torch.float64)
        self.pos = torch.zeros(1, dtype=torch.int64)
        self.state = {k: v.to(torch.float64).clone() for k, v in first.initial_state(self.gains).items()}
        self._check_state_names(self.state, "initial_state")
        self._last: dict = {}
        self._input = "float"

    def __len__(self) -> int:
        return len(self.members)

    def _check_state_names(self, state: dict, where: str) -> None:
        expected = tuple(type(self.law).state)
        if tuple(state) != expected:
            raise ValueError(f"{type(self.law).__name__}.{where} gave state {tuple(state)}, declared {expected}")

    # -- the group protocol (disbench.schedulers) -------------------------------------------
    def to(self, device) -> "ClosedLoopGroup":
        """Move the gains and state to ``device`` (the first step does it if not before)."""
        device = torch.device(device)
        if device != self.device:
            self.gains = {k: v.to(device) for k, v in self.gains.items()}
            self.t, self.window, self.pos = self.t.to(device), self.window.to(device), self.pos.to(device)
            self.state = {k: v.to(device) for k, v in self.state.items()}
            self.device = device
        return self

    def state_tensors(self) -> list[torch.Tensor]:
        """The tensors ``step`` updates in place (static addresses for CUDA graphs)."""
        return [self.t, self.window, self.pos, *self.state.values()]

    def step(self, kl: torch.Tensor) -> torch.Tensor:
        """[K] KLs -> [K] βs in the KL's dtype (detached; float64 arithmetic; no host read)."""
        if kl.shape != (len(self),):
            raise ValueError(f"a group of {len(self)} schedulers takes [{len(self)}] KLs, got {tuple(kl.shape)}")
        return self._advance(kl.detach().to(torch.float64)).to(kl.dtype)

    def _advance(self, kl: torch.Tensor) -> torch.Tensor:
        self.to(kl.device)
        self.t.add_(1)
        c = self._setpoint()
        y, window, pos = kl_moving_average(self.window, self.pos, kl)
        e = c - y
        beta, new_state = self.law.control(self.state, e, self.gains)
        self._check_state_names(new_state, "control")
        self.window.copy_(window)
        self.pos.copy_(pos)
        for name, value in new_state.items():  # written into the same tensors: fixed addresses
            self.state[name].copy_(value)
        self._last = {"setpoint": c, "kl_avg": y, "error": e}
        return beta

    def _setpoint(self) -> torch.Tensor:
        if self.capturable:
            if self.shared_setpoint:
                return self.members[0].setpoint.value_tensor(self.t)
            return torch.stack([m.setpoint.value_tensor(self.t) for m in self.members])
        t = int(self.t)  # a set point for host integers: one read of t per step (not capturable)
        return torch.tensor([m.setpoint.value(t) for m in self.members], dtype=torch.float64).to(self.device)

    def scalars(self) -> dict:
        """``{name: [K] tensor}``: set point, KL average, error and the law's ``logged`` state."""
        if not self._last:
            return {}
        out = dict(self._last)
        out["setpoint"] = out["setpoint"].expand(len(self))  # 0-dim when shared: a view
        out.update({name: self.state[source] for name, source in type(self.law).logged.items()})
        return out

    def member_state_dicts(self) -> list[dict]:
        """Each member's state, in the checkpoint format of the module docstring
        (reads t and the window position back to the host)."""
        t, pos = int(self.t), int(self.pos)
        states = []
        for k, member in enumerate(self.members):
            if t == 0:
                state = {"format": STATE_FORMAT, "kind": UNSTARTED, "t": 0, "window_pos": pos,
                         "window": self.window[:, k].tolist(), **{n: v[k].item() for n, v in self.state.items()}}
            else:
                state = {"format": STATE_FORMAT, "kind": TENSOR, "t": t, "window_pos": pos,
                         "window": self.window[:, k].clone(), **{n: v[k].clone() for n, v in self.state.items()}}
            state["setpoint"] = member.setpoint.state_dict() if hasattr(member.setpoint, "state_dict") else {}
            states.append(state)
        return states

    def load_member_state_dicts(self, states) -> None:
        """Continue from the members' states (each checked; all at one step)."""
        checked = [self._checked(member, state) for member, state in zip(self.members, states)]
        if len({(t, pos) for t, pos, _, _ in checked}) != 1:
            raise ValueError(f"the members of a group must be at the same step; got steps "
                             f"{sorted({t for t, _, _, _ in checked})}")
        t, pos = checked[0][0], checked[0][1]
        device = self.device
        self.t = torch.tensor(t, dtype=torch.int64, device=device)
        self.pos = torch.tensor([pos], dtype=torch.int64, device=device)
        self.window = torch.stack([window for _, _, window, _ in checked], dim=1).to(device)
        self.state = {name: torch.stack([values[name] for _, _, _, values in checked]).to(device)
                      for name in type(self.law).state}
        self._last = {}
        for member, state in zip(self.members, states):
            if hasattr(member.setpoint, "load_state_dict"):
                member.setpoint.load_state_dict(state.get("setpoint", {}))

    def _checked(self, member, state) -> tuple[int, int, torch.Tensor, dict]:
        """(t, window position, window [W], state values) of one member's state, checked."""
        owner = f"{type(member).__name__}.load_state_dict"
        if not isinstance(state, dict):
            raise ValueError(f"{owner}: expected a dict, got {type(state).__name__}")
        missing = [k for k in ("format", "kind", "t", "window", "window_pos", *type(member).state) if k not in state]
        if missing:
            raise ValueError(f"{owner}: state lacks {', '.join(missing)} (not a {type(member).__name__} state?)")
        if state["format"] != STATE_FORMAT:
            raise ValueError(f"{owner}: unknown state format {state['format']!r} (this version reads {STATE_FORMAT})")
        kind, window, pos, t = state["kind"], state["window"], state["window_pos"], state["t"]
        if kind not in (UNSTARTED, FLOAT, TENSOR):
            raise ValueError(f"{owner}: kind must be {UNSTARTED!r}, {FLOAT!r} or {TENSOR!r}, got {kind!r}")
        if len(window) != member.window:
            raise ValueError(f"{owner}: the state's window holds {len(window)} values, this scheduler's "
                             f"window is {member.window}")
        if not (isinstance(pos, int) and 0 <= pos < member.window and isinstance(t, int) and t >= 0):
            raise ValueError(f"{owner}: bad window_pos {pos!r} or t {t!r}")
        as64 = lambda v: torch.as_tensor(v, dtype=torch.float64).detach().to("cpu")  # noqa: E731
        if kind == TENSOR and not (isinstance(window, torch.Tensor) and window.dim() == 1):
            raise ValueError(f"{owner}: a tensor state's window must be a 1-D tensor")
        return t, pos, as64(window).clone(), {n: as64(state[n]).reshape(()).clone() for n in type(member).state}

    # -- one run's view (K = 1): a float or a 0-dim tensor in, the same kind out ----------
    def step_run(self, kl, owner: str):
        if isinstance(kl, torch.Tensor):
            if kl.dim() != 0:
                raise ValueError(f"{owner}.step: kl must be a 0-dim tensor, got shape {tuple(kl.shape)}")
            if not kl.is_floating_point():
                raise TypeError(f"{owner}.step: kl must be a floating-point tensor, got {kl.dtype}")
            self._input = "scalar"
            return self._advance(kl.detach().to(torch.float64).reshape(1))[0].to(kl.dtype)
        if isinstance(kl, bool) or not isinstance(kl, numbers.Real):
            raise TypeError(f"{owner}.step: kl must be a float or a 0-dim tensor, got {type(kl).__name__}")
        if not math.isfinite(kl):  # a host float is checked here: nothing downstream would catch it
            raise ValueError(f"{owner}.step: kl must be finite, got {kl!r} at step {int(self.t) + 1}")
        self._input = "float"
        return self._advance(torch.tensor([float(kl)], dtype=torch.float64, device=self.device))[0].item()

    def run_scalars(self) -> dict:
        out = {k: v[0] for k, v in self.scalars().items()}
        return {k: v.item() for k, v in out.items()} if self._input == "float" else out
