"""Helpers for the controller tests: a recording handler and a controller factory.

``Events`` records every MatchedEvent it is given (under a lock, with a
condition, so tests wait for what they expect with a deadline). ``Controllers``
builds controllers against the simulated cluster, starts them, and stops every
one at the end of the test, failing the test if a thread is left behind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from faro import Config, Controller, KubernetesClient, MatchedEvent
from faro.testing import SimulatedCluster
from tests.integration.helpers import DEADLINE


class Events:
    """A handler (``on_matched``) that records events; ``wait_for`` waits on them.

    ``fail`` (a predicate on the event) makes the call raise after recording it,
    so ``calls`` counts attempts while ``events`` keeps only the successful ones.
    """

    def __init__(self, name: str = "events",
                 fail: Callable[[MatchedEvent], bool] | None = None) -> None:
        self.name = name
        self._fail = fail
        self._lock = threading.Condition()
        self.events: list[MatchedEvent] = []
        self.calls: list[MatchedEvent] = []
        self.threads: list[str] = []

    def on_matched(self, event: MatchedEvent) -> None:
        with self._lock:
            self.calls.append(event)
            self._lock.notify_all()
        if self._fail is not None and self._fail(event):
            raise RuntimeError(f"{self.name} refuses {event.event_type} {event.key}")
        with self._lock:
            self.events.append(event)
            self.threads.append(threading.current_thread().name)
            self._lock.notify_all()

    def __repr__(self) -> str:
        return f"<Events {self.name}>"

    def wait_for(self, predicate: Callable[[list[MatchedEvent]], object],
                 timeout: float = DEADLINE, what: str = "") -> list[MatchedEvent]:
        with self._lock:
            if not self._lock.wait_for(lambda: predicate(self.events), timeout):
                raise AssertionError(f"{self.name}: {what or 'condition'} not met within "
                                     f"{timeout}s; got {summary(self.events)}")
            return list(self.events)

    def wait_calls(self, predicate: Callable[[list[MatchedEvent]], object],
                   timeout: float = DEADLINE) -> list[MatchedEvent]:
        with self._lock:
            if not self._lock.wait_for(lambda: predicate(self.calls), timeout):
                raise AssertionError(f"{self.name}: calls not as expected within {timeout}s; "
                                     f"got {summary(self.calls)}")
            return list(self.calls)

    def wait_key(self, key: str, *types: str, gvr: str | None = None,
                 timeout: float = DEADLINE) -> list[MatchedEvent]:
        """Wait until ``key``'s events end with ``types``; returns that key's events."""
        def done(events: list[MatchedEvent]) -> bool:
            mine = [e.event_type.value for e in events
                    if e.key == key and (gvr is None or e.gvr == gvr)]
            return mine[-len(types):] == list(types)
        self.wait_for(done, timeout, f"{key} ending with {types}")
        return self.of(key, gvr)

    def of(self, key: str, gvr: str | None = None) -> list[MatchedEvent]:
        with self._lock:
            return [e for e in self.events if e.key == key and (gvr is None or e.gvr == gvr)]

    def seen_keys(self) -> set[str]:
        with self._lock:
            return {e.key for e in self.events}


def summary(events: list[MatchedEvent]) -> list[str]:
    return [f"{e.event_type.value} {e.gvr} {e.key}@{e.resource_version}" for e in events[-20:]]


def faro_threads() -> list[str]:
    """Names of live threads that faro started (informers, workers, queue, controller)."""
    return sorted(t.name for t in threading.enumerate()
                  if t.name.startswith(("faro", "test-")) and t.is_alive())


class Controllers:
    """Makes controllers for one test; stops them all at its end."""

    def __init__(self, cluster: SimulatedCluster) -> None:
        self.cluster = cluster
        self.made: list[Controller] = []

    def make(self, config: Mapping[str, Any] | str | Config, *handlers: object,
             start: bool = True, name: str = "test", **settings: Any) -> Controller:
        if isinstance(config, str):
            config = Config.from_yaml(config)
        elif not isinstance(config, Config):
            config = Config.from_dict({**config, **settings})
        controller = Controller(KubernetesClient(self.cluster.api_client), config, name=name)
        for handler in handlers:
            controller.add_event_handler(handler)  # type: ignore[arg-type]
        self.made.append(controller)
        if start:
            controller.start()
            assert controller.wait_until_ready(DEADLINE), "controller not ready"
        return controller

    def stop_all(self) -> None:
        for controller in self.made:
            assert controller.stop(DEADLINE), f"{controller!r} did not stop in time"


@pytest.fixture
def controllers(cluster: SimulatedCluster) -> Iterator[Controllers]:
    made = Controllers(cluster)
    yield made
    made.stop_all()
