"""A small name -> item registry, one per family (estimators, optimizers, tasks, strategies, suites).

Each item registers itself in its own file; the CLI, the benchmarks and the contract tests look items up by
name, so adding a method means adding one file.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from gradfree.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered item with the metadata the CLI lists."""

    name: str
    item: T
    summary: str
    tags: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Maps names to items of one family.

    Args:
        family: what the items are ("optimizer", "task" ...), used in error messages.
    """

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, *, summary: str, **tags: Any) -> Callable[[T], T]:
        """Decorator registering ``item`` under ``name``; a duplicate name is a programming error."""

        def add(item: T) -> T:
            if name in self._entries:
                raise KeyError(f"{self.family} {name!r} is registered twice")
            self._entries[name] = Entry(name, item, summary, dict(tags))
            return item

        return add

    def add(self, name: str, item: T, *, summary: str, **tags: Any) -> None:
        """Register ``item`` directly (for items that are not classes or functions, e.g. factories)."""
        self.register(name, summary=summary, **tags)(item)

    def entry(self, name: str) -> Entry[T]:
        """The entry for ``name``; an unknown name raises :class:`ConfigError` listing close matches."""
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._entries), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(
                f"unknown {self.family} {name!r}.{hint} Known: {', '.join(sorted(self._entries))}."
            ) from None

    def get(self, name: str) -> T:
        """The item registered under ``name``."""
        return self.entry(name).item

    def names(self, **tags: Any) -> list[str]:
        """Sorted names, optionally only those whose tags match all of ``tags``."""
        return sorted(
            n for n, e in self._entries.items() if all(e.tags.get(k) == v for k, v in tags.items())
        )

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)
