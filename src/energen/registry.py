"""A typed name -> object registry used for every user-visible choice (methods, models, data, samplers).

Unknown names raise :class:`~energen.errors.ConfigError` listing the valid ones, so the CLI can use
``registry.names()`` for ``choices=`` and library users get the same message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._patterns: list[tuple[re.Pattern, Callable[[re.Match], T], str]] = []

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = obj

    def add_pattern(self, pattern: str, make: Callable[[re.Match], T], example: str) -> None:
        """Names matching the regular expression ``pattern`` (whole name) give ``make(match)``: a family of
        items with parameters in the name (``example`` shows one, in the error listing valid names)."""
        self._patterns.append((re.compile(pattern), make, example))

    def get(self, name: str) -> T:
        if name in self._items:
            return self._items[name]
        for pattern, make, _ in self._patterns:
            if m := pattern.fullmatch(name):
                return make(m)
        more = "".join(f", or a name like {example}" for _, _, example in self._patterns)
        raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}{more}")

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items or any(p.fullmatch(name) for p, _, _ in self._patterns)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
