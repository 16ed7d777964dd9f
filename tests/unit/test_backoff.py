"""Reflector backoff: client-go's numbers, jitter, reset after a quiet period, Retry-After."""

from __future__ import annotations

import threading

import pytest
import tenacity

from faro.cache import Backoff
from faro.clock import ClockEvent
from faro.errors import ApiStatusError
from faro.testing import FakeClock


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_client_go_defaults_double_from_800ms_to_30s_without_jitter() -> None:
    clock = Clock()
    wait = Backoff(jitter=0.0).wait_strategy(clock=clock)
    delays = []
    for _ in range(8):
        delays.append(wait.next_delay())
        clock.now += 1
    assert delays == [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]


def test_jitter_adds_up_to_jitter_times_the_delay() -> None:
    wait = Backoff().wait_strategy(rng=lambda: 1.0)
    assert wait.next_delay() == pytest.approx(1.6)
    wait = Backoff(jitter=0.5).wait_strategy(rng=lambda: 0.5)
    assert wait.next_delay() == pytest.approx(0.8 * 1.25)


def test_a_failure_after_two_quiet_minutes_starts_over() -> None:
    clock = Clock()
    wait = Backoff(jitter=0.0).wait_strategy(clock=clock)
    for _ in range(4):
        wait.next_delay()
        clock.now += 10
    assert wait.next_delay() == 12.8
    clock.now += 119
    assert wait.next_delay() == 25.6
    clock.now += 121
    assert wait.next_delay() == 0.8


def test_a_faro_clock_dates_the_failures() -> None:
    clock = FakeClock()
    wait = Backoff(jitter=0.0).wait_strategy(clock=clock)
    assert [wait.next_delay() for _ in range(3)] == [0.8, 1.6, 3.2]
    clock.advance(120)  # not more than two quiet minutes
    assert wait.next_delay() == 6.4
    clock.advance(120.5)
    assert wait.next_delay() == 0.8


def test_the_informers_sleep_waits_on_the_clock_and_stop_cuts_it_short() -> None:
    clock = FakeClock()
    stop = ClockEvent(clock)  # what an informer's tenacity loop sleeps on
    woke: list[bool] = []
    sleeper = threading.Thread(target=lambda: woke.append(stop.wait(30.0)), daemon=True)
    sleeper.start()
    assert clock.wait_for_waiters(1)
    clock.advance(29.0)  # not yet: it waits again for the rest
    assert clock.wait_for_waiters(1)
    assert woke == []
    clock.advance(1.0)
    sleeper.join(10.0)
    assert woke == [False]  # the time ran out
    sleeper = threading.Thread(target=lambda: woke.append(stop.wait(30.0)), daemon=True)
    sleeper.start()
    assert clock.wait_for_waiters(1)
    stop.set()  # stop(): no time has to pass
    sleeper.join(10.0)
    assert woke == [False, True]
    assert stop.wait(30.0) and stop.is_set()  # set: returns at once


def test_retry_after_is_honoured_and_capped() -> None:
    wait = Backoff(jitter=0.0, max_retry_after=60).wait_strategy()
    assert wait.next_delay(retry_after=7) == 7
    assert wait.next_delay(retry_after=3600) == 60


def test_as_tenacity_wait_strategy_reads_retry_after_from_the_error() -> None:
    waits: list[float] = []
    attempts = iter([ApiStatusError(429, "TooManyRequests", retry_after=2.0),
                     ApiStatusError(500, "InternalError")])

    def call() -> str:
        error = next(attempts, None)
        if error is not None:
            raise error
        return "ok"

    retrying = tenacity.Retrying(wait=Backoff(jitter=0.0).wait_strategy(), sleep=waits.append)
    assert retrying(call) == "ok"
    assert waits == [2.0, 1.6]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"initial": -1}, "Backoff.initial must not be negative"),
    ({"factor": 0.5}, "Backoff.factor must be at least 1"),
    ({"initial": 5, "maximum": 1}, r"Backoff.maximum \(1\) is less than Backoff.initial \(5\)"),
])
def test_bad_parameters_name_the_parameter(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(**kwargs)
