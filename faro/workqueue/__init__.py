"""Work queues for controllers, after client-go's ``util/workqueue``.

* :class:`WorkQueue`: FIFO, deduplicating, one worker per item at a time.
* :class:`DelayingQueue`: adds :meth:`~DelayingQueue.add_after`.
* :class:`RateLimitingQueue`: adds :meth:`~RateLimitingQueue.add_rate_limited`, backed
  by a :class:`RateLimiter` (default: :func:`default_controller_rate_limiter`).
* :class:`QueueMetrics`: the hook for metrics backends.

See ``docs/workqueue.md`` for the rules and a worker loop.
"""

from faro.workqueue.delaying_queue import DelayingQueue
from faro.workqueue.metrics import NoopQueueMetrics, QueueGauges, QueueMetrics
from faro.workqueue.queue import ShutDown, WorkQueue
from faro.workqueue.rate_limiters import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    default_controller_rate_limiter,
)
from faro.workqueue.rate_limiting_queue import RateLimitingQueue

__all__ = [
    "BucketRateLimiter",
    "DelayingQueue",
    "ItemExponentialFailureRateLimiter",
    "MaxOfRateLimiter",
    "NoopQueueMetrics",
    "QueueGauges",
    "QueueMetrics",
    "RateLimiter",
    "RateLimitingQueue",
    "ShutDown",
    "WorkQueue",
    "default_controller_rate_limiter",
]
