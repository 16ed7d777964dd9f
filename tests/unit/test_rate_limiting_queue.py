"""RateLimitingQueue: add_rate_limited waits as the limiter says; forget; num_requeues."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from faro.testing import FakeClock
from faro.workqueue import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimitingQueue,
    ShutDown,
)
from tests.unit.test_workqueue import BackgroundCall, RecordingMetrics


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rq(clock: FakeClock) -> Iterator[RateLimitingQueue[str]]:
    q: RateLimitingQueue[str] = RateLimitingQueue(
        "test", rate_limiter=ItemExponentialFailureRateLimiter(1.0, 100.0), clock=clock
    )
    yield q
    q.shut_down()


def test_add_rate_limited_waits_for_the_limiters_delay(
    rq: RateLimitingQueue[str], clock: FakeClock
) -> None:
    assert rq.add_rate_limited("a") == 1.0  # first failure: 1 s
    assert clock.wait_for_waiters(1)
    clock.set(0.5)
    assert clock.wait_for_waiters(1)
    assert len(rq) == 0
    clock.set(1.0)
    assert BackgroundCall(rq.get).outcome() == "a"
    assert rq.add_rate_limited("a") == 2.0  # second failure, while "a" is still processing
    rq.done("a")
    assert clock.wait_for_waiters(1)
    clock.set(2.5)
    assert clock.wait_for_waiters(1)
    assert len(rq) == 0
    clock.set(3.0)
    assert BackgroundCall(rq.get).outcome() == "a"


def test_num_requeues_and_forget(rq: RateLimitingQueue[str]) -> None:
    assert rq.num_requeues("a") == 0
    rq.add_rate_limited("a")
    rq.add_rate_limited("a")
    rq.add_rate_limited("b")
    assert rq.num_requeues("a") == 2
    assert rq.num_requeues("b") == 1
    rq.forget("a")
    assert rq.num_requeues("a") == 0
    assert rq.num_requeues("b") == 1
    assert rq.rate_limiter.when("a") == 1.0  # backoff starts over


def test_forget_does_not_remove_the_item_from_the_queue(rq: RateLimitingQueue[str]) -> None:
    rq.add("a")
    rq.forget("a")
    assert rq.get(timeout=0) == "a"


def test_add_rate_limited_after_shut_down_is_ignored(rq: RateLimitingQueue[str]) -> None:
    rq.shut_down()
    assert rq.add_rate_limited("a") == 0.0
    assert rq.num_requeues("a") == 0
    with pytest.raises(ShutDown):
        rq.get()


def test_the_default_limiter_is_the_controller_default(clock: FakeClock) -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue(clock=clock)
    try:
        limiter = q.rate_limiter
        assert isinstance(limiter, MaxOfRateLimiter)
        exponential, bucket = limiter.limiters
        assert isinstance(exponential, ItemExponentialFailureRateLimiter)
        assert isinstance(bucket, BucketRateLimiter)
        q.add_rate_limited("a")
        q.add_rate_limited("a")
        assert q.num_requeues("a") == 2
        assert limiter.when("a") == 0.02  # 5 ms, 10 ms, then 20 ms
    finally:
        q.shut_down()


def test_the_default_limiter_runs_on_the_queues_clock(clock: FakeClock) -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue(clock=clock)
    try:
        for n in range(100):  # the bucket's burst
            q.add_rate_limited(f"burst-{n}")
        assert q.add_rate_limited("next") == pytest.approx(0.1)
        clock.advance(1.0)  # refills the bucket: it runs on the queue's fake clock
        assert q.add_rate_limited("later") == 0.005
    finally:
        q.shut_down()


def test_metrics_count_retries(clock: FakeClock) -> None:
    metrics = RecordingMetrics()
    q: RateLimitingQueue[str] = RateLimitingQueue(
        "test",
        rate_limiter=ItemExponentialFailureRateLimiter(1.0, 100.0),
        clock=clock,
        metrics=metrics,
    )
    try:
        q.add("plain")
        q.add_after("later", 5.0)
        q.add_rate_limited("a")
        assert metrics.calls == [("add", "plain"), ("retry",)]
        assert clock.wait_for_waiters(1)
        clock.set(1.0)
        assert clock.wait_for_waiters(1)  # parked again, waiting for "later"
        assert metrics.calls == [("add", "plain"), ("retry",), ("add", "a")]
    finally:
        q.shut_down()
