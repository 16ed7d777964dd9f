"""Event handlers: what an informer calls for each change it observes.

Handlers are called on the informer's own thread, one change at a time, in
the order the informer observed them; a handler is expected to be cheap
(typically it puts a key on a work queue) because the next change waits for
it. An exception from a handler is logged and counted; the informer goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from faro._names import KubeObject as KubeObject  # re-exported: faro.cache.handlers.KubeObject


@runtime_checkable
class ResourceEventHandler(Protocol):
    """The three notifications of client-go's ResourceEventHandler.

    - ``on_add(obj, is_initial)``: an object appeared; ``is_initial`` is True
      for the objects of the informer's first list (and of the replay a handler
      added after that list receives).
    - ``on_update(old, new)``: an object changed; both versions are given.
    - ``on_delete(obj, final_state_unknown)``: an object went away. With
      ``final_state_unknown=False`` ``obj`` is its final state from the delete
      event; with True the deletion was inferred from a relist and ``obj`` is
      the last state the informer knew.

    Objects are shared with the informer's store and other handlers: never mutate them.

    A handler object may also define ``on_update_stored(old, new)``; the informer then
    calls it instead of ``on_update``, with ``old`` as the store had it: its compact JSON
    ``bytes``, or a dict (the store kept it decoded after a read, or JSON cannot hold it);
    :func:`faro.cache.store.decode` takes either, so decode only if needed. Decoding the
    old version is most of an update's cost when nothing reads it.

    A handler object may define ``flush()`` too: the informer calls it (on its thread,
    under its lock) at the end of each batch of notifications, that is after each read of
    the watch stream (up to 1 MiB of events) and each list page, and after the replay of
    a handler added late. A handler may gather the changes of a batch and hand them on
    together there, taking its locks once per batch instead of once per change.
    """

    def on_add(self, obj: KubeObject, is_initial: bool) -> None: ...

    def on_update(self, old: KubeObject, new: KubeObject) -> None: ...

    def on_delete(self, obj: KubeObject, final_state_unknown: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class ResourceEventHandlerFuncs:
    """A handler made of plain functions; any of them may be None (that notification is ignored)."""

    add: Callable[[KubeObject, bool], object] | None = None
    update: Callable[[KubeObject, KubeObject], object] | None = None
    delete: Callable[[KubeObject, bool], object] | None = None

    def on_add(self, obj: KubeObject, is_initial: bool) -> None:
        if self.add is not None:
            self.add(obj, is_initial)

    def on_update(self, old: KubeObject, new: KubeObject) -> None:
        if self.update is not None:
            self.update(old, new)

    def on_delete(self, obj: KubeObject, final_state_unknown: bool) -> None:
        if self.delete is not None:
            self.delete(obj, final_state_unknown)
