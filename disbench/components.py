"""One resolver for pluggable parts given by gin or in code.

A model's β scheduler and a controller's set point can each be given as:

* ``None`` — the owner's default,
* a registered name (``'pi'``, ``'hybrid'``) — looked up in the plugin registry,
* a class (gin's ``@PIBetaScheduler``) — instantiated with no arguments, so its
  own gin bindings apply,
* an instance (gin's ``@PIBetaScheduler()``, or an object built in code),
* a zero-argument factory (a function or ``functools.partial``).

A class is checked before "is it an instance": a scheduler class has a
``step`` attribute too, and returning it uninstantiated fails at step 1.
"""

from __future__ import annotations

from typing import Any, Callable

from .registry import get_registry


def resolve_component(value: Any, *, kind: str, default: Callable[[], Any],
                      is_instance: Callable[[Any], bool], owner: str) -> Any:
    """Turn ``value`` (see the module docstring) into an instance of ``kind``.

    ``kind`` is a registry kind (``'schedulers'``, ``'setpoints'``); ``owner``
    names the argument in errors (``'DynamicVAE.scheduler'``).
    """
    if value is None:
        resolved = default()
    elif isinstance(value, str):  # the plugins load only when a name is used
        resolved = get_registry(kind).get(value)()
    elif isinstance(value, type):
        resolved = value()
    elif is_instance(value):
        resolved = value
    elif callable(value):
        resolved = value()
    else:
        resolved = value
    if isinstance(resolved, type) or not is_instance(resolved):
        singular = kind[:-1].replace("setpoint", "set point")
        raise ValueError(f"{owner} must be a {singular}, a class or factory of one, or a registered "
                         f"{singular} name; got {value!r}")
    return resolved


def has_method(name: str) -> Callable[[Any], bool]:
    """``is_instance`` test: the object has a callable ``name`` attribute."""
    return lambda obj: callable(getattr(obj, name, None))
