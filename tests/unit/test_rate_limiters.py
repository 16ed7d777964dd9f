"""Rate limiters: exponential per-item backoff, the token bucket, max-of, and the default.

Expected numbers follow client-go's default_rate_limiters.go and golang.org/x/time/rate.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Hashable
from typing import Any

import pytest

from faro.testing import FakeClock
from faro.workqueue import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    default_controller_rate_limiter,
)

JOIN_TIMEOUT = 10.0


def run_in_threads(fn: Any, threads: int = 8) -> None:
    """Run ``fn`` in ``threads`` threads at once, switching between them very often."""
    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        workers = [threading.Thread(target=fn, daemon=True) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(JOIN_TIMEOUT)
    finally:
        sys.setswitchinterval(previous_interval)
    assert not any(worker.is_alive() for worker in workers)


# ---------------------------------------------------------------------------------------------
# ItemExponentialFailureRateLimiter
# ---------------------------------------------------------------------------------------------


def test_exponential_doubles_from_the_base_delay_per_item() -> None:
    limiter: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter()
    assert [limiter.when("a") for _ in range(5)] == [0.005, 0.01, 0.02, 0.04, 0.08]
    assert limiter.num_requeues("a") == 5
    assert limiter.when("b") == 0.005  # independent per item
    assert limiter.num_requeues("b") == 1
    assert limiter.num_requeues("never") == 0


def test_exponential_is_capped_at_the_max_delay() -> None:
    limiter: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter()
    delays = [limiter.when("a") for _ in range(20)]
    assert delays[17] == 0.005 * 2**17  # 655.36 s
    assert delays[18] == 1000.0  # 1310.72 s, capped
    assert delays[19] == 1000.0


def test_exponential_does_not_overflow_for_huge_failure_counts() -> None:
    limiter: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter(1.0, 60.0)
    for _ in range(10_000):
        delay = limiter.when("a")
    assert delay == 60.0
    assert limiter.num_requeues("a") == 10_000


def test_exponential_forget_resets_the_item_only() -> None:
    limiter: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter(0.1, 10.0)
    limiter.when("a")
    limiter.when("a")
    limiter.when("b")
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == 0.1
    assert limiter.when("b") == 0.2
    limiter.forget("unknown")  # harmless


def test_exponential_with_zero_base_delay_never_waits() -> None:
    limiter: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter(0, 0)
    assert [limiter.when("a") for _ in range(2000)] == [0.0] * 2000


def test_exponential_counts_every_failure_under_concurrency() -> None:
    limiter: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter()

    def fail() -> None:
        for _ in range(1000):
            limiter.when("a")

    run_in_threads(fail)
    assert limiter.num_requeues("a") == 8000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_delay": -0.001}, "base_delay must be >= 0"),
        ({"base_delay": 2.0, "max_delay": 1.0}, "max_delay must be >= base_delay"),
        ({"max_delay": -1.0}, "max_delay must be >= base_delay"),
        ({"base_delay": float("nan")}, "base_delay must be a number"),
        ({"max_delay": "10"}, "max_delay must be a number"),
    ],
)
def test_exponential_rejects_invalid_parameters(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ItemExponentialFailureRateLimiter(**kwargs)


# ---------------------------------------------------------------------------------------------
# BucketRateLimiter
# ---------------------------------------------------------------------------------------------


def test_bucket_allows_a_burst_then_spaces_tokens_by_one_over_qps() -> None:
    clock = FakeClock()
    limiter: BucketRateLimiter[str] = BucketRateLimiter(10.0, 100, clock=clock)
    assert [limiter.when(f"item-{i}") for i in range(100)] == [0.0] * 100
    assert [limiter.when("a") for _ in range(3)] == pytest.approx([0.1, 0.2, 0.3])


def test_bucket_refills_with_time_up_to_the_burst() -> None:
    clock = FakeClock()
    limiter: BucketRateLimiter[str] = BucketRateLimiter(10.0, 100, clock=clock)
    for _ in range(103):
        limiter.when("a")  # three tokens owed
    clock.advance(0.35)  # 3.5 tokens back: half a token left
    assert limiter.when("a") == pytest.approx(0.05)
    clock.advance(1000.0)  # full again, and no more than full
    assert [limiter.when("a") for _ in range(100)] == [0.0] * 100
    assert limiter.when("a") == pytest.approx(0.1)


def test_bucket_is_shared_by_all_items_and_tracks_none() -> None:
    clock = FakeClock()
    limiter: BucketRateLimiter[str] = BucketRateLimiter(2.0, 1, clock=clock)
    assert limiter.when("a") == 0.0
    assert limiter.when("b") == 0.5
    limiter.forget("a")
    limiter.forget("b")
    assert limiter.when("c") == 1.0  # forget did not give tokens back
    assert limiter.num_requeues("a") == 0


def test_bucket_loses_no_token_under_concurrency() -> None:
    clock = FakeClock()
    limiter: BucketRateLimiter[str] = BucketRateLimiter(10.0, 100, clock=clock)

    def take() -> None:
        for _ in range(500):
            limiter.when("a")

    run_in_threads(take)  # 4000 tokens taken, 3900 owed
    assert limiter.when("a") == pytest.approx(390.1)


def test_bucket_uses_real_time_by_default() -> None:
    limiter: BucketRateLimiter[str] = BucketRateLimiter(1.0, 1)
    assert limiter.when("a") == 0.0
    assert 0.5 < limiter.when("a") <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"qps": 0}, "qps must be a finite number > 0"),
        ({"qps": -5.0}, "qps must be a finite number > 0"),
        ({"qps": float("inf")}, "qps must be a finite number > 0"),
        ({"qps": float("nan")}, "qps must be a number"),
        ({"burst": 0}, "burst must be an integer >= 1"),
        ({"burst": 1.5}, "burst must be an integer >= 1"),
        ({"burst": True}, "burst must be an integer >= 1"),
    ],
)
def test_bucket_rejects_invalid_parameters(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BucketRateLimiter(**kwargs)


# ---------------------------------------------------------------------------------------------
# MaxOfRateLimiter
# ---------------------------------------------------------------------------------------------


class FixedLimiter:
    """Always the same delay; records forgets; counts whens per item."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.counts: dict[Hashable, int] = {}
        self.forgotten: list[Hashable] = []

    def when(self, item: Hashable) -> float:
        self.counts[item] = self.counts.get(item, 0) + 1
        return self.delay

    def forget(self, item: Hashable) -> None:
        self.forgotten.append(item)
        self.counts.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        return self.counts.get(item, 0)


def test_max_of_waits_as_long_as_the_slowest_limiter() -> None:
    fast = ItemExponentialFailureRateLimiter[str](0.001, 1.0)
    slow_capped = ItemExponentialFailureRateLimiter[str](0.002, 0.004)
    limiter = MaxOfRateLimiter(fast, slow_capped)
    assert [limiter.when("a") for _ in range(5)] == [0.002, 0.004, 0.004, 0.008, 0.016]


def test_max_of_asks_every_limiter_and_reports_the_largest_count() -> None:
    first, second = FixedLimiter(1.0), FixedLimiter(2.0)
    limiter = MaxOfRateLimiter(first, second)
    assert limiter.when("a") == 2.0
    assert first.counts == {"a": 1}  # asked too, though its delay is smaller
    first.when("a")
    assert limiter.num_requeues("a") == 2
    limiter.forget("a")
    assert first.forgotten == second.forgotten == ["a"]
    assert limiter.num_requeues("a") == 0


def test_max_of_needs_a_limiter() -> None:
    with pytest.raises(ValueError, match="limiters"):
        MaxOfRateLimiter()


# ---------------------------------------------------------------------------------------------
# default_controller_rate_limiter
# ---------------------------------------------------------------------------------------------


def test_default_controller_rate_limiter_is_client_gos() -> None:
    limiter = default_controller_rate_limiter()
    exponential, bucket = limiter.limiters
    assert isinstance(exponential, ItemExponentialFailureRateLimiter)
    assert (exponential.base_delay, exponential.max_delay) == (0.005, 1000.0)
    assert isinstance(bucket, BucketRateLimiter)
    assert (bucket.qps, bucket.burst) == (10.0, 100)
    assert [limiter.when("a") for _ in range(3)] == [0.005, 0.01, 0.02]
    assert limiter.num_requeues("a") == 3
    limiter.forget("a")
    assert limiter.when("a") == 0.005
    assert default_controller_rate_limiter() is not limiter  # nothing shared


def test_the_default_limiters_bucket_runs_on_the_clock_given() -> None:
    clock = FakeClock()
    limiter = default_controller_rate_limiter(clock=clock)
    delays = [limiter.when(f"item-{n}") for n in range(101)]
    assert delays[:100] == [0.005] * 100  # the burst: only the per-item backoff
    assert delays[100] == pytest.approx(0.1)  # the bucket is empty: 10 per second
    clock.advance(1.0)  # nine tokens back, on the fake clock alone
    assert [limiter.when(f"again-{n}") for n in range(9)] == [0.005] * 9
    assert limiter.when("one-too-many") == pytest.approx(0.1)
