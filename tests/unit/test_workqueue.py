"""WorkQueue: client-go's workqueue rules (dedup, one worker per item, FIFO, shutdown).

Time is a FakeClock wherever a test needs to know that a thread is blocked: a get() or a
drain with a (fake) timeout shows up in FakeClock.waiters() once it is parked. No test
sleeps; threads are joined with real deadlines.

BackgroundCall and RecordingMetrics are shared with the other workqueue test modules.
"""

from __future__ import annotations

import queue
import random
import sys
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import pytest

from faro.testing import FakeClock
from faro.workqueue import QueueGauges, ShutDown, WorkQueue

JOIN_TIMEOUT = 10.0  # real seconds: generous, only reached when a test is failing


class BackgroundCall(threading.Thread):
    """Runs ``fn(*args)`` in a daemon thread; :meth:`outcome` joins it with a deadline."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        super().__init__(daemon=True, name=f"test-{getattr(fn, '__name__', 'call')}")
        self._fn = fn
        self._args = args
        self.result: Any = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.result = self._fn(*self._args)
        except BaseException as error:  # handed to the test thread by outcome()
            self.error = error

    def outcome(self, timeout: float = JOIN_TIMEOUT) -> Any:
        """The call's return value; re-raises what it raised; fails if it is still running."""
        self.join(timeout)
        assert not self.is_alive(), "the call did not finish in time"
        if self.error is not None:
            raise self.error
        return self.result


class RecordingMetrics:
    """A QueueMetrics that records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.bound: tuple[str, QueueGauges] | None = None

    def bind(self, name: str, gauges: QueueGauges) -> None:
        self.bound = (name, gauges)

    def add(self, item: Hashable) -> None:
        self.calls.append(("add", item))

    def get(self, item: Hashable, queued_seconds: float) -> None:
        self.calls.append(("get", item, queued_seconds))

    def done(self, item: Hashable, processing_seconds: float) -> None:
        self.calls.append(("done", item, processing_seconds))

    def retry(self) -> None:
        self.calls.append(("retry",))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def wq(clock: FakeClock) -> Iterator[WorkQueue[str]]:
    q: WorkQueue[str] = WorkQueue("test", clock=clock)
    yield q
    q.shut_down()


def get_nowait(q: WorkQueue[Any]) -> Any:
    return q.get(timeout=0)


# ---------------------------------------------------------------------------------------------
# Ordering and deduplication
# ---------------------------------------------------------------------------------------------


def test_items_are_handed_out_in_the_order_they_were_added(wq: WorkQueue[str]) -> None:
    keys = [f"ns/item-{i}" for i in random.Random(7).sample(range(1000), 100)]
    for key in keys:
        wq.add(key)
    assert len(wq) == 100
    assert [get_nowait(wq) for _ in keys] == keys
    assert len(wq) == 0


def test_adding_a_queued_item_again_does_nothing(wq: WorkQueue[str]) -> None:
    wq.add("a")
    wq.add("b")
    wq.add("a")
    wq.add("b")
    wq.add("a")
    assert len(wq) == 2
    assert get_nowait(wq) == "a"  # keeps its first position
    assert get_nowait(wq) == "b"
    with pytest.raises(queue.Empty):
        get_nowait(wq)


def test_an_item_added_while_processing_is_queued_again_once_after_done(
    wq: WorkQueue[str],
) -> None:
    wq.add("a")
    assert get_nowait(wq) == "a"
    wq.add("a")
    wq.add("a")
    wq.add("b")
    # Not handed to a second worker while the first one processes it.
    assert len(wq) == 1
    assert get_nowait(wq) == "b"
    with pytest.raises(queue.Empty):
        get_nowait(wq)
    wq.done("a")
    assert len(wq) == 1
    assert get_nowait(wq) == "a"
    wq.done("a")
    wq.done("b")
    assert len(wq) == 0  # once, not once per add


def test_an_item_not_added_during_processing_is_not_queued_again(wq: WorkQueue[str]) -> None:
    wq.add("a")
    assert get_nowait(wq) == "a"
    wq.done("a")
    assert len(wq) == 0
    wq.add("a")  # and it can be added again afterwards
    assert get_nowait(wq) == "a"


def test_done_of_an_item_that_is_not_processing_raises(wq: WorkQueue[str]) -> None:
    with pytest.raises(ValueError, match=r"done\('x'\)"):
        wq.done("x")
    wq.add("a")
    with pytest.raises(ValueError, match="not being processed"):
        wq.done("a")  # queued, not handed out
    assert get_nowait(wq) == "a"
    wq.done("a")
    with pytest.raises(ValueError, match="not being processed"):
        wq.done("a")  # twice
    assert len(wq) == 0


def test_items_of_any_hashable_type() -> None:
    q: WorkQueue[Hashable] = WorkQueue()
    items: list[Hashable] = [("default", "pod-a"), 3, "x", frozenset({1}), None]
    for item in items:
        q.add(item)
    assert [get_nowait(q) for _ in items] == items


def test_one_item_is_never_processed_by_two_workers_at_once() -> None:
    """Producers and workers hammer 20 keys; every key's last add is processed, serially."""
    q: WorkQueue[str] = WorkQueue("stress")
    keys = [f"key-{i}" for i in range(20)]
    lock = threading.Lock()
    versions: Counter[str] = Counter()  # bumped before each add
    processed: dict[str, int] = {}  # the version the last processing of a key saw
    in_flight: Counter[str] = Counter()
    overlaps: list[str] = []
    regressions: list[str] = []
    errors: list[BaseException] = []  # raised in a worker, such as done() of a stray item

    def produce(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(3000):
            key = rng.choice(keys)
            with lock:
                versions[key] += 1
            q.add(key)

    def work() -> None:
        try:
            process_until_shut_down()
        except BaseException as error:
            errors.append(error)

    def process_until_shut_down() -> None:
        while True:
            try:
                key = q.get()
            except ShutDown:
                return
            with lock:
                in_flight[key] += 1
                if in_flight[key] > 1:
                    overlaps.append(key)
                seen = versions[key]
            sum(range(1000))  # a little work, so that threads switch mid-item
            with lock:
                if seen < processed.get(key, 0):
                    regressions.append(key)
                processed[key] = seen
                in_flight[key] -= 1
            q.done(key)

    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads far more often than the default 5 ms
    try:
        workers = [threading.Thread(target=work, daemon=True) for _ in range(8)]
        producers = [
            threading.Thread(target=produce, args=(seed,), daemon=True) for seed in range(4)
        ]
        for thread in workers + producers:
            thread.start()
        for thread in producers:
            thread.join(JOIN_TIMEOUT)
        assert q.shut_down_with_drain(timeout=JOIN_TIMEOUT)
        for thread in workers:
            thread.join(JOIN_TIMEOUT)
        assert not any(thread.is_alive() for thread in workers + producers)
    finally:
        sys.setswitchinterval(previous_interval)

    assert overlaps == []
    assert errors == []
    assert regressions == []
    assert processed == dict(versions)  # every add was followed by a processing
    assert len(q) == 0


# ---------------------------------------------------------------------------------------------
# get(): blocking and timeouts
# ---------------------------------------------------------------------------------------------


def test_get_blocks_until_an_item_is_added(wq: WorkQueue[str], clock: FakeClock) -> None:
    getter = BackgroundCall(wq.get, 60.0)
    assert clock.wait_for_waiters(1)  # parked in get()
    assert getter.is_alive()
    wq.add("a")
    assert getter.outcome() == "a"
    assert clock.now() == 0.0  # woken by the add, not by time


def test_each_add_wakes_one_blocked_getter(wq: WorkQueue[str], clock: FakeClock) -> None:
    getters = [BackgroundCall(wq.get, 60.0) for _ in range(3)]
    assert clock.wait_for_waiters(3)
    for item in ("a", "b", "c"):
        wq.add(item)
    assert sorted(getter.outcome() for getter in getters) == ["a", "b", "c"]


def test_a_getter_woken_for_an_item_someone_else_took_is_woken_by_the_next_add(
        wq: WorkQueue[str], clock: FakeClock) -> None:
    for _ in range(20):  # the race goes either way; every round must end with both items out
        getter = BackgroundCall(wq.get, 60.0)
        assert clock.wait_for_waiters(1)
        wq.add("a")  # wakes the getter...
        try:
            taken = [wq.get(timeout=0)]  # ...but usually this thread takes "a" first
        except queue.Empty:
            taken = []
        wq.add("b")
        if not taken:
            taken.append(wq.get(timeout=0) if len(wq) else getter.outcome())
        got = {*taken, getter.outcome()}
        assert got == {"a", "b"}
        for item in got:
            wq.done(item)


def test_get_with_a_timeout_raises_queue_empty_in_real_time() -> None:
    q: WorkQueue[str] = WorkQueue()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    with pytest.raises(queue.Empty):
        q.get(timeout=0)


def test_get_timeout_runs_on_the_queue_clock(wq: WorkQueue[str], clock: FakeClock) -> None:
    getter = BackgroundCall(wq.get, 5.0)
    assert clock.wait_for_waiters(1)
    clock.advance(4.5)
    assert clock.wait_for_waiters(1)  # woke, saw 0.5 s left, parked again
    assert getter.is_alive()
    clock.advance(0.5)
    with pytest.raises(queue.Empty):
        getter.outcome()


def test_get_with_a_negative_timeout_raises_value_error(wq: WorkQueue[str]) -> None:
    with pytest.raises(ValueError, match="timeout"):
        wq.get(timeout=-1)


# ---------------------------------------------------------------------------------------------
# Shutdown
# ---------------------------------------------------------------------------------------------


def test_shut_down_wakes_blocked_getters_with_shutdown(
    wq: WorkQueue[str], clock: FakeClock
) -> None:
    getters = [BackgroundCall(wq.get, 60.0) for _ in range(3)]
    assert clock.wait_for_waiters(3)
    assert not wq.is_shutting_down()
    wq.shut_down()
    assert wq.is_shutting_down()
    for getter in getters:
        with pytest.raises(ShutDown):
            getter.outcome()
    assert clock.now() == 0.0


def test_items_queued_before_shut_down_are_still_handed_out(wq: WorkQueue[str]) -> None:
    wq.add("a")
    wq.add("b")
    wq.shut_down()
    assert get_nowait(wq) == "a"
    assert wq.get() == "b"
    with pytest.raises(ShutDown):
        wq.get()
    with pytest.raises(ShutDown):
        wq.get(timeout=0)


def test_adds_after_shut_down_are_ignored(wq: WorkQueue[str]) -> None:
    wq.add("a")
    assert get_nowait(wq) == "a"
    wq.shut_down()
    wq.add("b")
    wq.add("a")  # would otherwise be re-queued by done()
    assert len(wq) == 0
    wq.done("a")
    assert len(wq) == 0
    with pytest.raises(ShutDown):
        wq.get()


def test_an_item_re_added_before_shut_down_is_still_queued_again_by_done(
    wq: WorkQueue[str],
) -> None:
    wq.add("a")
    assert get_nowait(wq) == "a"
    wq.add("a")
    wq.shut_down()
    wq.done("a")
    assert wq.get() == "a"
    wq.done("a")
    with pytest.raises(ShutDown):
        wq.get()


def test_shut_down_twice_is_harmless(wq: WorkQueue[str]) -> None:
    wq.shut_down()
    wq.shut_down()
    assert wq.is_shutting_down()


def test_shut_down_with_drain_waits_until_processing_items_are_done(
    wq: WorkQueue[str], clock: FakeClock
) -> None:
    wq.add("a")
    wq.add("b")
    assert get_nowait(wq) == "a"
    assert get_nowait(wq) == "b"
    drain = BackgroundCall(wq.shut_down_with_drain, 60.0)
    assert clock.wait_for_waiters(1)
    assert wq.is_shutting_down()
    wq.done("a")
    assert clock.wait_for_waiters(1)  # still waiting for "b"
    assert drain.is_alive()
    wq.done("b")
    assert drain.outcome() is True


def test_shut_down_with_drain_returns_false_on_timeout(
    wq: WorkQueue[str], clock: FakeClock
) -> None:
    wq.add("a")
    assert get_nowait(wq) == "a"
    drain = BackgroundCall(wq.shut_down_with_drain, 5.0)
    assert clock.wait_for_waiters(1)
    clock.advance(4.0)
    assert clock.wait_for_waiters(1)
    assert drain.is_alive()
    clock.advance(1.0)
    assert drain.outcome() is False
    wq.done("a")  # still allowed after the drain gave up
    assert wq.shut_down_with_drain(timeout=0) is True


def test_shut_down_with_drain_without_work_returns_at_once(wq: WorkQueue[str]) -> None:
    wq.add("queued")  # queued but not handed out: not waited for
    assert wq.shut_down_with_drain() is True
    assert wq.get() == "queued"


def test_shut_down_ends_a_drain_in_progress(wq: WorkQueue[str], clock: FakeClock) -> None:
    wq.add("a")
    assert get_nowait(wq) == "a"
    drain = BackgroundCall(wq.shut_down_with_drain, 60.0)
    assert clock.wait_for_waiters(1)
    wq.shut_down()
    assert drain.outcome() is False
    assert clock.now() == 0.0  # ended by shut_down(), not by its timeout
    wq.done("a")


# ---------------------------------------------------------------------------------------------
# Metrics hook
# ---------------------------------------------------------------------------------------------


def test_metrics_receive_adds_gets_and_dones_with_durations(clock: FakeClock) -> None:
    metrics = RecordingMetrics()
    q: WorkQueue[str] = WorkQueue("pods", clock=clock, metrics=metrics)
    assert metrics.bound == ("pods", q)

    q.add("a")
    q.add("a")  # dedup: not an add
    clock.advance(2.0)
    q.add("b")
    clock.advance(1.0)
    assert get_nowait(q) == "a"  # waited 3 s
    clock.advance(0.5)
    q.add("a")  # while processing: accepted (queued again after done)
    clock.advance(4.0)
    q.done("a")  # processed 4.5 s
    assert get_nowait(q) == "b"  # waited 5.5 s
    assert get_nowait(q) == "a"  # waited 4 s since its re-add
    clock.advance(0.25)
    q.done("a")
    q.done("b")

    assert metrics.calls == [
        ("add", "a"),
        ("add", "b"),
        ("get", "a", 3.0),
        ("add", "a"),
        ("done", "a", 4.5),
        ("get", "b", 5.5),
        ("get", "a", 4.0),
        ("done", "a", 0.25),
        ("done", "b", 0.25),
    ]


def test_metrics_gauges_measure_items_being_processed(clock: FakeClock) -> None:
    q: WorkQueue[str] = WorkQueue("pods", clock=clock, metrics=RecordingMetrics())
    assert q.unfinished_work_seconds() == 0.0
    assert q.longest_running_processor_seconds() == 0.0
    q.add("a")
    q.add("b")
    q.add("c")
    get_nowait(q)
    clock.advance(3.0)
    get_nowait(q)
    clock.advance(1.0)
    assert len(q) == 1  # depth
    assert q.unfinished_work_seconds() == 5.0  # 4 + 1
    assert q.longest_running_processor_seconds() == 4.0
    q.done("a")
    assert q.unfinished_work_seconds() == 1.0
    assert q.longest_running_processor_seconds() == 1.0


def test_without_metrics_the_gauges_are_zero(wq: WorkQueue[str], clock: FakeClock) -> None:
    wq.add("a")
    get_nowait(wq)
    clock.advance(3.0)
    assert wq.unfinished_work_seconds() == 0.0
    assert wq.longest_running_processor_seconds() == 0.0


def test_add_all_keeps_order_and_the_dedup_rule() -> None:
    q: WorkQueue[str] = WorkQueue("batch")
    q.add("b")
    q.add_all(["a", "b", "c", "a"])
    assert [q.get() for _ in range(3)] == ["b", "a", "c"]
    assert len(q) == 0


def test_done_and_get_marks_done_requeues_a_dirty_item_and_hands_out_the_next() -> None:
    q: WorkQueue[str] = WorkQueue("loop")
    q.add_all(["a", "b"])
    first = q.get()
    q.add("a")  # added while processing: queued again when done
    assert q.done_and_get(first) == "b"
    assert q.done_and_get("b") == "a"
    with pytest.raises(ValueError, match="not being processed"):
        q.done_and_get("b")
    q.shut_down()
    with pytest.raises(ShutDown):
        q.done_and_get("a")  # done, then nothing left: shut down
    assert q.unfinished_work_seconds() == 0.0 and len(q) == 0
