"""A thread-safe, indexed local cache of Kubernetes objects.

Contract:

- Objects are plain ``dict`` values decoded from the API server's JSON. The
  store never mutates an object it holds; a change *replaces* the dict. Readers
  therefore need no copies, and MUST NOT mutate what they get either (treat
  objects as read-only; copy before changing one).
- Keys are ``namespace/name`` for namespaced objects and ``name`` for
  cluster-scoped ones (:func:`meta_namespace_key`).
- Every method is safe to call from any thread while another thread writes.
  Each call sees the store as it was at one instant; :meth:`Store.list` and
  :meth:`Store.keys` return new lists, never live views.
- Indexers map an object to zero or more index values; :meth:`Store.by_index`
  finds objects by value. The ``namespace`` index is always present.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from faro._names import KubeObject as KubeObject  # re-exported: faro.cache.store.KubeObject
from faro._names import key_of, object_key

IndexFunc = Callable[[KubeObject], Iterable[str]]
"""Returns the index values of an object (none, one or several)."""

NAMESPACE_INDEX = "namespace"


def meta_namespace_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name``, or ``name`` for a cluster-scoped object.

    Raises KeyError if the object has no ``metadata.name``.
    """
    return key_of(obj)


class Store:
    """Thread-safe keyed store of objects with indexes (see the module docstring)."""

    def __init__(self, indexers: Mapping[str, IndexFunc] | None = None) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, KubeObject] = {}
        # The namespace index follows from the key alone, so it is kept apart and only
        # touched when a key comes or goes; other indexes are recomputed on every change.
        self._by_namespace: dict[str, set[str]] = {}
        self._indexers: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        for name, func in (indexers or {}).items():
            self.add_indexer(name, func)

    # ---------------------------------------------------------------- writes

    def add(self, obj: KubeObject) -> KubeObject | None:
        """Insert or replace ``obj`` under its key; returns the object it replaced."""
        return self.put(meta_namespace_key(obj), obj)

    update = add

    def put(self, key: str, obj: KubeObject) -> KubeObject | None:
        """Insert or replace ``obj`` under ``key``; returns the object it replaced."""
        with self._lock:
            items = self._items
            old = items.get(key)
            items[key] = obj
            if old is None:
                namespace, slash, _ = key.partition("/")
                if slash:
                    keys = self._by_namespace.get(namespace)
                    if keys is None:
                        self._by_namespace[namespace] = {key}
                    else:
                        keys.add(key)
            if self._indexers:
                self._reindex(key, old, obj)
            return old

    def delete(self, obj: KubeObject) -> KubeObject | None:
        """Remove the object with ``obj``'s key; returns the removed one, or None."""
        return self.pop(meta_namespace_key(obj))

    def pop(self, key: str) -> KubeObject | None:
        """Remove ``key``; returns the removed object, or None if it was absent."""
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                namespace, slash, _ = key.partition("/")
                keys = self._by_namespace.get(namespace) if slash else None
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._by_namespace[namespace]
                if self._indexers:
                    self._reindex(key, old, None)
            return old

    def replace(self, items: Mapping[str, KubeObject]) -> None:
        """Replace the whole content with ``items`` (key to object), atomically."""
        with self._lock:
            self._items = dict(items)
            by_namespace: dict[str, set[str]] = {}
            for key in self._items:
                namespace, slash, _ = key.partition("/")
                if slash:
                    by_namespace.setdefault(namespace, set()).add(key)
            self._by_namespace = by_namespace
            self._indices = {name: {} for name in self._indexers}
            if self._indexers:
                for key, obj in self._items.items():
                    self._reindex(key, None, obj)

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        """Add an index; existing objects are indexed at once.

        Raises ValueError if an index of that name exists.
        """
        with self._lock:
            if name in self._indexers or name == NAMESPACE_INDEX:
                raise ValueError(f"index {name!r} already exists")
            self._indexers[name] = func
            self._indices[name] = {}
            for key, obj in self._items.items():
                self._index_one(name, func, key, None, obj)

    # ----------------------------------------------------------------- reads

    def get(self, key: str) -> KubeObject | None:
        """The object stored under ``key``, or None."""
        with self._lock:
            return self._items.get(key)

    def get_by_name(self, name: str, namespace: str | None = None) -> KubeObject | None:
        """The object called ``name`` (in ``namespace`` if it is namespaced), or None."""
        return self.get(object_key(namespace, name))

    def list(self) -> list[KubeObject]:
        """Every object, in no particular order."""
        with self._lock:
            return list(self._items.values())

    def keys(self) -> builtins.list[str]:
        """Every key, in no particular order."""
        with self._lock:
            return list(self._items)

    def items(self) -> dict[str, KubeObject]:
        """A new dict of key to object: the whole store at one instant."""
        with self._lock:
            return dict(self._items)

    def by_index(self, index: str, value: str) -> builtins.list[KubeObject]:
        """Objects whose ``index`` values include ``value``.

        Raises KeyError naming the index if there is no such index.
        """
        with self._lock:
            keys = self._index(index).get(value, ())
            return [self._items[key] for key in keys]

    def index_keys(self, index: str, value: str) -> builtins.list[str]:
        """Keys of the objects whose ``index`` values include ``value``."""
        with self._lock:
            return list(self._index(index).get(value, ()))

    def index_values(self, index: str) -> builtins.list[str]:
        """Every value of ``index`` that at least one object has."""
        with self._lock:
            return list(self._index(index))

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    # -------------------------------------------------------------- internals

    def _index(self, name: str) -> dict[str, set[str]]:
        if name == NAMESPACE_INDEX:
            return self._by_namespace
        try:
            return self._indices[name]
        except KeyError:
            have = sorted([NAMESPACE_INDEX, *self._indices])
            raise KeyError(f"no index named {name!r}; have {have}") from None

    def _reindex(self, key: str, old: KubeObject | None, new: KubeObject | None) -> None:
        for name, func in self._indexers.items():
            self._index_one(name, func, key, old, new)

    def _index_one(self, name: str, func: IndexFunc, key: str,
                   old: KubeObject | None, new: KubeObject | None) -> None:
        old_values = tuple(func(old)) if old is not None else ()
        new_values = tuple(func(new)) if new is not None else ()
        if old_values == new_values:
            return
        index = self._indices[name]
        for value in old_values:
            keys = index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[value]
        for value in new_values:
            index.setdefault(value, set()).add(key)
