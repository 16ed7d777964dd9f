"""What a :class:`~faro.controller.Controller` hands to user code: matched events.

A :class:`MatchedEvent` is one change of one object that passed the
configuration's filters. Handlers (:class:`EventHandler`, or plain callables)
receive it on a worker thread; JSON middlewares (:class:`JSONMiddleware`) may
rewrite or drop it before any handler or export sees it. The delivery rules
(order, retries, one worker per object) are in docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import orjson

if TYPE_CHECKING:
    from faro.config import NormalizedConfig

__all__ = [
    "EventHandler",
    "EventType",
    "JSONMiddleware",
    "MatchedEvent",
]


class EventType(str, Enum):
    """The kind of change; compares equal to its name (``event.event_type == "ADDED"``)."""

    ADDED = "ADDED"
    """The object was created, or existed when its informer listed it (``is_initial``)."""
    UPDATED = "UPDATED"
    """The object changed; ``old_object`` has its state before."""
    DELETED = "DELETED"
    """The object was deleted; ``object`` has its last known state."""

    def __str__(self) -> str:
        return self.value


_EMPTY: Mapping[str, str] = {}


@dataclass(frozen=True, slots=True)
class MatchedEvent:
    """One change of one object, as every handler receives it.

    ``object`` is the object after the change (for DELETED, its last known
    state, uid, labels and annotations included); ``old_object`` the state
    before an UPDATED (None otherwise). Both are shared with faro's cache and
    with the other handlers: read them, never modify them (copy first).
    ``gvr`` is the resource as configuration writes it (``apps/v1/deployments``),
    ``key`` the object's ``namespace/name`` (``name`` when cluster-scoped),
    ``config`` the configuration entry that matched, and ``timestamp`` when faro
    observed the change (UTC). ``is_initial`` marks the ADDED events of objects
    that existed before their informer started; ``final_state_unknown`` marks a
    DELETED that faro inferred (the object was gone when the informer listed
    again, or its informer stopped because its CRD or namespace went away), so
    ``object`` may be older than the object's final state.
    """

    event_type: EventType
    """ADDED, UPDATED or DELETED."""
    object: Mapping[str, Any]
    """The object as the change left it (DELETED: its last known state); shared, read-only."""
    gvr: str
    """The resource as configuration writes it (``apps/v1/deployments``)."""
    key: str
    """The object's ``namespace/name`` (``name`` when cluster-scoped)."""
    config: NormalizedConfig
    """The configuration entry that matched."""
    timestamp: datetime
    """When faro observed the change (UTC)."""
    old_object: Mapping[str, Any] | None = None
    """UPDATED: the object's state before the change (None otherwise); shared, read-only."""
    is_initial: bool = False
    """An ADDED of an object that existed before its informer started."""
    final_state_unknown: bool = False
    """The change was inferred, not watched (a relist found the object gone or changed):
    ``object`` may be older than the object's final state."""

    @property
    def _metadata(self) -> Mapping[str, Any]:
        metadata = self.object.get("metadata")
        return metadata if isinstance(metadata, Mapping) else _EMPTY

    @property
    def name(self) -> str:
        """``metadata.name``."""
        return str(self._metadata.get("name") or "")

    @property
    def namespace(self) -> str:
        """``metadata.namespace`` ("" for cluster-scoped objects)."""
        return str(self._metadata.get("namespace") or "")

    @property
    def uid(self) -> str:
        """``metadata.uid``."""
        return str(self._metadata.get("uid") or "")

    @property
    def resource_version(self) -> str:
        """``metadata.resourceVersion`` of ``object``."""
        return str(self._metadata.get("resourceVersion") or "")

    @property
    def labels(self) -> Mapping[str, str]:
        """``metadata.labels`` (empty when the object has none)."""
        labels = self._metadata.get("labels")
        return labels if isinstance(labels, Mapping) else _EMPTY

    @property
    def annotations(self) -> Mapping[str, str]:
        """``metadata.annotations`` (empty when the object has none)."""
        annotations = self._metadata.get("annotations")
        return annotations if isinstance(annotations, Mapping) else _EMPTY


class _StoredEvent(MatchedEvent):
    """A :class:`MatchedEvent` whose ``object`` and ``old_object`` are decoded from the
    informer store's JSON on first read (once; the event then keeps the dicts).

    Events waiting for delivery then hold compact bytes, not dict trees: a quarter of the
    memory, and nothing for the cyclic garbage collector to scan again and again during
    a burst. ``old`` or ``obj`` may also be given decoded (a dict), or ``old`` None.
    Reads happen on one worker at a time (delivery's rule), so the cache needs no lock.
    """

    __slots__ = ("_meta", "_obj", "_obj_json", "_old", "_old_json")
    _meta: Mapping[str, Any]
    _obj: Mapping[str, Any] | None
    _obj_json: bytes | None
    _old: Mapping[str, Any] | None
    _old_json: bytes | None

    @classmethod
    def of(cls, event_type: EventType, obj_json: bytes, metadata: Mapping[str, Any], gvr: str,
           key: str, config: NormalizedConfig, timestamp: datetime, old: Any = None,
           is_initial: bool = False, final_state_unknown: bool = False) -> _StoredEvent:
        """The event of the object whose JSON is ``obj_json`` and whose ``metadata`` (kept
        decoded: name, uid, labels and the rest are read without decoding the body)."""
        event = cls.__new__(cls)
        set_ = object.__setattr__
        set_(event, "event_type", event_type)
        set_(event, "gvr", gvr)
        set_(event, "key", key)
        set_(event, "config", config)
        set_(event, "timestamp", timestamp)
        set_(event, "is_initial", is_initial)
        set_(event, "final_state_unknown", final_state_unknown)
        set_(event, "_meta", metadata)
        set_(event, "_obj", None)
        set_(event, "_obj_json", obj_json)
        if type(old) is bytes:
            set_(event, "_old", None)
            set_(event, "_old_json", old)
        else:
            set_(event, "_old", old)
            set_(event, "_old_json", None)
        return event

    def __repr__(self) -> str:
        return "MatchedEvent" + MatchedEvent.__repr__(self).removeprefix("_StoredEvent")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MatchedEvent):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _FIELDS)

    __hash__ = MatchedEvent.__hash__

    @property
    def object(self) -> Mapping[str, Any]:
        obj = self._obj
        if obj is None:
            obj = _decode(self._obj_json)
            object.__setattr__(self, "_obj", obj)
            object.__setattr__(self, "_obj_json", None)
        return obj

    @object.setter
    def object(self, value: Mapping[str, Any]) -> None:  # the dataclass __init__ (replace())
        object.__setattr__(self, "_obj", value)
        object.__setattr__(self, "_obj_json", None)
        metadata = value.get("metadata") if isinstance(value, Mapping) else None
        object.__setattr__(self, "_meta", metadata if isinstance(metadata, Mapping) else _EMPTY)

    @property
    def _metadata(self) -> Mapping[str, Any]:
        return self._meta

    @property
    def old_object(self) -> Mapping[str, Any] | None:
        old = self._old
        if old is None and self._old_json is not None:
            old = _decode(self._old_json)
            object.__setattr__(self, "_old", old)
            object.__setattr__(self, "_old_json", None)
        return old

    @old_object.setter
    def old_object(self, value: Mapping[str, Any] | None) -> None:
        object.__setattr__(self, "_old", value)
        object.__setattr__(self, "_old_json", None)


_FIELDS = tuple(field.name for field in fields(MatchedEvent))


def _decode(data: bytes | None) -> Mapping[str, Any]:
    result: Mapping[str, Any] = orjson.loads(data) if data is not None else {}
    return result


@runtime_checkable
class EventHandler(Protocol):
    """Receives matched events: ``on_matched(event)``.

    Called on a worker thread, never for two events of one object at once, and
    for each object in the order the changes happened. Raising an exception
    means "not handled": the event is offered again after a backoff, to this
    handler only, up to the controller's ``max_retries``; later events of the
    same object wait meanwhile. A plain callable ``fn(event)`` works too.
    """

    def on_matched(self, event: MatchedEvent) -> None:
        """Handle one event, on a worker thread; raise to have it offered again later."""


@runtime_checkable
class JSONMiddleware(Protocol):
    """Rewrites or drops events before handlers and the JSON export see them.

    ``process_before_json(event)`` returns ``(obj, keep)``: ``obj`` replaces
    the event's object (return ``event.object`` to keep it; never modify it in
    place), and ``keep=False`` drops the event for every handler and for the
    export. Middlewares run in the order they were added, once per event, on a
    worker thread; one that raises is retried like a handler. A plain callable
    ``fn(event) -> (obj, keep)`` works too.
    """

    def process_before_json(self, event: MatchedEvent) -> tuple[Mapping[str, Any], bool]:
        """Return ``(obj, keep)``: ``obj`` replaces the event's object, ``keep=False`` drops it."""


HandlerFunc = Callable[[MatchedEvent], object]
MiddlewareFunc = Callable[[MatchedEvent], tuple[Mapping[str, Any], bool]]
