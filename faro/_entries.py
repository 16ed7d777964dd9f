"""The entries a controller watches: configured, added at runtime, and staged to be added.

Contract: :class:`Entries` holds each watched :class:`~faro.config.NormalizedConfig` with
whether it was added at runtime (``add_resources``) rather than configured, plus the
entries staged by ``add_resources`` until ``start_informers`` commits them. Adding or
removing items given as :class:`~faro.config.ResourceConfig` or resource-centric mappings
is all or nothing: an invalid item, one duplicating a watched or staged entry, or (for
removal) one matching no entry raises :class:`~faro.config.ConfigError` naming it, and
nothing changes. Not thread-safe: the controller holds its lock around every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from faro.config import ConfigError, NormalizedConfig, ResourceConfig

Items = Iterable[ResourceConfig | Mapping[str, Any]]
"""What ``add_resources`` and ``remove_resources`` take."""


class Entries:
    """The watched entries (configured ones first) and the staged ones; see the module."""

    def __init__(self, configured: Iterable[NormalizedConfig]) -> None:
        self._watched: dict[NormalizedConfig, bool] = dict.fromkeys(configured, False)
        self._staged: dict[NormalizedConfig, bool] = {}

    @property
    def watched(self) -> Mapping[NormalizedConfig, bool]:
        """Each watched entry, True when it was added at runtime (in the order added)."""
        return self._watched

    def stage(self, items: Items) -> None:
        """Stage ``items`` to be watched once :meth:`commit` is called."""
        staged: dict[NormalizedConfig, bool] = {}
        for path, normalized in _normalized(items, "add_resources"):
            clash = _find(normalized, (self._watched, self._staged, staged))
            if clash is not None:
                raise ConfigError("add_resources", path, f"duplicates {clash.source}")
            staged[normalized] = True
        self._staged.update(staged)

    def commit(self) -> list[NormalizedConfig]:
        """Watch the staged entries; returns them."""
        staged, self._staged = self._staged, {}
        self._watched.update(staged)
        return list(staged)

    def discard(self, entries: Iterable[NormalizedConfig]) -> None:
        """Stop watching ``entries`` (exactly these; unknown ones are ignored)."""
        for entry in entries:
            self._watched.pop(entry, None)
            self._staged.pop(entry, None)

    def remove(self, items: Items) -> None:
        """Stop watching the entries ``items`` name, watched or staged."""
        found: list[NormalizedConfig] = []
        for path, normalized in _normalized(items, "remove_resources"):
            entry = _find(normalized, (self._watched, self._staged))
            if entry is None:
                raise ConfigError("remove_resources", path, "matches no watched resource")
            found.append(entry)
        self.discard(found)


def _normalized(items: Items, source: str) -> Iterator[tuple[str, NormalizedConfig]]:
    """Each item's normalized entries with the item's path (``source[i]``); raises ConfigError."""
    for index, item in enumerate(items):
        path = f"{source}[{index}]"
        resource = item if isinstance(item, ResourceConfig) else \
            ResourceConfig.from_dict(item, path=path, source=source)
        for normalized in resource.normalize(path=path, source=source):
            yield path, normalized


def _find(normalized: NormalizedConfig,
          pools: Iterable[Mapping[NormalizedConfig, bool]]) -> NormalizedConfig | None:
    """The entry equal to ``normalized`` in the first pool holding one (it has its source)."""
    for pool in pools:
        for existing in pool:
            if existing == normalized:
                return existing
    return None
