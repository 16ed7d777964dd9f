"""Poison events: a watch event the informer cannot use (nested deeper than the JSON decoder
allows, without metadata, of an unknown type, not an object) is skipped, logged once with
its resource and resourceVersion, counted (``health().decode_errors``), and followed by a
relist, so the store converges and the informer never loops on it.

The simulator's ``corrupt_watch_events`` sends every watch event about one object as the
test's bytes, on every watch that covers the change: as a server holding an object its
client cannot decode would. Re-watching from before the event gets it again; only a relist
moves past it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator

import pytest

from faro.cache import SharedInformer
from faro.testing import SimulatedCluster
from tests.integration.helpers import configmap, eventually
from tests.integration.informer_helpers import (
    Changes,
    Informers,
    Recorder,
    assert_in_sync,
    fence,
    informer_threads,
    informers,
    replay,
    rv_of,
)

DEPTH = 5000
"""Nesting deeper than orjson decodes (1024) and than Python's recursion limit."""


def deep(line: bytes) -> bytes:
    """The event with a field nested ``DEPTH`` levels deep added to its object."""
    assert line.endswith(b"}}")
    return line[:-2] + b',"deep":' + b"[" * DEPTH + b"]" * DEPTH + b"}}"


def no_metadata(line: bytes) -> bytes:
    return b'{"type":"MODIFIED","object":{"apiVersion":"v1","kind":"ConfigMap","data":{}}}'


def unknown_type(line: bytes) -> bytes:
    return re.sub(rb'^\{"type":"[A-Z]+"', b'{"type":"PATCHED"', line)


def not_an_object(line: bytes) -> bytes:
    return b'{"type":"ADDED","object":["not","an","object"]}'


def no_name(line: bytes) -> bytes:
    return line.replace(b'"name":"poison"', b'"generateName":"poison-"')


POISONS: dict[str, Callable[[bytes], bytes]] = {
    "nested-too-deep": deep, "no-metadata": no_metadata, "unknown-type": unknown_type,
    "not-an-object": not_an_object, "no-name": no_name}

RV_KNOWN = {"nested-too-deep", "unknown-type", "no-name"}
"""The poisons whose line still says its resourceVersion (the log line names it)."""


@pytest.fixture
def make(cluster: SimulatedCluster) -> Iterator[Informers]:
    with informers(cluster) as factory:
        yield factory
    assert informer_threads() == []


def poison_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "faro.cache.reflector" and "cannot be decoded" in r.getMessage()]


@pytest.mark.parametrize("poison", list(POISONS))
def test_a_poison_event_is_skipped_counted_logged_once_and_relisted(
        cluster: SimulatedCluster, make: Informers, caplog: pytest.LogCaptureFixture,
        poison: str) -> None:
    caplog.set_level(logging.INFO, logger="faro.cache.reflector")
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder)
    changes = Changes(cluster)
    fence(recorder, changes, "before")
    cluster.corrupt_watch_events("poison", POISONS[poison])

    created = changes.create(configmap("poison", data={"v": "1"}))
    # The event after the poison arrives: the informer moved past it (today it re-watched
    # from before the poison, got it again, and again, and never saw this one).
    fence(recorder, changes, "after")
    final = assert_in_sync(informer, cluster, reached=changes.last_rv())
    notes = recorder.notes
    assert replay(notes) == final
    # The relist reported the object the poison event was about.
    added = [n for n in notes if n.key == "default/poison"]
    assert [(n.kind, n.rv, n.flag) for n in added] == [("add", rv_of(created), False)]
    # The relist ended the run of failures (just after it delivered "after").
    eventually(lambda: informer.health().consecutive_failures == 0)
    health = informer.health()
    assert health.decode_errors == 1, health
    assert health.relists == {"decode_error": 1}, health
    assert health.watch_restarts.get("decode_error") == 1, health
    assert health.failing_since is None, health
    logged = poison_logs(caplog)
    assert len(logged) == 1, [r.getMessage() for r in logged]
    message = logged[0].getMessage()
    assert "v1/configmaps@default" in message, message
    if poison in RV_KNOWN:
        assert f"resourceVersion {rv_of(created)}" in message, message
    else:
        assert "resourceVersion unknown" in message, message

    # Each later poisoned change: one more decode error and one more relist, never a loop.
    changes.update("poison", "default", {"v": "2"})
    fence(recorder, changes, "later")
    assert_in_sync(informer, cluster, reached=changes.last_rv())
    health = informer.health()
    assert (health.decode_errors, health.relists) == (2, {"decode_error": 2}), health
    assert len(poison_logs(caplog)) == 2
    update = [n for n in recorder.notes if n.key == "default/poison"][-1]
    assert update.kind == "update" and update.obj["data"] == {"v": "2"}


def test_a_poison_event_among_others_keeps_the_events_before_and_after_it(
        cluster: SimulatedCluster, make: Informers) -> None:
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder)
    changes = Changes(cluster)
    fence(recorder, changes, "fence")
    cluster.corrupt_watch_events("poison", deep)
    with cluster.hold_watches():
        cluster.drop_watches()
        assert cluster.wait_for_held_watches(1)
        # One replay: events before the poison, the poison, events after it.
        for i in range(5):
            changes.create(configmap(f"a-{i}"))
        changes.create(configmap("poison"))
        for i in range(5):
            changes.create(configmap(f"b-{i}"))
    final = assert_in_sync(informer, cluster, reached=changes.last_rv())
    assert replay(recorder.notes) == final
    health = informer.health()
    assert health.decode_errors == 1 and health.relists == {"decode_error": 1}, health


def test_a_deleted_poison_object_leaves_the_store(cluster: SimulatedCluster,
                                                  make: Informers) -> None:
    cluster.create(configmap("poison"))
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder)
    changes = Changes(cluster)
    fence(recorder, changes, "fence")
    cluster.corrupt_watch_events("poison", no_metadata)
    changes.delete("poison", "default")
    fence(recorder, changes, "after")
    final = assert_in_sync(informer, cluster, reached=changes.last_rv())
    assert "default/poison" not in final
    gone = recorder.for_key("default/poison")[-1]
    assert (gone.kind, gone.flag) == ("delete", True)  # reported by the relist
    assert informer.health().decode_errors == 1


def test_the_decode_error_count_is_per_informer(cluster: SimulatedCluster,
                                                make: Informers) -> None:
    """An informer that never sees the poison does not count it."""
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    recorder = Recorder()
    poisoned = make.started(namespace="default", recorder=recorder)
    other_recorder = Recorder()
    other: SharedInformer = make.started(namespace="other", recorder=other_recorder)
    cluster.corrupt_watch_events("poison", unknown_type)
    changes = Changes(cluster)
    changes.create(configmap("poison"))
    fence(recorder, changes, "after")
    fence(other_recorder, changes, "after", namespace="other")
    assert poisoned.health().decode_errors == 1
    assert other.health().decode_errors == 0
