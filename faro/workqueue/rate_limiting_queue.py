"""A delaying work queue that spaces out retries with a rate limiter."""

from __future__ import annotations

from faro.clock import Clock
from faro.workqueue.delaying_queue import DelayingQueue
from faro.workqueue.metrics import QueueMetrics
from faro.workqueue.queue import T
from faro.workqueue.rate_limiters import RateLimiter, default_controller_rate_limiter


class RateLimitingQueue(DelayingQueue[T]):
    """A :class:`DelayingQueue` whose :meth:`add_rate_limited` waits as the limiter says.

    The usual worker loop: on failure ``add_rate_limited(item)``, on success
    ``forget(item)``, and ``done(item)`` either way. ``rate_limiter`` defaults to
    :func:`~faro.workqueue.default_controller_rate_limiter` (a fresh one per queue, on the
    queue's clock); it must be thread-safe. Thread-safe.
    """

    def __init__(
        self,
        name: str = "",
        *,
        rate_limiter: RateLimiter[T] | None = None,
        clock: Clock | None = None,
        metrics: QueueMetrics[T] | None = None,
    ) -> None:
        super().__init__(name, clock=clock, metrics=metrics)
        self.rate_limiter: RateLimiter[T] = (
            rate_limiter if rate_limiter is not None
            else default_controller_rate_limiter(clock=self._clock)
        )

    def add_rate_limited(self, item: T) -> float:
        """Add ``item`` after ``rate_limiter.when(item)`` seconds; ignored after shutdown.

        Counts as a retry for the limiter and for metrics. Returns the delay in
        seconds (0.0 when ignored).
        """
        if self.is_shutting_down():
            return 0.0
        if self._metrics is not None:
            self._metrics.retry()
        delay = self.rate_limiter.when(item)
        self.add_after(item, delay)
        return delay

    def forget(self, item: T) -> None:
        """Tell the limiter ``item`` succeeded: its retries are no longer tracked.

        This does not remove ``item`` from the queue.
        """
        self.rate_limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        """How many retries of ``item`` the limiter tracks."""
        return self.rate_limiter.num_requeues(item)
