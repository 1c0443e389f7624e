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

import math
import numbers
from typing import Any, Callable

import torch

from disbench.components import has_method, resolve_component

from .arg_checks import integer
from .kl_window import KLMovingAverage

UNSTARTED, FLOAT, TENSOR = "unstarted", "float", "tensor"
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


class _TensorMath:
    @staticmethod
    def sigmoid_neg(e: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(-e)

    where = staticmethod(torch.where)

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

    def __init__(self, *, window: int, setpoint, default_setpoint: Callable[[], Any]):
        owner = type(self).__name__
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

    # -- one training step ---------------------------------------------------
    def step(self, kl):
        """Observe this step's KL and return this step's β (docs/controllers.md)."""
        if isinstance(kl, torch.Tensor):
            ops, y_in = _TensorMath, self._tensor_input(kl)
        else:
            ops, y_in = _FloatMath, self._float_input(kl)
        c = self.setpoint.value(self.t + 1)
        self.t += 1
        self._kl_window.push(y_in)
        y = self._kl_window.mean()
        e = c - y
        beta = self._control(e, ops)
        self._last = {"setpoint": c, "kl_avg": y, "error": e, "beta_unclamped": beta}
        beta = ops.clamp_min(beta, self.beta_min)
        return beta.to(kl.dtype) if ops is _TensorMath else beta

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
        return out

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
