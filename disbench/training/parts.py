"""A group's members by model configuration, and what lets runs of several
models share one group.

Members of one *configuration* (the same ``model.config()``: one model class,
one set of its settings) share a loss: one vmapped call over their parameters.
Members of several configurations share a group when their forward pass is the
same computation — the same ``forward``/``encode``/``decode`` code, module
types, latent size, channels and likelihood, and the same parameters and
buffers outside their auxiliary optimizers: those parameters are stacked over
all K members and the forward runs once for the whole group. Each
configuration's auxiliary parameters (FactorVAE's discriminator) are stacked
over its own members only.
"""

from __future__ import annotations

import hashlib
import json

from torch import nn

from ..errors import DisbenchError


def configuration_key(model: nn.Module) -> str:
    """What members of one configuration share: the model's ``config()`` (its class included)."""
    return json.dumps({"class": type(model).__qualname__, **model.config()}, sort_keys=True, default=repr)


def configuration_spans(models: list[nn.Module]) -> list[tuple[int, int]]:
    """The [start, stop) member ranges of each configuration, in order; members of a
    configuration must be next to each other (see :func:`ordered_by_configuration`)."""
    spans, seen = [], set()
    for k, model in enumerate(models):
        key = configuration_key(model)
        if spans and key == configuration_key(models[spans[-1][0]]):
            spans[-1] = (spans[-1][0], k + 1)
            continue
        if key in seen:
            raise DisbenchError("the members of a group must be ordered by model configuration "
                                "(see disbench.training.parts.ordered_by_configuration)")
        seen.add(key)
        spans.append((k, k + 1))
    return spans


def ordered_by_configuration(models: list[nn.Module]) -> list[int]:
    """Member indices, each configuration's members together (in order of first
    appearance), and in their given order within one."""
    first: dict[str, int] = {}
    keys = [first.setdefault(configuration_key(m), len(first)) for m in models]
    return sorted(range(len(models)), key=lambda k: keys[k])


def auxiliary_prefixes(model: nn.Module) -> tuple[str, ...]:
    return tuple(spec["prefix"] for spec in model.auxiliary_parameters().values())


def is_auxiliary(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name.startswith(prefix) for prefix in prefixes)


def forward_signature(model: nn.Module) -> tuple:
    """What runs sharing one forward pass must have in common (see the module docstring),
    as plain values: code and module types by their qualified names."""
    cls, prefixes = type(model), auxiliary_prefixes(model)
    modules = [(n, m) for n, m in model.named_modules() if n and not is_auxiliary(n + ".", prefixes)]
    return (tuple(_qualified(getattr(cls, m, None)) for m in ("forward", "encode", "decode")),
            getattr(model, "latent_dim", None), getattr(model, "num_channels", None),
            getattr(model, "likelihood", None),
            tuple((n, _qualified(type(m))) for n, m in modules),
            tuple((n, tuple(t.shape), str(t.dtype)) for n, t in (*model.named_parameters(),
                                                                  *model.named_buffers())
                  if not is_auxiliary(n, prefixes)))


def forward_key(model: nn.Module) -> str:
    """A short name of :func:`forward_signature`: runs with equal keys may share a group."""
    return hashlib.sha1(repr(forward_signature(model)).encode()).hexdigest()[:16]


def _qualified(obj) -> str | None:
    return None if obj is None else f"{obj.__module__}.{obj.__qualname__}"


def check_shared_forward(models: list[nn.Module], names: list[str]) -> None:
    """Refuse runs whose forward passes differ (``names``: each member's model name)."""
    first = forward_signature(models[0])
    for model, name in zip(models[1:], names[1:]):
        if forward_signature(model) != first:
            raise DisbenchError(
                f"runs of {names[0]} and {name} cannot share a fused group: their forward passes differ "
                f"(code, architecture, latent size, channels or likelihood); fuse them separately")
