"""What the PI β schedulers of docs/controllers.md and §4 share.

A :class:`ClosedLoopBetaScheduler` owns the step counter t, the set point C(t),
the KL moving average y and the error e = C − y; a subclass supplies only its
control law (``_control``) and its named state variables.

Two arithmetic paths, one control law
-------------------------------------
``step(kl)`` takes a Python float or a 0-dim tensor and returns the same kind.

* Float path: the state is Python floats (IEEE double). A NaN/Inf KL raises
  ValueError, since nothing downstream would catch it.
* Tensor path: the state is 0-dim float64 tensors on the KL's device, created
  on the first tensor step. Nothing reads a value back to the host — no
  ``.item()``, no ``float()``, no Python ``if`` on a tensor; the branches of
  the law are ``torch.where`` and ``torch.clamp`` — so a training step on a GPU
  stays asynchronous. A NaN/Inf KL is not checked (that would need a host
  read): it propagates into β and the training loop's NaN guard handles it.
  β comes back in the KL's dtype.

The control law is written once against the small ``_FloatMath`` /
``_TensorMath`` namespaces below, which perform the same double-precision
operations in the same order, so both paths give the same numbers (on CPU:
bit for bit; ``torch.sigmoid`` computes 1/(1+exp(−x)) exactly as the float
path writes it, whereas ``torch.exp`` does not match ``math.exp``).

A scheduler that has run on floats may switch to tensors (the state converts
losslessly); one that has run on tensors refuses floats, because converting
back would need a host synchronisation.
"""

from __future__ import annotations

import copy
import math
import numbers
from typing import Any, Callable

import torch

from disbench.components import has_method, resolve_component

from .arg_checks import integer
from .kl_window import KLMovingAverage

UNSTARTED, FLOAT, TENSOR = "unstarted", "float", "tensor"
ANTI_WINDUP_MODES = ("latch", "conditional", "none")
STATE_FORMAT = 1


class _FloatMath:
    @staticmethod
    def sigmoid_neg(e: float) -> float:
        """σ(−e) = 1 / (1 + exp(e))."""
        try:
            return 1.0 / (1.0 + math.exp(e))
        except OverflowError:  # exp(e) = inf: torch gives 1/inf = 0 too
            return 0.0

    @staticmethod
    def where(cond: bool, if_true, if_false):
        return if_true if cond else if_false

    @staticmethod
    def clamp_min(x: float, lo: float) -> float:
        return max(x, lo)

    @staticmethod
    def both(a: bool, b: bool) -> bool:
        return a and b


class _TensorMath:
    @staticmethod
    def sigmoid_neg(e: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(-e)

    where = staticmethod(torch.where)
    both = staticmethod(torch.logical_and)

    @staticmethod
    def clamp_min(x: torch.Tensor, lo: float) -> torch.Tensor:
        return torch.clamp(x, min=lo)


def resolve_setpoint(setpoint, default_factory: Callable[[], Any], owner: str):
    """A set point object from: None (the default), a registered set-point name, a
    class (gin's ``@HybridAnnealing``), an object with ``.value(t)`` (gin's
    ``@HybridAnnealing()``) or a zero-argument factory."""
    return resolve_component(setpoint, kind="setpoints", default=default_factory,
                             is_instance=has_method("value"), owner=f"{owner}.setpoint")


class ClosedLoopBetaScheduler:
    """Base of the closed-loop β schedulers: one ``step(kl)`` per training step.

    Subclasses set ``name``, ``beta_min``, ``config`` and implement
    ``_initial_state()`` (the named state variables as floats) and
    ``_control(e, ops)`` (update ``self._vars`` and return the un-clamped β).
    """

    name = "closed_loop"
    beta_min: float
    config: dict

    def __init__(self, *, window: int, setpoint, default_setpoint: Callable[[], Any], anti_windup: str = "latch"):
        owner = type(self).__name__
        if anti_windup not in ANTI_WINDUP_MODES:
            raise ValueError(f"{owner}.anti_windup must be one of {', '.join(ANTI_WINDUP_MODES)}, got {anti_windup!r}")
        self.anti_windup = anti_windup
        self.window = integer(owner, "window", window, ge=1)
        self.setpoint = resolve_setpoint(setpoint, default_setpoint, owner)
        self.t = 0
        self._kind = UNSTARTED
        self._device: torch.device | None = None
        self._kl_window = KLMovingAverage(self.window)
        self._vars: dict[str, Any] = self._initial_state()
        self._last: dict[str, Any] = {}

    def _setpoint_config(self) -> dict:
        """The set point's config, for nesting in the scheduler's (a third-party one may lack it)."""
        config = getattr(self.setpoint, "config", None)
        return dict(config) if isinstance(config, dict) else {"name": type(self.setpoint).__name__}

    # -- the subclass's part -------------------------------------------------
    def _initial_state(self) -> dict[str, float]:
        raise NotImplementedError

    def _control(self, e, ops):
        raise NotImplementedError

    def _freeze_integral(self, saturated, e, ops):
        """Whether the integral term is left out this step (docs/controllers.md):
        ``latch`` while saturated (the stored un-clamped value is below β_min);
        ``conditional`` only while saturated AND the error would push β further down
        (e > 0); ``none`` never (returns None)."""
        if self.anti_windup == "latch":
            return saturated
        if self.anti_windup == "conditional":
            return ops.both(saturated, e > 0)
        return None

    def _mode_config(self) -> dict:
        """The mode in ``config`` when it is not the default (so earlier runs' configs still match)."""
        return {} if self.anti_windup == "latch" else {"anti_windup": self.anti_windup}

    # -- one training step ---------------------------------------------------
    def step(self, kl):
        """Observe this step's KL and return this step's β (docs/controllers.md)."""
        if isinstance(kl, torch.Tensor):
            ops, y_in = _TensorMath, self._tensor_input(kl)
        else:
            ops, y_in = _FloatMath, self._float_input(kl)
        beta = self._advance(y_in, self.setpoint.value(self.t + 1), ops)
        return beta.to(kl.dtype) if ops is _TensorMath else beta

    def _advance(self, y_in, c, ops):
        """One step of the law on the observed KL ``y_in`` and the set point ``c``: the
        same arithmetic for one run (floats or 0-dim tensors) and for a group ([K] tensors)."""
        self.t += 1
        self._kl_window.push(y_in)
        y = self._kl_window.mean()
        e = c - y
        beta = self._control(e, ops)
        self._last = {"setpoint": c, "kl_avg": y, "error": e, "beta_unclamped": beta}
        return ops.clamp_min(beta, self.beta_min)

    @classmethod
    def stack_group(cls, schedulers):
        """The K schedulers of a fused group as one :class:`ClosedLoopGroup`
        (None when their windows or anti-windup modes differ: they are then
        stepped one by one)."""
        if len({s.window for s in schedulers}) != 1 or len({s.anti_windup for s in schedulers}) != 1:
            return None
        return ClosedLoopGroup(schedulers)

    def _float_input(self, kl) -> float:
        owner = type(self).__name__
        if self._kind == TENSOR:
            raise TypeError(f"{owner}.step: this scheduler runs on tensors (on {self._device}); pass the KL "
                            f"as a 0-dim tensor, not {type(kl).__name__} (going back would need a host sync)")
        if isinstance(kl, bool) or not isinstance(kl, numbers.Real):
            raise TypeError(f"{owner}.step: kl must be a float or a 0-dim tensor, got {type(kl).__name__}")
        kl = float(kl)
        if not math.isfinite(kl):
            raise ValueError(f"{owner}.step: kl must be finite, got {kl!r} at step {self.t + 1}")
        self._kind = FLOAT
        return kl

    def _tensor_input(self, kl: torch.Tensor) -> torch.Tensor:
        owner = type(self).__name__
        if kl.dim() != 0:
            raise ValueError(f"{owner}.step: kl must be a 0-dim tensor, got shape {tuple(kl.shape)}")
        if not kl.is_floating_point():
            raise TypeError(f"{owner}.step: kl must be a floating-point tensor, got {kl.dtype}")
        kl = kl.detach().to(torch.float64)  # the controller is not differentiated (docs/controllers.md)
        if self._kind != TENSOR:
            # new_full is a fill on the device: no host-to-device copy, no sync
            self._convert_state(lambda v: kl.new_full((), v))
            self._kind, self._device = TENSOR, kl.device
        elif self._device != kl.device:  # e.g. a checkpoint loaded onto the CPU, resumed on a GPU
            self._convert_state(lambda v: v.to(kl.device))
            self._device = kl.device
        return kl

    def _convert_state(self, fn) -> None:
        self._vars = {k: fn(v) for k, v in self._vars.items()}
        self._kl_window.convert(fn)

    # -- logging -------------------------------------------------------------
    def scalars(self) -> dict:
        """The last step's set point C, KL average y, error e and un-clamped β ({} before a step).

        Floats on the float path; float64 tensors on the KL's device on the tensor path.
        """
        out = dict(self._last)
        if out and self._kind == TENSOR:
            out["setpoint"] = torch.full_like(out["kl_avg"], out["setpoint"])
        if out:
            out.update(self._extra_scalars())
        return out

    def _extra_scalars(self) -> dict:
        """A subclass's own logged state (e.g. the positional PI's integral)."""
        return {}

    # -- checkpoints ---------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue the identical β sequence; only tensors, Python
        scalars, strings, lists and dicts (loadable with ``torch.load(weights_only=True)``)."""
        if self._kind == TENSOR:
            window = torch.stack(self._kl_window.values)  # a copy
            variables = {k: v.clone() for k, v in self._vars.items()}
        else:
            window = list(self._kl_window.values)
            variables = dict(self._vars)
        state = {"format": STATE_FORMAT, "kind": self._kind, "t": self.t,
                 "window": window, "window_pos": self._kl_window.pos}
        state.update(variables)
        state["setpoint"] = self.setpoint.state_dict() if hasattr(self.setpoint, "state_dict") else {}
        return state

    def load_state_dict(self, state: dict) -> None:
        owner = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, dict):
            raise ValueError(f"{owner}: expected a dict, got {type(state).__name__}")
        missing = [k for k in ("format", "kind", "t", "window", "window_pos", *self._vars) if k not in state]
        if missing:
            raise ValueError(f"{owner}: state lacks {', '.join(missing)} (not a {type(self).__name__} state?)")
        if state["format"] != STATE_FORMAT:
            raise ValueError(f"{owner}: unknown state format {state['format']!r} (this version reads {STATE_FORMAT})")
        kind, window, pos, t = state["kind"], state["window"], state["window_pos"], state["t"]
        if kind not in (UNSTARTED, FLOAT, TENSOR):
            raise ValueError(f"{owner}: kind must be {UNSTARTED!r}, {FLOAT!r} or {TENSOR!r}, got {kind!r}")
        if len(window) != self.window:
            raise ValueError(f"{owner}: the state's window holds {len(window)} values, this scheduler's "
                             f"window is {self.window}")
        if not (isinstance(pos, int) and 0 <= pos < self.window and isinstance(t, int) and t >= 0):
            raise ValueError(f"{owner}: bad window_pos {pos!r} or t {t!r}")

        if kind == TENSOR:
            if not isinstance(window, torch.Tensor) or window.dim() != 1:
                raise ValueError(f"{owner}: a tensor state's window must be a 1-D tensor")
            device = window.device
            values = list(window.detach().to(device=device, dtype=torch.float64).clone().unbind(0))
            variables = {k: torch.as_tensor(state[k], dtype=torch.float64, device=device).clone()
                         for k in self._vars}
        else:
            device = None
            values = [float(v) for v in window]
            variables = {k: float(state[k]) for k in self._vars}

        self._kind, self._device, self.t = kind, device, t
        self._kl_window.values, self._kl_window.pos = values, pos
        self._vars = variables
        self._last = {}
        if hasattr(self.setpoint, "load_state_dict"):
            self.setpoint.load_state_dict(state.get("setpoint", {}))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items() if k != "name")
        return f"{type(self).__name__}({args})"


class ClosedLoopGroup:
    """The closed-loop schedulers of a fused group's K members, stepped as one.

    The members' control law runs once on [K] float64 tensors: their gains
    (``GROUP_GAINS`` of the class: e.g. a grid of Ki) become [K] tensors and
    their state [K] tensors, so the arithmetic per member is exactly that of
    its own scheduler's tensor path, bit for bit.

    Everything ``step`` reads lives on the device and is updated in place: the
    step counter t (an int64 tensor), the KL window ([window, K], summed slot 0
    first like :class:`KLMovingAverage`) and its write position, and the law's
    state. C(t) comes from the set point's ``value_tensor(t)``, once per step
    when all members share a set point, else once per member. So a step is
    free of host work and the same tensors are read and written every step:
    it can be compiled without recompiling per step and captured in a CUDA
    graph (``capturable``). A third-party set point without ``value_tensor`` is
    evaluated on the host from a host copy of t (not capturable).
    """

    def __init__(self, schedulers):
        self.members = list(schedulers)
        first = self.members[0]
        self.law = copy.copy(first)  # the members' class and window; gains and state set below
        self.law._kl_window = None  # the group's window is the [window, K] tensor below
        setpoint_configs = [m._setpoint_config() for m in self.members]
        self.shared_setpoint = all(type(m.setpoint) is type(first.setpoint) and c == setpoint_configs[0]
                                   for m, c in zip(self.members, setpoint_configs))
        self.capturable = all(callable(getattr(m.setpoint, "value_tensor", None)) for m in self.members)
        self._gains = {g: torch.tensor([float(getattr(m, g)) for m in self.members], dtype=torch.float64)
                       for g in type(first).GROUP_GAINS}
        self.device = torch.device("cpu")
        for name, value in self._gains.items():
            setattr(self.law, name, value)
        self.load_member_state_dicts([m.state_dict() for m in self.members])

    def __len__(self) -> int:
        return len(self.members)

    def to(self, device) -> "ClosedLoopGroup":
        """Move the gains and state to ``device`` (done by the first step if not before)."""
        device = torch.device(device)
        if device != self.device:
            for name in self._gains:
                setattr(self.law, name, getattr(self.law, name).to(device))
            self.t, self.window, self.pos = self.t.to(device), self.window.to(device), self.pos.to(device)
            self.law._vars = {k: v.to(device) for k, v in self.law._vars.items()}
            self.device = device
        return self

    def state_tensors(self) -> list[torch.Tensor]:
        """The tensors ``step`` updates in place (static addresses for CUDA graphs)."""
        return [self.t, self.window, self.pos, *self.law._vars.values()]

    def _setpoint(self, t: torch.Tensor):
        if self.capturable:
            if self.shared_setpoint:
                return self.members[0].setpoint.value_tensor(t)
            return torch.stack([m.setpoint.value_tensor(t) for m in self.members])
        self._host_t += 1  # a set point for host ints only: evaluated here, copied to the device
        if self.shared_setpoint:
            return self.members[0].setpoint.value(self._host_t)
        values = [m.setpoint.value(self._host_t) for m in self.members]
        return torch.tensor(values, dtype=torch.float64).to(self.device, non_blocking=True)

    def step(self, kl: torch.Tensor) -> torch.Tensor:
        """[K] KLs -> [K] βs (detached, float64 arithmetic, no host synchronisation)."""
        if kl.shape != (len(self),):
            raise ValueError(f"a group of {len(self)} schedulers takes [{len(self)}] KLs, got {tuple(kl.shape)}")
        y_in = kl.detach().to(torch.float64)
        self.to(y_in.device)
        law = self.law
        self.t.add_(1)
        c = self._setpoint(self.t)
        self.window.index_copy_(0, self.pos, y_in.unsqueeze(0))  # KLMovingAverage.push, on the device
        self.pos.add_(1).remainder_(law.window)
        y = self.window[0]
        for i in range(1, law.window):  # KLMovingAverage.mean's order: slot 0 first
            y = y + self.window[i]
        y = y / law.window
        e = c - y
        state, law._vars = law._vars, dict(law._vars)
        beta = law._control(e, _TensorMath)
        for name, value in state.items():  # the new state, written into the same tensors
            value.copy_(law._vars[name])
        law._vars = state
        law._last = {"setpoint": c, "kl_avg": y, "error": e, "beta_unclamped": beta}
        return _TensorMath.clamp_min(beta, law.beta_min).to(kl.dtype)

    def scalars(self) -> dict:
        out = dict(self.law._last)
        if out:
            c = out["setpoint"]
            out["setpoint"] = (c.expand(len(self)) if isinstance(c, torch.Tensor)  # 0-dim if shared: a view
                               else torch.full((len(self),), c, dtype=torch.float64, device=self.device))
            out.update(self.law._extra_scalars())
        return out

    def member_state_dicts(self) -> list[dict]:
        """Each member's state, as its own scheduler's ``state_dict`` would give it
        (reads t and the window position back to the host: a checkpoint's sync)."""
        t, pos = int(self.t), int(self.pos)
        if t == 0:
            return [m.state_dict() for m in self.members]
        states = []
        for k, member in enumerate(self.members):
            state = {"format": STATE_FORMAT, "kind": TENSOR, "t": t, "window": self.window[:, k].clone(),
                     "window_pos": pos}
            state.update({name: value[k].clone() for name, value in self.law._vars.items()})
            state["setpoint"] = member.setpoint.state_dict() if hasattr(member.setpoint, "state_dict") else {}
            states.append(state)
        return states

    def load_member_state_dicts(self, states) -> None:
        """Stack the members' states (each checked by its own scheduler's loader)."""
        for member, state in zip(self.members, states):
            member.load_state_dict(state)
        ts, positions = {m.t for m in self.members}, {m._kl_window.pos for m in self.members}
        if len(ts) != 1 or len(positions) != 1:
            raise ValueError(f"the members of a group must be at the same step; got steps {sorted(ts)}")
        as_tensor = lambda v: torch.as_tensor(v, dtype=torch.float64).to("cpu")  # noqa: E731
        law, device = self.law, self.device
        self._host_t = ts.pop()
        self.t = torch.tensor(self._host_t, dtype=torch.int64)
        self.pos = torch.tensor([positions.pop()], dtype=torch.int64)
        self.window = torch.stack([torch.stack([as_tensor(m._kl_window.values[i]) for m in self.members])
                                   for i in range(law.window)])  # [window, K]
        law._kind, law._device, law._last = TENSOR, None, {}
        law._vars = {name: torch.stack([as_tensor(m._vars[name]) for m in self.members])
                     for name in self.members[0]._vars}
        for name in self._gains:
            setattr(law, name, getattr(law, name).to("cpu"))
        self.device = torch.device("cpu")
        self.to(device)
