"""Plugin discovery and loading.

The harness's own baselines are a plugin like any other; third-party plugins
are found through the ``disbench`` entry-point group. A plugin that fails to
import or to register is recorded with its error and left out; the harness
keeps working. ``DISBENCH_DISABLE_PLUGINS=name1,name2`` skips named plugins.

A plugin whose ``@hookimpl`` names no disbench hook (a misspelt
``register_scheduler``, say) fails to load with an error naming the closest
hook; mark a deliberately extra hook ``@hookimpl(optionalhook=True)``.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

import disbench.hookspecs as hookspecs  # the module: pluggy reads the hook specifications from it
from .registry import Registry, get_registry  # noqa: F401  (get_registry: plugins and scripts import it from here)
from .version import __version__

ENTRY_POINT_GROUP = "disbench"
DISABLE_ENV = "DISBENCH_DISABLE_PLUGINS"
BUILTIN_PLUGINS = {"disbench.baselines": "disbench.baselines", "disbench.datasets": "disbench.datasets.plugin",
                   "disbench.standard_metrics": "disbench.standard_metrics.plugin",
                   "disbench.loggers": "disbench.loggers.plugin"}

# registry kind -> the hook that fills it
REGISTRY_HOOKS = {
    "models": "register_models",
    "architectures": "register_architectures",
    "schedulers": "register_schedulers",
    "setpoints": "register_setpoints",
    "metrics": "register_metrics",
    "datasets": "register_datasets",
    "loggers": "register_loggers",
}
_SINGULAR = {"models": "model", "architectures": "architecture", "schedulers": "scheduler", "setpoints": "set point",
             "metrics": "metric", "datasets": "dataset", "loggers": "logger"}


@dataclass
class PluginInfo:
    name: str
    version: str | None = None
    module: str | None = None
    error: str | None = None
    disabled: bool = False
    contributes: dict[str, list[str]] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"name": self.name, "version": self.version, "error": self.error,
                "disabled": self.disabled, "module": self.module, "contributes": self.contributes}


class PluginHost:
    """Loads plugins once and holds the registries they filled."""

    def __init__(self, *, entry_points: bool = True, extra_plugins: dict[str, Any] | None = None):
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.registries = {kind: Registry(_SINGULAR[kind]) for kind in REGISTRY_HOOKS}
        self.plugins: dict[str, PluginInfo] = {}
        self.commands_registered = False  # set once register_commands has run (the CLI's parser)
        disabled = disabled_plugin_names()

        candidates: list[tuple[PluginInfo, Any]] = []
        for name, module_name in BUILTIN_PLUGINS.items():
            candidates.append((PluginInfo(name, __version__, module_name), lambda m=module_name: importlib.import_module(m)))
        if entry_points:
            for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
                version = getattr(ep.dist, "version", None) if getattr(ep, "dist", None) else None
                candidates.append((PluginInfo(ep.name, version, ep.value), ep.load))
        for name, obj in (extra_plugins or {}).items():
            candidates.append((PluginInfo(name, None, getattr(obj, "__name__", repr(obj))), lambda o=obj: o))

        for info, load in candidates:
            if info.name in self.plugins:
                info.error = f"a plugin named {info.name!r} is already loaded (from {self.plugins[info.name].module})"
                self.plugins[info.name + " (duplicate)"] = info
                continue
            self.plugins[info.name] = info
            if info.name in disabled:
                info.disabled = True
                continue
            try:
                plugin = load()
                self.pm.register(plugin, name=info.name)
            except Exception as exc:  # a broken plugin must not break the harness
                info.error = _describe(exc)
                continue
            unknown = self._unknown_hooks(plugin)
            if unknown:
                self.pm.unregister(plugin)
                info.error = _unknown_hooks_message(unknown, self._hook_names())
                continue
            self._register_contributions(info)

        note = self._not_loaded_note()
        for registry in self.registries.values():
            registry.note = note

    def _hook_names(self) -> list[str]:
        return sorted(name for name, caller in vars(self.pm.hook).items()
                      if isinstance(caller, pluggy.HookCaller) and caller.has_spec())

    def _unknown_hooks(self, plugin: Any) -> list[str]:
        """The hooks ``plugin`` implements that disbench does not define
        (pluggy's ``check_pending``, for one plugin); ``optionalhook`` ones are allowed."""
        unknown = []
        for caller in self.pm.get_hookcallers(plugin) or []:
            if caller.has_spec():
                continue
            if any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls()):
                unknown.append(caller.name)
        return sorted(unknown)

    def _not_loaded_note(self) -> str | None:
        """What unknown-name errors add: the plugins that failed to load or are
        disabled, since the name asked for may be one of theirs."""
        parts = []
        for info in self.plugins.values():
            if info.disabled:
                parts.append(f"plugin {info.name!r} is disabled (${DISABLE_ENV})")
            elif info.error:
                parts.append(f"plugin {info.name!r} failed to load ({_shorten(info.error)})")
        if not parts:
            return None
        return ", ".join(parts) + ("; the name may come from it" if len(parts) == 1
                                   else "; the name may come from one of them")

    def _register_contributions(self, info: PluginInfo) -> None:
        """Run one plugin's registration hooks; on failure undo all it added."""
        try:
            for kind, hook_name in REGISTRY_HOOKS.items():
                registry = self.registries[kind]
                for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                    if impl.plugin_name != info.name:
                        continue
                    registry.current_source = info.name
                    try:
                        impl.function(registry=registry)
                    finally:
                        registry.current_source = "<direct>"
        except Exception as exc:
            for registry in self.registries.values():
                registry.remove_source(info.name)
            self.pm.unregister(name=info.name)
            info.error = _describe(exc)
            return
        info.contributes = {kind: reg.names(source=info.name) for kind, reg in self.registries.items()
                            if reg.names(source=info.name)}

    def registry(self, kind: str) -> Registry:
        return self.registries[kind]

    def register_commands(self, subparsers) -> None:
        """Let each loaded plugin add CLI sub-commands; a failing one is reported.

        The sub-commands each plugin added (found by comparing
        ``subparsers.choices`` before and after its hook) are listed in its
        ``contributes["commands"]``.
        """
        for impl in self.pm.hook.register_commands.get_hookimpls():
            info = self.plugins[impl.plugin_name]
            before = set(subparsers.choices)
            try:
                impl.function(subparsers=subparsers)
            except Exception as exc:
                info.error = f"register_commands: {_describe(exc)}"
            added = [name for name in subparsers.choices if name not in before]
            if added:
                info.contributes["commands"] = added
            else:
                info.contributes.pop("commands", None)
        self.commands_registered = True

    def as_json(self) -> dict:
        out: dict[str, Any] = {"plugins": [p.as_json() for p in self.plugins.values()]}
        out.update({kind: reg.names() for kind, reg in self.registries.items()})
        return out


def disabled_plugin_names() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def _unknown_hooks_message(unknown: list[str], known: list[str]) -> str:
    described = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        described.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (f"unknown hook{'s' if len(unknown) > 1 else ''} {', '.join(described)}: "
            f"disbench's hooks are {', '.join(known)} (mark an extra hook @hookimpl(optionalhook=True))")


def _shorten(error: str, limit: int = 100) -> str:
    """A plugin's load error for a one-line message: first line, no file:line, at most ``limit`` characters."""
    text = re.sub(r" \([^()]*:\d+\)$", "", error.splitlines()[0] if error else "")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, loaded on first use."""
    global _HOST
    if _HOST is None:
        _HOST = PluginHost()
    return _HOST


def set_host(host: PluginHost | None) -> None:
    """Replace the process-wide host (tests use this to load test plugins)."""
    global _HOST
    _HOST = host
