"""The hook a work queue reports to, for Prometheus or any other metrics backend.

A queue created with ``metrics=`` calls a :class:`QueueMetrics` object as work moves
through it, and hands it the queue itself (as :class:`QueueGauges`) so gauges can be read
when scraped. A queue created without metrics does no bookkeeping for them at all.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol, TypeVar

T_contra = TypeVar("T_contra", bound=Hashable, contravariant=True)


class QueueGauges(Protocol):
    """What a queue exposes for gauges; read it at scrape time (there is no update loop).

    ``len(queue)`` is the depth: items queued and not yet handed out. The two methods
    below are computed from when each item being processed was handed out, using the
    queue's clock, and are ``0.0`` for a queue created without metrics.
    """

    def __len__(self) -> int: ...

    def unfinished_work_seconds(self) -> float:
        """Sum over the items being processed of how long each has been processed."""
        ...

    def longest_running_processor_seconds(self) -> float:
        """How long the longest-running item being processed has been processed."""
        ...


class QueueMetrics(Protocol[T_contra]):
    """Receives a queue's events; one object per queue.

    Every method except :meth:`retry` is called with the queue's lock held, so
    implementations must be quick and must not call back into the queue (reading
    gauges from another thread, e.g. a scrape, is fine).
    """

    def bind(self, name: str, gauges: QueueGauges) -> None:
        """Called once by the queue's constructor with its name and the queue itself.

        The queue is not fully constructed yet: keep the reference, read it later.
        """
        ...

    def add(self, item: T_contra) -> None:
        """``item`` was accepted: it was not already waiting to be handed out."""
        ...

    def get(self, item: T_contra, queued_seconds: float) -> None:
        """``item`` was handed out after waiting ``queued_seconds`` since its add."""
        ...

    def done(self, item: T_contra, processing_seconds: float) -> None:
        """``item`` was marked done ``processing_seconds`` after it was handed out."""
        ...

    def retry(self) -> None:
        """An item was re-added through ``add_rate_limited``."""
        ...


class NoopQueueMetrics:
    """A :class:`QueueMetrics` that ignores everything (a base for partial implementations)."""

    __slots__ = ()

    def bind(self, name: str, gauges: QueueGauges) -> None:
        """Ignore."""

    def add(self, item: Hashable) -> None:
        """Ignore."""

    def get(self, item: Hashable, queued_seconds: float) -> None:
        """Ignore."""

    def done(self, item: Hashable, processing_seconds: float) -> None:
        """Ignore."""

    def retry(self) -> None:
        """Ignore."""
