"""The pending bound (faro._pending): who waits, who goes through, and when an informer is held.

Each admit that must wait runs on a thread of its own; the tests wait for it to be parked
(``held()`` names its producer) or admitted, with a deadline, never with a sleep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from faro._pending import PendingBound, Producer
from faro.clock import RealClock
from faro.config import PendingConfig
from faro.testing import FakeClock
from tests.integration.helpers import DEADLINE, eventually


def bound(**limits: int) -> PendingBound:
    settings = {"max_events": 0, "max_bytes": 0, "max_events_per_informer": 0,
                "max_bytes_per_informer": 0, **limits}
    return PendingBound(PendingConfig(**settings), clock=RealClock(), name="test")


class Admit:
    """``admit(producer, size)`` on a thread of its own; ``done`` once it returned."""

    def __init__(self, pending: PendingBound, producer: Producer, size: int = 1) -> None:
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(pending, producer, size),
                                       daemon=True)
        self.thread.start()

    def _run(self, pending: PendingBound, producer: Producer, size: int) -> None:
        pending.admit(producer, size)
        self.done.set()


def parked(pending: PendingBound, name: str) -> Callable[[], bool]:
    return lambda: any(h.name == name for h in pending.held())


def test_an_informer_at_its_own_bound_waits_while_another_goes_on() -> None:
    pending = bound(max_events_per_informer=2)
    busy, other = pending.producer("busy"), pending.producer("other")
    pending.admit(busy, 10)
    pending.admit(busy, 10)
    waiting = Admit(pending, busy)
    eventually(parked(pending, "busy"))
    for _ in range(2):
        pending.admit(other, 10)  # its own share: not held by the busy one
    assert not waiting.done.is_set()
    assert [(h.name, h.bound) for h in pending.held()] == [("busy", "per informer")]
    pending.release(busy, 10)
    assert waiting.done.wait(DEADLINE)
    assert (busy.events, busy.bytes, pending.events, pending.bytes) == (2, 11, 4, 31)


def test_the_total_bound_holds_every_informer_but_one_with_nothing_pending_goes_through() -> None:
    pending = bound(max_events=3)
    first, second = pending.producer("first"), pending.producer("second")
    for _ in range(3):
        pending.admit(first, 1)
    pending.admit(second, 1)  # nothing pending for it: through, beyond the total
    waiting = Admit(pending, second)
    eventually(parked(pending, "second"))
    assert [h.bound for h in pending.held()] == ["in total"]
    pending.release(first, 1)
    assert not waiting.done.wait(0.05)  # 4 pending: still beyond 3
    pending.release(first, 1)
    assert waiting.done.wait(DEADLINE)
    assert pending.events == 3


def test_bytes_bound_and_an_event_larger_than_the_bound_goes_through_alone() -> None:
    pending = bound(max_bytes_per_informer=100)
    producer = pending.producer("big")
    pending.admit(producer, 10_000)  # alone: through
    waiting = Admit(pending, producer, 1)
    eventually(parked(pending, "big"))
    pending.release(producer, 10_000)
    assert waiting.done.wait(DEADLINE)
    assert producer.bytes == 1


def test_held_ends_when_an_event_finds_room_or_a_release_leaves_room_with_none_waiting() -> None:
    pending = bound(max_events_per_informer=1)
    producer = pending.producer("p")
    pending.admit(producer, 1)
    waiting = Admit(pending, producer)
    eventually(parked(pending, "p"))
    pending.release(producer, 1)
    assert waiting.done.wait(DEADLINE)
    # Admitted after waiting: still held (it was throttled) until room shows with none waiting.
    assert [h.name for h in pending.held()] == ["p"]
    pending.release(producer, 1)
    assert pending.held() == []
    pending.admit(producer, 1)  # room at once: not held
    assert pending.held() == []


@pytest.mark.parametrize("close", ["producer", "bound"])
def test_closing_releases_a_waiting_informer_at_once(close: str) -> None:
    pending = bound(max_events=1)
    producer = pending.producer("stopping")
    pending.admit(producer, 1)
    waiting = Admit(pending, producer)
    eventually(parked(pending, "stopping"))
    if close == "producer":
        pending.close_producer(producer)
    else:
        pending.close()
    assert waiting.done.wait(DEADLINE)
    assert pending.held() == []
    pending.admit(producer, 1)  # closed: never waits again
    assert producer.events == 3
    assert pending.producer("late").closed is (close == "bound")


def test_a_long_wait_is_logged_once_a_minute_with_the_bound_and_the_counts(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    pending = PendingBound(PendingConfig(max_events_per_informer=1), clock=clock, name="ctl")
    producer = pending.producer("v1/configmaps in default")
    pending.admit(producer, 2048)
    waiting = Admit(pending, producer)
    assert clock.wait_for_waiters(1)
    clock.advance(1.0)
    assert clock.wait_for_waiters(1)
    clock.advance(30.0)  # within the minute: no second line
    assert clock.wait_for_waiters(1)
    lines = [r.getMessage() for r in caplog.records if "has waited" in r.getMessage()]
    assert lines == ["controller ctl: informer v1/configmaps in default has waited 1.0s for the "
                     "handlers: 1 events, 0.0 MiB pending for it (pending.max_events_per_informer "
                     "1, max_bytes_per_informer 29360128); it reads no more of its watch until "
                     "they catch up"]
    clock.advance(30.0)
    assert clock.wait_for_waiters(1)
    assert len([r for r in caplog.records if "has waited" in r.getMessage()]) == 2
    pending.release(producer, 2048)
    assert waiting.done.wait(DEADLINE)


def test_a_batch_is_admitted_as_far_as_it_fits_and_waits_only_with_nothing_admitted() -> None:
    pending = bound(max_events_per_informer=3)
    producer = pending.producer("batch")
    assert pending.admit_some(producer, [1, 2, 3, 4, 5]) == 3  # the bound: 3, no wait
    assert (producer.events, producer.bytes) == (3, 6)
    result: list[int] = []
    waiter = threading.Thread(target=lambda: result.append(pending.admit_some(producer, [4, 5])),
                              daemon=True)
    waiter.start()
    eventually(parked(pending, "batch"))  # none of the rest fits: it waits for room
    for size in (1, 2, 3):
        pending.release(producer, size)
    waiter.join(DEADLINE)
    # Woken at 90 % of the bound it takes what fits again: both.
    assert result == [2] and (producer.events, producer.bytes) == (2, 9)
