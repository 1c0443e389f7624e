"""Name -> object registries that plugins fill through their hooks."""

from __future__ import annotations

import difflib
from typing import Any, Iterator

from .errors import DuplicateNameError, UnknownNameError


class Registry:
    """A mapping from names to objects of one kind (models, metrics, ...).

    Each entry remembers the plugin that added it, so a duplicate name can name
    both plugins and ``disbench plugins`` can say who contributes what.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._sources: dict[str, str] = {}
        self.current_source = "<direct>"

    def add(self, name: str, obj: Any, *, source: str | None = None) -> Any:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} names must be non-empty strings, got {name!r}")
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
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        known = sorted(self._entries)
        msg = f"unknown {self.kind} {name!r}; known: {', '.join(known) or '(none)'}"
        close = difflib.get_close_matches(str(name), known, n=1)
        if close:
            msg += f" (did you mean {close[0]!r}?)"
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
