"""Name -> frozen spec registries with unique names and helpful lookup errors."""

from __future__ import annotations

import difflib
from typing import Iterable, Protocol, TypeVar

from bench.errors import BenchError


class Named(Protocol):
    name: str


T = TypeVar("T", bound=Named)


class UnknownNameError(BenchError, KeyError):
    """A registry lookup failed; the message lists the closest valid names."""

    def __str__(self) -> str:  # KeyError quotes its argument; people want plain text
        return str(self.args[0])


def build(kind: str, items: Iterable[T]) -> dict[str, T]:
    """Build a registry dict, refusing duplicate names at import time."""
    registry: dict[str, T] = {}
    for item in items:
        if item.name in registry:
            raise ValueError(f"duplicate {kind} name {item.name!r} in the registry")
        registry[item.name] = item
    return registry


def lookup(kind: str, registry: dict[str, T], name: str, hint: str = "") -> T:
    """Return registry[name] or fail with the closest matches and how to list them all."""
    try:
        return registry[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(registry), n=5, cutoff=0.4)
        suggestion = f" Did you mean: {', '.join(close)}?" if close else ""
        listing = hint or f"`python -m bench list {kind}s` shows them all."
        raise UnknownNameError(f"unknown {kind} {name!r}.{suggestion} {listing}") from None
