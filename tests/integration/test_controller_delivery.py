"""The delivery contract (docs/architecture.md), clause by clause, against the simulator."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Mapping
from datetime import timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from faro import MatchedEvent
from faro.testing import SimulatedCluster
from tests.integration.controller_helpers import Controllers, Events, controllers, faro_threads
from tests.integration.helpers import DEADLINE, configmap, eventually

__all__ = ["controllers"]

WATCH_DEFAULT = {"namespaces": [{"name_selector": "default",
                                 "resources": {"v1/configmaps": {}}}]}


def sample(metric: Controllers | Any, name: str, labels: Mapping[str, str] | None = None
           ) -> float:
    value = metric.metrics.registry.get_sample_value(name, dict(labels or {}))
    return 0.0 if value is None else float(value)


# ------------------------------------------------------------ 1, 2, 4: every event, in order


def test_each_change_reaches_every_handler_in_order_with_its_object(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    first, second = Events("first"), Events("second")
    controllers.make(WATCH_DEFAULT, first, second)
    created = cluster.create(configmap("app", labels={"tier": "web"}, data={"v": "1"}))
    cluster.patch("v1", "ConfigMap", "app", {"data": {"v": "2"},
                                             "metadata": {"annotations": {"note": "x"}}},
                  namespace="default")
    cluster.delete("v1", "ConfigMap", "app", namespace="default")
    for events in (first, second):
        added, updated, deleted = events.wait_key("default/app", "ADDED", "UPDATED", "DELETED")
        assert (added.event_type, updated.event_type, deleted.event_type) == \
            ("ADDED", "UPDATED", "DELETED")
        assert added.object["data"] == {"v": "1"} and updated.object["data"] == {"v": "2"}
        assert updated.old_object is not None and updated.old_object["data"] == {"v": "1"}
        assert int(added.resource_version) < int(updated.resource_version) < \
            int(deleted.resource_version)
        # The delete carries the last known state: uid, labels, annotations.
        assert deleted.uid == created["metadata"]["uid"] == added.uid
        assert deleted.labels == {"tier": "web"}
        assert deleted.annotations == {"note": "x"}
        assert deleted.object["data"] == {"v": "2"}
        for event in (added, updated, deleted):
            assert event.gvr == "v1/configmaps" and event.key == "default/app"
            assert event.name == "app" and event.namespace == "default"
            assert event.timestamp.tzinfo == timezone.utc
            assert not event.is_initial and not event.final_state_unknown
            assert event.config.source == "namespaces[0].resources[v1/configmaps]"


def test_objects_present_at_start_arrive_as_initial_adds_before_ready(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    for i in range(5):
        cluster.create(configmap(f"old-{i}"))
    events = Events()
    ready_seen: list[int] = []
    controller = controllers.make(WATCH_DEFAULT, events, start=False)
    controller.set_ready_callback(lambda: ready_seen.append(controller.pending_events()
                                                           + len(events.events)))
    controller.start()
    assert controller.wait_until_ready(DEADLINE)
    events.wait_for(lambda e: len(e) == 5)
    assert all(e.is_initial and e.event_type == "ADDED" for e in events.events)
    # The callback ran once, after the five initial events were queued (or delivered).
    assert len(ready_seen) == 1 and ready_seen[0] >= 5
    cluster.create(configmap("new"))
    (new,) = events.wait_key("default/new", "ADDED")
    assert not new.is_initial
    assert len(ready_seen) == 1


def test_no_event_is_lost_while_the_object_is_busy(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    """Events of an object that is queued or being handled wait in its buffer, none merged."""
    gate = threading.Event()
    entered = threading.Event()

    class Gate:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def on_matched(self, event: MatchedEvent) -> None:
            if event.name == "busy" and event.event_type == "ADDED":
                entered.set()
                assert gate.wait(DEADLINE)
            self.seen.append(f"{event.event_type.value}@{event.object['data']['n']}")

    handler = Gate()
    controller = controllers.make(WATCH_DEFAULT, handler)
    cluster.create(configmap("busy", data={"n": "0"}))
    assert entered.wait(DEADLINE)
    for n in range(1, 21):  # all while the ADDED is being handled
        cluster.patch("v1", "ConfigMap", "busy", {"data": {"n": str(n)}}, namespace="default")
    # The informer queues the 20 updates behind the ADDED.
    eventually(lambda: controller.pending_events() == 21)
    gate.set()
    eventually(lambda: len(handler.seen) == 21)
    assert handler.seen == ["ADDED@0", *[f"UPDATED@{n}" for n in range(1, 21)]]


# ----------------------------------------------------------------- 3: one worker per object


def test_one_object_is_never_handled_by_two_workers_at_once(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    active: set[str] = set()
    overlaps: list[str] = []
    order: dict[str, list[int]] = {}
    lock = threading.Lock()
    done = threading.Condition(lock)

    def handler(event: MatchedEvent) -> None:
        with lock:
            if event.key in active:
                overlaps.append(event.key)
            active.add(event.key)
        # Some real work, so that workers overlap in time.
        sum(i * i for i in range(2000))
        with lock:
            active.discard(event.key)
            order.setdefault(event.key, []).append(int(event.resource_version))
            done.notify_all()

    controllers.make(WATCH_DEFAULT, handler, workers=4)
    names = [f"obj-{i}" for i in range(6)]
    for name in names:
        cluster.create(configmap(name, data={"n": "0"}))
    for n in range(1, 15):
        for name in names:
            cluster.patch("v1", "ConfigMap", name, {"data": {"n": str(n)}},
                          namespace="default")
    with lock:
        assert done.wait_for(lambda: sum(len(v) for v in order.values()) == 6 * 15, DEADLINE)
    assert overlaps == []
    for name in names:
        rvs = order[f"default/{name}"]
        assert rvs == sorted(rvs) and len(set(rvs)) == 15


# ------------------------------------------------------------------ 5: retries, per handler


def test_a_failing_handler_is_retried_alone_and_later_events_wait(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    attempts: dict[str, int] = {}

    def flaky_fail(event: MatchedEvent) -> bool:
        if event.event_type != "ADDED":
            return False
        attempts[event.key] = attempts.get(event.key, 0) + 1
        return attempts[event.key] <= 2

    flaky, steady = Events("flaky", fail=flaky_fail), Events("steady")
    controller = controllers.make(WATCH_DEFAULT, flaky, steady)
    cluster.create(configmap("retry", data={"v": "1"}))
    cluster.patch("v1", "ConfigMap", "retry", {"data": {"v": "2"}}, namespace="default")
    flaky.wait_key("default/retry", "ADDED", "UPDATED")
    steady.wait_key("default/retry", "ADDED", "UPDATED")
    # flaky: called 3 times for the ADDED (2 failures, then success), once for the UPDATED.
    assert [c.event_type.value for c in flaky.calls] == ["ADDED"] * 3 + ["UPDATED"]
    # steady succeeded the first time: called once per event, never again for the ADDED.
    assert [c.event_type.value for c in steady.calls] == ["ADDED", "UPDATED"]
    # The UPDATED waited behind the ADDED's retries for flaky.
    assert flaky.calls[-1].old_object is not None
    assert sample(controller, "faro_handler_errors_total") == 2
    assert sample(controller, "faro_events_given_up_total") == 0


def test_a_handler_that_keeps_failing_gives_up_with_an_error_and_others_flow(
        cluster: SimulatedCluster, controllers: Controllers,
        caplog: pytest.LogCaptureFixture) -> None:
    broken = Events("broken", fail=lambda e: e.name == "poison")
    steady = Events("steady")
    caplog.set_level(logging.WARNING, logger="faro")
    controller = controllers.make(WATCH_DEFAULT, broken, steady, max_retries=2)
    cluster.create(configmap("poison"))
    cluster.patch("v1", "ConfigMap", "poison", {"data": {"v": "2"}}, namespace="default")
    cluster.create(configmap("fine"))
    broken.wait_key("default/fine", "ADDED")
    steady.wait_key("default/poison", "ADDED", "UPDATED")
    # Every poison event: the first try plus max_retries=2 retries, then given up.
    calls = broken.wait_calls(lambda c: sum(e.name == "poison" for e in c) == 6)
    assert [c.event_type.value for c in calls if c.name == "poison"] == \
        ["ADDED"] * 3 + ["UPDATED"] * 3
    eventually(lambda: sample(controller, "faro_events_given_up_total") == 2)
    gave_up = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(gave_up) == 2
    message = gave_up[0].getMessage()
    assert "Events" in message and "ADDED v1/configmaps default/poison" in message
    assert "RuntimeError: broken refuses ADDED default/poison" in message
    assert "after 3 attempts" in message
    assert sample(controller, "faro_events_given_up_total") == 2
    assert sample(controller, "faro_handler_errors_total") == 6


# ---------------------------------------------------------------------------- 6: middlewares


def test_a_middleware_edits_the_object_every_handler_and_later_middleware_sees(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    events = Events()
    seen_by_second: list[Mapping[str, Any]] = []

    class Redact:
        calls = 0

        def process_before_json(self, event: MatchedEvent) -> tuple[Mapping[str, Any], bool]:
            Redact.calls += 1
            return {**event.object, "data": {"secret": "<redacted>"}}, True

    def second(event: MatchedEvent) -> tuple[Mapping[str, Any], bool]:
        seen_by_second.append(event.object)
        return event.object, True

    controller = controllers.make(WATCH_DEFAULT, events, Events("other"), start=False)
    controller.add_json_middleware(Redact())
    controller.add_json_middleware(second)
    controller.start()
    original = cluster.create(configmap("keys", data={"secret": "hunter2"}))
    (event,) = events.wait_key("default/keys", "ADDED")
    assert event.object["data"] == {"secret": "<redacted>"}
    assert event.uid == original["metadata"]["uid"]
    assert seen_by_second[0]["data"] == {"secret": "<redacted>"}
    assert Redact.calls == 1  # once per event, not once per handler


def test_a_middleware_that_skips_drops_the_event_for_every_handler(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    events = Events()
    controller = controllers.make(WATCH_DEFAULT, events, start=False)
    controller.add_json_middleware(
        lambda event: (event.object, not event.name.startswith("skip-")))
    controller.start()
    cluster.create(configmap("skip-me"))
    cluster.create(configmap("keep-me"))
    events.wait_key("default/keep-me", "ADDED")
    assert events.seen_keys() == {"default/keep-me"}
    assert sample(controller, "faro_events_dropped_total") == 1


def test_a_middleware_returning_garbage_is_named_and_given_up(
        cluster: SimulatedCluster, controllers: Controllers,
        caplog: pytest.LogCaptureFixture) -> None:
    events = Events()
    caplog.set_level(logging.WARNING, logger="faro")
    controller = controllers.make(WATCH_DEFAULT, events, start=False, max_retries=1)

    def bad_middleware(event: MatchedEvent) -> Any:
        return event.object if event.name == "odd" else (event.object, True)

    controller.add_json_middleware(bad_middleware)
    controller.start()
    cluster.create(configmap("odd"))
    cluster.create(configmap("even"))
    events.wait_key("default/even", "ADDED")
    eventually(lambda: sample(controller, "faro_events_given_up_total") == 1)
    assert events.seen_keys() == {"default/even"}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("bad_middleware" in m and "expected a tuple (object, keep)" in m for m in errors)


# ----------------------------------------------------------------- 7: slow handlers, 8: stop


def test_a_blocked_handler_holds_only_its_worker(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    release = threading.Event()
    blocked = threading.Event()
    events = Events()

    def blocking(event: MatchedEvent) -> None:
        if event.name == "stuck":
            blocked.set()
            release.wait(DEADLINE)
        events.on_matched(event)

    controllers.make(WATCH_DEFAULT, blocking, workers=3)
    try:
        cluster.create(configmap("stuck"))
        assert blocked.wait(DEADLINE)
        for i in range(30):
            cluster.create(configmap(f"flowing-{i}"))
        events.wait_for(lambda e: len(e) == 30)
        assert "default/stuck" not in events.seen_keys()
    finally:
        release.set()
    events.wait_key("default/stuck", "ADDED")


def test_stop_with_a_blocked_handler_returns_in_time_and_names_it(
        cluster: SimulatedCluster, controllers: Controllers,
        caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    blocked = threading.Event()

    class Stubborn:
        def on_matched(self, event: MatchedEvent) -> None:
            blocked.set()
            release.wait(DEADLINE * 3)

    controller = controllers.make(WATCH_DEFAULT, Stubborn())
    cluster.create(configmap("stuck"))
    assert blocked.wait(DEADLINE)
    caplog.set_level(logging.ERROR, logger="faro")
    started = time.monotonic()
    try:
        assert controller.stop(timeout=0.5) is False
        assert time.monotonic() - started < 2.0
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any("Stubborn" in m and "v1/configmaps default/stuck" in m for m in errors)
    finally:
        release.set()
    assert controller.stop(DEADLINE) is True  # idempotent; now everything ends


def test_stop_delivers_what_was_queued_and_leaves_no_thread(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    gate = threading.Event()
    events = Events()

    def slow(event: MatchedEvent) -> None:
        gate.wait(DEADLINE)
        events.on_matched(event)

    before = set(faro_threads())
    controller = controllers.make(WATCH_DEFAULT, slow, workers=1)
    for i in range(10):
        cluster.create(configmap(f"q-{i}"))
    eventually(lambda: controller.pending_events() == 10)
    stopper = threading.Thread(target=controller.stop, name="test-stopper")
    stopper.start()
    gate.set()
    stopper.join(DEADLINE)
    assert not stopper.is_alive()
    assert len(events.events) == 10
    assert set(faro_threads()) <= before


def test_a_handler_may_stop_its_own_controller(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    results: list[bool] = []
    controller = controllers.make(WATCH_DEFAULT, lambda e: results.append(controller.stop(5)))
    cluster.create(configmap("bye"))
    eventually(lambda: results)
    assert results == [True]
    assert not controller.is_ready()


# ------------------------------------------------------------------- the JSON event export


def test_the_json_export_writes_each_event_once_after_the_middlewares(
        cluster: SimulatedCluster, controllers: Controllers, tmp_path: Path) -> None:
    attempts: dict[str, int] = {}

    def fail_first_two_adds(event: MatchedEvent) -> bool:
        if event.event_type != "ADDED":
            return False
        attempts[event.key] = attempts.get(event.key, 0) + 1
        return attempts[event.key] <= 2

    flaky = Events("flaky", fail=fail_first_two_adds)
    controller = controllers.make(
        {**WATCH_DEFAULT, "json_export": True, "output_dir": str(tmp_path)}, flaky,
        start=False)
    controller.add_json_middleware(lambda event: (
        {**event.object, "metadata": {**event.object["metadata"], "labels": {"seen": "yes"}}},
        not event.name.startswith("skip-")))
    controller.start()
    assert controller.wait_until_ready(DEADLINE)
    path = controller.events_file
    assert path is not None and path.parent == tmp_path and path.name.startswith("events-")
    created = cluster.create(configmap("app", labels={"tier": "web"}))
    cluster.create(configmap("skip-me"))
    for version in range(2, 6):
        cluster.patch("v1", "ConfigMap", "app", {"data": {"v": str(version)}},
                      namespace="default")
    cluster.delete("v1", "ConfigMap", "app", namespace="default")
    flaky.wait_key("default/app", "ADDED", *["UPDATED"] * 4, "DELETED")
    assert controller.stop(DEADLINE)
    assert controller.events_file == path

    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    # The ADDED was handled three times (two failures) but written once; every line carries
    # the middleware's object; the dropped object has no line.
    assert [line["eventType"] for line in lines] == ["ADDED"] + ["UPDATED"] * 4 + ["DELETED"]
    assert [int(line["resourceVersion"]) for line in lines] == \
        sorted(int(line["resourceVersion"]) for line in lines)
    assert {line["uid"] for line in lines} == {created["metadata"]["uid"]}
    assert all(line["labels"] == {"seen": "yes"} and line["name"] == "app" and
               line["namespace"] == "default" and line["gvr"] == "v1/configmaps"
               for line in lines)
    assert attempts["default/app"] == 3


def test_an_export_failure_is_counted_and_the_handlers_still_get_the_event(
        cluster: SimulatedCluster, controllers: Controllers, tmp_path: Path) -> None:
    events = Events()
    out = tmp_path / "out"
    controller = controllers.make(
        {**WATCH_DEFAULT, "json_export": True, "output_dir": str(out)}, events)
    path = controller.events_file
    assert path is not None
    cluster.create(configmap("before"))
    events.wait_key("default/before", "ADDED")
    eventually(lambda: b'"before"' in path.read_bytes())  # written within the flush interval
    # The directory becomes a regular file: the event file can be neither found nor made.
    shutil.rmtree(out)
    out.write_bytes(b"in the way\n")
    cluster.create(configmap("lost"))
    events.wait_key("default/lost", "ADDED")  # delivered all the same
    eventually(lambda: sample(controller, "faro_export_errors_total") == 1)
    out.unlink()
    cluster.create(configmap("after"))
    events.wait_key("default/after", "ADDED")
    assert controller.stop(DEADLINE)
    assert [orjson.loads(line)["name"] for line in path.read_bytes().splitlines()] == ["after"]
    assert sample(controller, "faro_export_errors_total") == 1


# ------------------------------------------------------------------------------ 9: batches


def test_a_burst_in_batches_is_delivered_whole_and_leaves_nothing_counted_pending(
        cluster: SimulatedCluster, controllers: Controllers) -> None:
    for i in range(300):  # the first list: one page, one batch
        cluster.create(configmap(f"listed-{i:03d}"))
    events = Events()
    controller = controllers.make(WATCH_DEFAULT, events, workers=3)
    for i in range(200):  # watch reads: batches of whatever each read brings
        cluster.create(configmap(f"watched-{i:03d}"))
    events.wait_for(lambda e: len(e) >= 500)
    keys = [event.key for event in events.events]
    assert len(keys) == len(set(keys)) == 500
    assert sum(event.is_initial for event in events.events) == 300
    # Workers settle what they delivered once idle: nothing stays counted as pending.
    eventually(lambda: sample(controller, "faro_events_total",
                              {"gvr": "v1/configmaps", "event_type": "ADDED"}) == 500)
    eventually(lambda: controller.pending_events() == 0
               and sample(controller, "faro_pending_events") == 0)
