"""A writer's steady schedule, shared by the benchmarks that write at a given rate."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any


class Schedule:
    """``count`` writes at ``rate`` per second: the k-th is due at start + k/rate.

    Iterating yields 0 .. count-1, each when it is due (a late one at once, so the writer
    catches up instead of drifting); ``start`` is the monotonic time the schedule was made.
    :meth:`lateness` says how well the writer kept up. Not thread-safe: one writer iterates.
    """

    def __init__(self, count: int, rate: float) -> None:
        self.count = count
        self.interval = 1.0 / rate
        self.late = 0.0  # the worst lateness, in seconds
        self.late_writes = 0  # writes more than 1 ms behind their schedule
        self.start = time.monotonic()

    def __iter__(self) -> Iterator[int]:
        monotonic, sleep = time.monotonic, time.sleep
        start, interval = self.start, self.interval
        for k in range(self.count):
            delay = start + k * interval - monotonic()
            if delay > 0:
                sleep(delay)
            else:
                self.late = max(self.late, -delay)
                self.late_writes += delay < -0.001
            yield k

    def lateness(self) -> dict[str, Any]:
        """``max_late_ms`` and ``late_writes``, as the benchmarks report them."""
        return {"max_late_ms": round(self.late * 1000, 3), "late_writes": self.late_writes}
