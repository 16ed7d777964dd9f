"""Delivery timing rules that need a controllable clock: retries wait their backoff even when
new events for the object arrive, and a success resets the object's backoff."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from faro._delivery import Delivery
from faro.config import ResourceConfig
from faro.events import EventType, MatchedEvent
from faro.metrics import ControllerMetrics
from faro.testing import FakeClock
from faro.workqueue import ItemExponentialFailureRateLimiter
from tests.sim.helpers import eventually

CONFIG = ResourceConfig("v1/configmaps").normalize()[0]


def event(name: str, rv: int) -> MatchedEvent:
    obj = {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv)}}
    return MatchedEvent(EventType.UPDATED, obj, "v1/configmaps", f"ns/{name}", CONFIG,
                        datetime.now(timezone.utc))


class Calls:
    """A handler recording (name, rv) per call; fails the calls ``failing`` says."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.failing: set[tuple[str, int]] = set()
        self._cond = threading.Condition()

    def __call__(self, ev: MatchedEvent) -> None:
        call = (ev.name, int(ev.resource_version))
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()
        if call in self.failing:
            self.failing.discard(call)
            raise RuntimeError(f"fail {call}")

    def wait_for(self, call: tuple[str, int], count: int = 1) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.calls.count(call) >= count, 10), self.calls


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def delivery(clock: FakeClock) -> Iterator[tuple[Delivery, Calls]]:
    calls = Calls()
    d = Delivery(name="unit", workers=1, max_retries=3, metrics=ControllerMetrics(),
                 clock=clock, rate_limiter=ItemExponentialFailureRateLimiter(1.0, 100.0))
    d.handlers = (d_callee(calls),)
    d.start()
    yield d, calls
    d.stop(10)


def retry_scheduled(d: Delivery, name: str) -> float:
    """When the front event of ``ns/name`` is due again, once its retry is scheduled."""
    def due() -> float:
        buffer = d._buffers.get(("v1/configmaps", f"ns/{name}"))
        return buffer[0].retry_at if buffer else 0.0
    value: float = eventually(due)
    return value


def d_callee(calls: Calls) -> object:
    from faro._delivery import describe_callee
    return describe_callee(calls, "on_matched")


def test_a_new_event_does_not_cut_a_retry_backoff_short(
        delivery: tuple[Delivery, Calls], clock: FakeClock) -> None:
    d, calls = delivery
    calls.failing.add(("a", 1))
    d.push(event("a", 1))
    assert retry_scheduled(d, "a") == 1.0    # failed: retry after 1 s
    d.push(event("a", 2))                    # wakes the worker for "a" early...
    d.push(event("fence", 3))                # ...which handles "a" before this one
    calls.wait_for(("fence", 3))
    assert calls.calls == [("a", 1), ("fence", 3)]   # no early retry, no overtaking
    clock.advance(1.0)
    calls.wait_for(("a", 2))
    assert calls.calls == [("a", 1), ("fence", 3), ("a", 1), ("a", 2)]


def test_a_success_resets_the_objects_backoff(
        delivery: tuple[Delivery, Calls], clock: FakeClock) -> None:
    d, calls = delivery
    calls.failing |= {("a", 1), ("a", 2)}
    d.push(event("a", 1))
    d.push(event("a", 2))                    # waits behind a@1
    assert retry_scheduled(d, "a") == 1.0    # a@1 failed: 1 s
    clock.advance(1.0)
    calls.wait_for(("a", 2))                 # a@1 succeeded, then a@2 failed...
    assert retry_scheduled(d, "a") == 2.0    # ...and waits 1 s again, not 2 s
    clock.advance(1.0)
    calls.wait_for(("a", 2), count=2)
    assert calls.calls == [("a", 1), ("a", 1), ("a", 2), ("a", 2)]
