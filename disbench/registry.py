"""Name -> object registries that plugins fill through their hooks, and the one
way the rest of the harness reaches them: :func:`get_registry` (and
:func:`plugin_host`, for what the plugins themselves are), which load the
plugins the first time any registry is asked for."""

from __future__ import annotations

import difflib
import re
from typing import Any, Iterator

from .errors import DuplicateNameError, InvalidNameError, UnknownNameError

MAX_NAME_LENGTH = 64
# Names become parts of paths (runs/MODEL/seed1, compare folders), so they are
# restricted to characters that are safe in a folder name on every system.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
NAME_RULE = (f"letters, digits, '_', '.' and '-', starting with a letter or digit, no '..', "
             f"at most {MAX_NAME_LENGTH} characters")


def check_name(kind: str, name: object) -> None:
    """Raise :class:`InvalidNameError` unless ``name`` may be registered."""
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"{kind} names must be non-empty strings, got {name!r}")
    if len(name) > MAX_NAME_LENGTH or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise InvalidNameError(f"{kind} name {name!r} is not allowed: names become folder names, "
                               f"so use {NAME_RULE}")


class Registry:
    """A mapping from names to objects of one kind (models, metrics, ...).

    Each entry remembers the plugin that added it, so a duplicate name can name
    both plugins and ``disbench plugins`` can say who contributes what.
    ``note``, when set (the plugin host sets it when a plugin failed to load or
    is disabled), is appended to unknown-name errors: the name may come from
    a plugin that is not loaded.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._sources: dict[str, str] = {}
        self.current_source = "<direct>"
        self.note: str | None = None

    def add(self, name: str, obj: Any, *, source: str | None = None) -> Any:
        check_name(self.kind, name)
        source = source or self.current_source
        if name in self._entries:
            raise DuplicateNameError(
                f"{self.kind} {name!r} is registered twice: by {self._sources[name]!r} "
                f"and by {source!r}"
            )
        self._entries[name] = obj
        self._sources[name] = source
        return obj

    def add_all(self, entries: dict[str, Any], *, source: str | None = None) -> None:
        """Add every ``name: obj`` of a mapping (a plugin's table of models, say)."""
        for name, obj in entries.items():
            self.add(name, obj, source=source)

    def register(self, name: str):
        """Decorator form of :meth:`add`."""
        return lambda obj: self.add(name, obj)

    def get(self, name: str) -> Any:
        if isinstance(name, str) and name in self._entries:
            return self._entries[name]
        raise UnknownNameError(self.unknown_message(name))

    def unknown_message(self, name: str) -> str:
        known = sorted(self._entries)
        msg = f"unknown {self.kind} {name!r}; known: {', '.join(known) or '(none)'}"
        close = difflib.get_close_matches(str(name), known, n=1)
        if close:
            msg += f" (did you mean {close[0]!r}?)"
        if self.note:
            msg += f"; {self.note}"
        return msg

    def source(self, name: str) -> str:
        self.get(name)
        return self._sources[name]

    def names(self, source: str | None = None) -> list[str]:
        return sorted(n for n in self._entries if source is None or self._sources[n] == source)

    def remove_source(self, source: str) -> None:
        """Drop everything one plugin added (used when its registration fails)."""
        for name in [n for n, s in self._sources.items() if s == source]:
            del self._entries[name], self._sources[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def plugin_host():
    """The process-wide :class:`disbench.plugins.PluginHost`, its plugins loaded on first use."""
    from .plugins import get_host  # upward import: loads the plugins, whose hooks fill the registries

    return get_host()


def get_registry(kind: str) -> Registry:
    """The registry of ``kind`` (``'models'``, ``'metrics'``, ...), filled by the loaded plugins."""
    return plugin_host().registry(kind)
