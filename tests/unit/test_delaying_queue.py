"""DelayingQueue.add_after: ready times, their ordering, re-adds, and the delay thread.

With a FakeClock, the delay thread counts as a waiter while it waits for the earliest
ready time; an advance wakes it and stops counting it at once, so waiting for a waiter
again means it has looked at the new time and parked. Only then do tests check that
nothing was added too early.
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Hashable, Iterator
from typing import Any

import pytest

from faro.clock import RealClock
from faro.testing import FakeClock
from faro.workqueue import DelayingQueue, ShutDown, WorkQueue
from tests.unit.test_workqueue import BackgroundCall, RecordingMetrics

THREAD_NAME = "faro-workqueue-test-delay"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def dq(clock: FakeClock) -> Iterator[DelayingQueue[str]]:
    q: DelayingQueue[str] = DelayingQueue("test", clock=clock)
    yield q
    q.shut_down()


def delay_threads(name: str = THREAD_NAME) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == name]


def get_ready(q: WorkQueue[Any]) -> Any:
    """The next item, once the delay thread has added it (in real time, with a deadline)."""
    return BackgroundCall(q.get).outcome()


def move_to(clock: FakeClock, t: float) -> None:
    """Set the clock, then wait until the delay thread has looked at the new time."""
    clock.set(t)
    assert clock.wait_for_waiters(1)


def get_nowait(q: WorkQueue[Any]) -> Any:
    return q.get(timeout=0)


# ---------------------------------------------------------------------------------------------
# Immediate adds
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [0, 0.0, -1.0])
def test_add_after_without_a_positive_delay_adds_at_once(
    dq: DelayingQueue[str], delay: float
) -> None:
    dq.add_after("a", delay)
    assert len(dq) == 1
    assert get_nowait(dq) == "a"
    assert delay_threads() == []  # no thread needed for that


def test_add_after_with_a_nan_delay_raises(dq: DelayingQueue[str]) -> None:
    with pytest.raises(ValueError, match="delay"):
        dq.add_after("a", float("nan"))


# ---------------------------------------------------------------------------------------------
# Ready times
# ---------------------------------------------------------------------------------------------


def test_an_item_is_not_added_before_its_ready_time(
    dq: DelayingQueue[str], clock: FakeClock
) -> None:
    dq.add_after("a", 1.0)
    assert clock.wait_for_waiters(1)
    assert len(dq) == 0
    move_to(clock, 0.5)
    assert len(dq) == 0
    move_to(clock, 0.999)
    assert len(dq) == 0
    clock.set(1.0)
    assert get_ready(dq) == "a"


def test_items_are_added_in_ready_time_order_ties_in_insertion_order(
    clock: FakeClock,
) -> None:
    q: DelayingQueue[Hashable] = DelayingQueue("test", clock=clock)
    try:
        q.add_after("late", 3.0)
        q.add_after("first", 1.0)
        q.add_after("tie-z", 2.0)
        q.add_after(1, 2.0)  # ties must not compare the items ("tie-z" < 1 raises)
        q.add_after("tie-a", 2.0)
        q.add("now")
        assert clock.wait_for_waiters(1)
        clock.advance(10.0)
        assert get_nowait(q) == "now"
        assert get_ready(q) == "first"
        # The thread adds every ready item in one go.
        assert [get_nowait(q) for _ in range(4)] == ["tie-z", 1, "tie-a", "late"]
    finally:
        q.shut_down()


def test_items_become_ready_one_after_another(dq: DelayingQueue[str], clock: FakeClock) -> None:
    dq.add_after("b", 2.0)
    dq.add_after("a", 1.0)
    assert clock.wait_for_waiters(1)
    move_to(clock, 1.0)  # parked again: waiting for "b"
    assert get_nowait(dq) == "a"
    assert len(dq) == 0
    clock.set(2.0)
    assert get_ready(dq) == "b"


def test_a_later_re_add_keeps_the_earlier_ready_time(
    dq: DelayingQueue[str], clock: FakeClock
) -> None:
    dq.add_after("a", 1.0)
    dq.add_after("a", 5.0)
    dq.add_after("sentinel", 10.0)  # keeps the thread waiting (and counted) after "a"
    assert clock.wait_for_waiters(1)
    move_to(clock, 1.0)
    assert get_nowait(dq) == "a"
    dq.done("a")
    move_to(clock, 5.0)
    assert len(dq) == 0  # "a" waited once, not twice


def test_an_earlier_re_add_moves_the_ready_time_forward(
    dq: DelayingQueue[str], clock: FakeClock
) -> None:
    dq.add_after("a", 5.0)
    dq.add_after("sentinel", 10.0)
    assert clock.wait_for_waiters(1)
    dq.add_after("a", 1.0)
    move_to(clock, 1.0)
    assert get_nowait(dq) == "a"
    dq.done("a")
    move_to(clock, 5.0)
    assert len(dq) == 0  # the superseded ready time is not served


class ObservedRealClock(RealClock):
    """Real time, and a way to wait until some thread has started a timed wait."""

    def __init__(self) -> None:
        self._timed_waits = 0
        self._changed = threading.Condition()

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        if timeout is not None:
            with self._changed:
                self._timed_waits += 1
                self._changed.notify_all()
        super().wait(condition, timeout)

    def wait_for_timed_waits(self, count: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._timed_waits >= count, 10.0)


def test_an_earlier_re_add_wakes_the_waiting_thread() -> None:
    """In real time: the thread waiting for a far ready time must re-arm for a nearer one."""
    clock = ObservedRealClock()
    q: DelayingQueue[str] = DelayingQueue("test", clock=clock)
    try:
        q.add_after("a", 3600.0)
        q.add_after("b", 3600.0)
        # The thread holds the queue's lock until it really waits, so the next add_after
        # happens while it waits for the hour to pass.
        assert clock.wait_for_timed_waits(1)
        q.add_after("a", 0.001)
        assert BackgroundCall(q.get).outcome() == "a"
    finally:
        q.shut_down()


def test_many_superseded_ready_times_are_served_once(
    dq: DelayingQueue[str], clock: FakeClock
) -> None:
    keys = [f"k{i}" for i in range(5)]
    for step in range(300):
        for key in keys:
            dq.add_after(key, 1000.0 - step)
    assert len(dq._heap) < 2 * 5 * 64  # white-box: superseded entries get compacted away
    assert clock.wait_for_waiters(1)
    clock.set(1000.0)
    assert get_ready(dq) == "k0"
    assert [get_nowait(dq) for _ in keys[1:]] == keys[1:]
    with pytest.raises(queue.Empty):
        get_nowait(dq)


def test_a_plain_add_of_a_waiting_item_queues_it_at_once(
    dq: DelayingQueue[str], clock: FakeClock
) -> None:
    dq.add_after("a", 1.0)
    dq.add("a")
    assert get_nowait(dq) == "a"


def test_metrics_see_delayed_items_when_they_are_added(clock: FakeClock) -> None:
    metrics = RecordingMetrics()
    q: DelayingQueue[str] = DelayingQueue("test", clock=clock, metrics=metrics)
    try:
        q.add_after("a", 2.0)
        assert clock.wait_for_waiters(1)
        assert metrics.calls == []
        clock.set(2.0)
        assert get_ready(q) == "a"
        assert metrics.calls == [("add", "a"), ("get", "a", 0.0)]
    finally:
        q.shut_down()


# ---------------------------------------------------------------------------------------------
# The delay thread
# ---------------------------------------------------------------------------------------------


def test_one_named_daemon_thread_serves_all_delays(
    dq: DelayingQueue[str], clock: FakeClock
) -> None:
    assert delay_threads() == []
    for i in range(10):
        dq.add_after(f"item-{i}", 1.0 + i)
    threads = delay_threads()
    assert len(threads) == 1
    assert threads[0].daemon


@pytest.mark.parametrize("drain", [False, True])
def test_shutdown_stops_the_thread_and_drops_waiting_items(
    dq: DelayingQueue[str], clock: FakeClock, drain: bool
) -> None:
    dq.add_after("a", 1.0)
    dq.add("b")
    assert clock.wait_for_waiters(1)
    assert len(delay_threads()) == 1
    if drain:
        assert dq.shut_down_with_drain() is True
    else:
        dq.shut_down()
    assert delay_threads() == []  # joined before shut_down returned
    clock.set(5.0)
    assert get_nowait(dq) == "b"
    with pytest.raises(ShutDown):
        dq.get()
    dq.add_after("c", 1.0)  # ignored, and no thread is started again
    dq.add_after("c", 0.0)
    assert delay_threads() == []
    assert len(dq) == 0


def test_shutdown_releases_the_waiting_items(dq: DelayingQueue[Any], clock: FakeClock) -> None:
    class Key:
        pass

    key = Key()
    dq.add_after(key, 1.0)
    released = weakref.ref(key)
    del key
    assert released() is not None  # held by the queue
    dq.shut_down()
    assert released() is None  # dropped, not kept until the process ends


def test_shutdown_without_a_delayed_add_has_no_thread_to_stop(dq: DelayingQueue[str]) -> None:
    dq.add("a")
    dq.shut_down()
    assert delay_threads() == []


# ---------------------------------------------------------------------------------------------
# FakeClock
# ---------------------------------------------------------------------------------------------


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(start=10.0)
    assert clock.now() == 10.0
    clock.advance(2.5)
    assert clock.now() == 12.5
    clock.set(20.0)
    assert clock.now() == 20.0
    with pytest.raises(ValueError, match="seconds"):
        clock.advance(-1.0)
    with pytest.raises(ValueError, match="t must be"):
        clock.set(19.0)


def test_fake_clock_counts_only_waiters_with_a_finite_timeout() -> None:
    clock = FakeClock()
    timed_condition = threading.Condition()
    untimed_condition = threading.Condition()
    untimed_entered = threading.Event()

    def wait_timed() -> None:
        with timed_condition:
            clock.wait(timed_condition, 5.0)

    def wait_untimed() -> None:
        with untimed_condition:
            untimed_entered.set()
            clock.wait(untimed_condition, None)

    timed = BackgroundCall(wait_timed)
    untimed = BackgroundCall(wait_untimed)
    assert clock.wait_for_waiters(1)
    assert untimed_entered.wait(10.0)
    with untimed_condition:  # acquirable only once the untimed waiter is waiting
        pass
    assert clock.waiters() == 1
    assert not clock.wait_for_waiters(2, timeout=0.01)
    clock.advance(1.0)  # wakes the timed waiter, even though its timeout has not passed
    assert clock.waiters() == 0  # at once, before it even runs again
    timed.outcome()
    assert untimed.is_alive()  # time does not wake a wait without timeout
    with untimed_condition:
        untimed_condition.notify_all()
    untimed.outcome()
    with timed_condition:
        clock.wait(timed_condition, 0.0)  # returns at once
