"""The one plugin registry: named implementations found through entry points.

Built-ins register the same way as third parties (``pyproject.toml``'s
``[project.entry-points."slipway.<kind>"]``): flavors, notification channels, ...
Each name is loaded once per process, on first use.
"""

from __future__ import annotations

import importlib.metadata
import threading
from typing import Generic, TypeVar

from slipway.errors import ValidationFailed

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, group: str, field: str) -> None:
        self.group = group
        self.field = field  # the request field that names a plugin, for error messages
        self._cache: dict[str, T] = {}
        self._lock = threading.Lock()

    def _entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        return {ep.name: ep for ep in importlib.metadata.entry_points(group=self.group)}

    def names(self) -> list[str]:
        return sorted(self._entry_points())

    def get(self, name: str) -> T:
        """The implementation registered under ``name``; one instance per process."""
        with self._lock:
            if name in self._cache:
                return self._cache[name]
            eps = self._entry_points()
            if name not in eps:
                known = ", ".join(sorted(eps)) or "none"
                raise ValidationFailed.field(
                    self.field, f"unknown {self.field} {name!r}; available: {known}"
                )
            instance: T = eps[name].load()()
            self._cache[name] = instance
            return instance
