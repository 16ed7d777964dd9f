"""A thread-safe, indexed local cache of Kubernetes objects, kept as JSON bytes.

Contract:

- Objects go in and come out as plain ``dict`` values; at rest the store keeps
  each one as its compact JSON (``orjson``), about half the memory of the
  decoded dict and nothing for the cyclic garbage collector to scan. An object
  JSON cannot hold (a transform put a ``set`` in it) is kept as the dict itself.
- Reads decode. The 1,024 objects most recently stored (by :meth:`Store.put`
  and :meth:`Store.add`; an informer's writes are not kept decoded) or read are
  kept decoded too: reading such an object returns that very dict, reading it
  again the same dict while it stays among them; otherwise a read returns a new
  dict equal to what was stored. The store never mutates
  an object; readers MUST NOT mutate what they get either (treat objects as
  read-only; copy before changing one).
- Keys are ``namespace/name`` for namespaced objects and ``name`` for
  cluster-scoped ones (:func:`meta_namespace_key`).
- Every method is safe to call from any thread while another thread writes.
  Each call sees the store as it was at one instant; :meth:`Store.list` and
  :meth:`Store.keys` return new lists, never live views. Decoding happens
  outside the lock: a large :meth:`Store.list` does not hold up the informer.
- Indexers map an object to zero or more index values; :meth:`Store.by_index`
  finds objects by value. The ``namespace`` index is always present.
"""

from __future__ import annotations

import builtins
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from faro._names import KubeObject as KubeObject  # re-exported: faro.cache.store.KubeObject
from faro._names import key_of, object_key

IndexFunc = Callable[[KubeObject], Iterable[str]]
"""Returns the index values of an object (none, one or several)."""

NAMESPACE_INDEX = "namespace"

DECODED_CACHE_SIZE = 1024
"""How many objects a store also keeps decoded (the most recently stored or read)."""

Stored = bytes | KubeObject
"""An object as a store holds it: its compact JSON, or the dict when JSON cannot hold it."""


def meta_namespace_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name``, or ``name`` for a cluster-scoped object.

    Raises KeyError if the object has no ``metadata.name``.
    """
    return key_of(obj)


def encode(obj: KubeObject) -> Stored:
    """``obj`` as a store keeps it (compact JSON bytes, or ``obj`` itself).

    The JSON is copied out of what ``orjson.dumps`` returns: that object keeps orjson's
    whole output buffer (about 8 KiB for a 1 KB object with orjson 3.13), the copy only
    its bytes.
    """
    try:
        return memoryview(orjson.dumps(obj)).tobytes()
    except TypeError:
        return obj


def decode(stored: Stored) -> KubeObject:
    """The object a stored value holds (a new dict for bytes)."""
    if type(stored) is bytes:
        result: KubeObject = orjson.loads(stored)
        return result
    return stored  # type: ignore[return-value]


class Store:
    """Thread-safe keyed store of objects with indexes (see the module docstring)."""

    def __init__(self, indexers: Mapping[str, IndexFunc] | None = None) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, Stored] = {}
        # Decoded objects: key -> (the stored value it decodes, the object), oldest first.
        self._decoded: OrderedDict[str, tuple[Stored, KubeObject]] = OrderedDict()
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
        old, cached = self.put_encoded(key, obj, encode(obj))
        return cached if cached is not None or old is None else decode(old)

    def put_encoded(self, key: str, obj: KubeObject, stored: Stored, *,
                    keep_decoded: bool = True) -> tuple[Stored | None, KubeObject | None]:
        """:meth:`put` for a caller that already made ``obj``'s stored form (:func:`encode`),
        as an informer does: returns the stored value replaced (None if there was none) and,
        when it was still kept decoded, that object too (else None: :func:`decode` the
        stored value if needed). ``keep_decoded=False``: ``obj`` is not kept among the
        decoded objects (an informer's, so that the dicts of a burst die young; a read
        decodes and keeps it).
        """
        with self._lock:
            items = self._items
            old = items.get(key)
            items[key] = stored
            cached = self._decoded.pop(key, None)
            if keep_decoded:
                self._keep_decoded(key, stored, obj)
            if old is None:
                namespace, slash, _ = key.partition("/")
                if slash:
                    keys = self._by_namespace.get(namespace)
                    if keys is None:
                        self._by_namespace[namespace] = {key}
                    else:
                        keys.add(key)
            old_object = cached[1] if cached is not None and cached[0] is old else None
            if self._indexers:
                self._reindex(key, old, old_object, obj)
            return old, old_object

    def delete(self, obj: KubeObject) -> KubeObject | None:
        """Remove the object with ``obj``'s key; returns the removed one, or None."""
        return self.pop(meta_namespace_key(obj))

    def pop(self, key: str) -> KubeObject | None:
        """Remove ``key``; returns the removed object, or None if it was absent."""
        old, cached = self.pop_encoded(key)
        return cached if cached is not None or old is None else decode(old)

    def pop_encoded(self, key: str) -> tuple[Stored | None, KubeObject | None]:
        """:meth:`pop` without decoding: the stored value removed (None if absent) and,
        when it was still kept decoded, that object too."""
        with self._lock:
            old = self._items.pop(key, None)
            if old is None:
                return None, None
            namespace, slash, _ = key.partition("/")
            keys = self._by_namespace.get(namespace) if slash else None
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_namespace[namespace]
            cached = self._decoded.pop(key, None)
            old_object = cached[1] if cached is not None and cached[0] is old else None
            if self._indexers:
                self._reindex(key, old, old_object, None)
            return old, old_object

    def replace(self, items: Mapping[str, KubeObject]) -> None:
        """Replace the whole content with ``items`` (key to object), atomically."""
        encoded = {key: encode(obj) for key, obj in items.items()}
        with self._lock:
            self._items = encoded
            self._decoded = OrderedDict()
            by_namespace: dict[str, set[str]] = {}
            for key in encoded:
                namespace, slash, _ = key.partition("/")
                if slash:
                    by_namespace.setdefault(namespace, set()).add(key)
            self._by_namespace = by_namespace
            self._indices = {name: {} for name in self._indexers}
            if self._indexers:
                for key, obj in items.items():
                    self._reindex(key, None, None, obj)

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        """Add an index; existing objects are indexed at once.

        Raises ValueError if an index of that name exists.
        """
        with self._lock:
            if name in self._indexers or name == NAMESPACE_INDEX:
                raise ValueError(f"index {name!r} already exists")
            self._indexers[name] = func
            self._indices[name] = {}
            for key, stored in self._items.items():
                self._index_one(name, func, key, None, decode(stored))

    # ----------------------------------------------------------------- reads

    def get(self, key: str) -> KubeObject | None:
        """The object stored under ``key``, or None."""
        with self._lock:
            stored = self._items.get(key)
            if stored is None:
                return None
            cached = self._decoded.get(key)
            if cached is not None and cached[0] is stored:
                self._decoded.move_to_end(key)
                return cached[1]
        obj = decode(stored)
        with self._lock:
            if self._items.get(key) is stored:  # still current: keep it decoded
                self._decoded.pop(key, None)
                self._keep_decoded(key, stored, obj)
        return obj

    def get_by_name(self, name: str, namespace: str | None = None) -> KubeObject | None:
        """The object called ``name`` (in ``namespace`` if it is namespaced), or None."""
        return self.get(object_key(namespace, name))

    def get_encoded(self, key: str) -> Stored | None:
        """The stored value under ``key`` undecoded (compact JSON bytes, or a dict when JSON
        cannot hold the object), or None. Cheaper than :meth:`get` when bytes will do."""
        with self._lock:
            return self._items.get(key)

    def list(self) -> list[KubeObject]:
        """Every object, in no particular order."""
        with self._lock:
            stored = builtins.list(self._items.items())
            decoded = dict(self._decoded)
        return [_decoded_from(value, decoded.get(key)) for key, value in stored]

    def keys(self) -> builtins.list[str]:
        """Every key, in no particular order."""
        with self._lock:
            return builtins.list(self._items)

    def items(self) -> dict[str, KubeObject]:
        """A new dict of key to object: the whole store at one instant."""
        with self._lock:
            stored = builtins.list(self._items.items())
            decoded = dict(self._decoded)
        return {key: _decoded_from(value, decoded.get(key)) for key, value in stored}

    def by_index(self, index: str, value: str) -> builtins.list[KubeObject]:
        """Objects whose ``index`` values include ``value``.

        Raises KeyError naming the index if there is no such index.
        """
        with self._lock:
            keys = self._index(index).get(value, ())
            stored = [(key, self._items[key]) for key in keys]
            decoded = dict(self._decoded)
        return [_decoded_from(value, decoded.get(key)) for key, value in stored]

    def index_keys(self, index: str, value: str) -> builtins.list[str]:
        """Keys of the objects whose ``index`` values include ``value``."""
        with self._lock:
            return builtins.list(self._index(index).get(value, ()))

    def index_values(self, index: str) -> builtins.list[str]:
        """Every value of ``index`` that at least one object has."""
        with self._lock:
            return builtins.list(self._index(index))

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

    def _keep_decoded(self, key: str, stored: Stored, obj: KubeObject) -> None:
        """Keep ``obj`` (what ``stored`` decodes to) as the newest decoded object, dropping
        the oldest beyond :data:`DECODED_CACHE_SIZE` (lock held; ``key`` not among them)."""
        decoded = self._decoded
        if len(decoded) >= DECODED_CACHE_SIZE:
            decoded.popitem(last=False)
        decoded[key] = (stored, obj)

    def _reindex(self, key: str, old: Stored | None, old_object: KubeObject | None,
                 new: KubeObject | None) -> None:
        if old is not None and old_object is None:
            old_object = decode(old)
        for name, func in self._indexers.items():
            self._index_one(name, func, key, old_object, new)

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


def _decoded_from(stored: Stored, cached: tuple[Stored, KubeObject] | None) -> KubeObject:
    """The cached object when it decodes ``stored``, else a new decode."""
    if cached is not None and cached[0] is stored:
        return cached[1]
    return decode(stored)
