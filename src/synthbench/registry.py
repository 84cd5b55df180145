"""The one registry shape: named components (backbones, wheel readers, generation strategies) looked up by the
name params use, with a one-line "did you mean" error for a name that is not there."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from synthbench.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """``kind`` names what is registered (for messages), ``fix`` says where the name comes from."""

    def __init__(self, kind: str, fix: str, entries: dict[str, T] | None = None) -> None:
        self.kind, self.fix = kind, fix
        self._entries: dict[str, T] = dict(entries or {})

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@registry.register("name")`` adds the decorated object under ``name``."""

        def add(entry: T) -> T:
            self._entries[name] = entry
            return entry

        return add

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __getitem__(self, name: str) -> T:
        if name in self._entries:
            return self._entries[name]
        raise ConfigError(self.unknown(name))

    def unknown(self, name: str) -> str:
        """The one-line message for a name that is not registered."""
        close = difflib.get_close_matches(name, list(self._entries), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown {self.kind} {name!r}{hint}; known: {', '.join(self)}; {self.fix}"
