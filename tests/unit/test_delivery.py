"""Delivery timing rules that need a controllable clock: retries wait their backoff even when
new events for the object arrive, and a success resets the object's backoff."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from faro._delivery import Delivery, describe_callee
from faro.config import ResourceConfig
from faro.events import EventType, MatchedEvent
from faro.metrics import ControllerMetrics
from faro.testing import FakeClock
from faro.workqueue import ItemExponentialFailureRateLimiter
from tests.integration.helpers import eventually

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
    d.add_handler(describe_callee(calls, "on_matched"))
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


def test_a_stream_handler_matches_the_first_entry_and_counts_what_none_matches(
        clock: FakeClock) -> None:
    metrics = ControllerMetrics()
    d = Delivery(name="match", workers=1, max_retries=0, metrics=metrics, clock=clock)
    calls: list[MatchedEvent] = []
    d.add_handler(describe_callee(calls.append, "on_matched"))
    a, b = (ResourceConfig("v1/configmaps", namespace_names=("team-.*",), name_selector=pattern,
                           ).normalize(path=f"resources[{i}]")[0]
            for i, pattern in enumerate(["a-.*", "b-.*"]))
    handler = d.stream_handler("v1/configmaps", [a], cluster_scoped=False)
    handler.serve([a, b])                              # the plan changed: b is served too

    def cm(name: str, namespace: str) -> dict[str, object]:
        return {"metadata": {"name": name, "namespace": namespace, "uid": name}}

    handler.on_add(cm("a-1", "team-x"), True)
    handler.on_update(cm("b-1", "team-x"), cm("b-1", "team-x"))
    handler.on_add(cm("a-2", "default"), False)        # namespace not matched: filtered
    handler.on_delete(cm("c-1", "team-x"), False)      # name not matched: filtered
    handler.deleted_unseen([cm("b-2", "team-y")])
    d.start()
    try:
        eventually(lambda: len(calls) == 3)
    finally:
        d.stop(10)

    assert [(e.event_type.value, e.key, e.config.source, e.is_initial, e.final_state_unknown)
            for e in calls] == [("ADDED", "team-x/a-1", "resources[0]", True, False),
                                ("UPDATED", "team-x/b-1", "resources[1]", False, False),
                                ("DELETED", "team-y/b-2", "resources[1]", False, True)]
    assert calls[1].old_object is not None
    assert {e.timestamp.timestamp() for e in calls} == {clock.time()}
    assert metrics.registry.get_sample_value(
        "faro_events_filtered_total", {"gvr": "v1/configmaps"}) == 2
    assert metrics.registry.get_sample_value(
        "faro_events_total", {"gvr": "v1/configmaps", "event_type": "ADDED"}) == 1


def test_a_cluster_scoped_stream_ignores_the_namespace_filter(clock: FakeClock) -> None:
    d = Delivery(name="scoped", workers=1, max_retries=0, metrics=ControllerMetrics(),
                 clock=clock)
    entry = ResourceConfig("v1/namespaces", namespace_names=("default",)).normalize()[0]
    try:
        handler = d.stream_handler("v1/namespaces", [entry], cluster_scoped=True)
        handler.on_add({"metadata": {"name": "team-a"}}, False)
        assert d.pending_events() == 0  # gathered until the informer's batch ends
        handler.flush()
        assert d.pending_events() == 1
    finally:
        d.stop(10)


def test_stop_from_a_handler_reports_only_the_events_really_left_undelivered(
        clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """A handler that stops its own controller is running for an event that is delivered
    when it returns, as are the events its worker still holds: only an event waiting for a
    retry (the queue's delayed add is dropped by the stop) is not delivered, and counted."""
    calls = Calls()
    calls.failing.add(("a", 1))
    d = Delivery(name="unit", workers=1, max_retries=3, metrics=ControllerMetrics(),
                 clock=clock, rate_limiter=ItemExponentialFailureRateLimiter(1.0, 100.0))

    def stopper(ev: MatchedEvent) -> None:
        if (ev.name, ev.resource_version) == ("b", "1"):
            d.push(event("b", 2))  # behind b@1 in its buffer, held by this worker
            assert d.stop(10)  # does not wait for this worker

    d.add_handler(describe_callee(calls, "on_matched"))
    d.add_handler(describe_callee(stopper, "on_matched"))
    d.start()
    caplog.set_level(logging.WARNING, logger="faro.controller")
    try:
        d.push(event("a", 1))
        assert retry_scheduled(d, "a") == 1.0  # a@1 waits for a retry the clock never reaches
        d.push(event("b", 1))
        eventually(lambda: d.ended_workers() == 1)
    finally:
        d.stop(10)

    assert calls.calls == [("a", 1), ("b", 1), ("b", 2)]
    assert [r.getMessage() for r in caplog.records if "not delivered" in r.getMessage()] == [
        "stop: 1 event was not delivered (waiting for a retry)"]
