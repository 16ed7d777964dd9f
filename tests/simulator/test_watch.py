"""Watch through raw HTTP: start points, history, bookmarks, selectors and the wire format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from faro.testing import FakeClock, SimulatedCluster
from tests.integration.helpers import (
    ChunkedWatch,
    RawClient,
    assert_status,
    configmap,
    create_configmap,
    sim_client,
)

CM = "/api/v1/namespaces/default/configmaps"
MERGE = "application/merge-patch+json"


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def summary(events: list[Any]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"]["name"]) for e in events]


# -------------------------------------------------------------------------------- start points


@pytest.mark.parametrize("start", [None, "0"])
def test_watch_without_a_resource_version_replays_the_state_then_follows(
        api: RawClient, start: str | None) -> None:
    a = create_configmap(api, configmap("a", data={"v": "1"}))
    api.patch(f"{CM}/a", {"data": {"v": "2"}}, MERGE)
    create_configmap(api, configmap("b"))
    create_configmap(api, configmap("gone"))
    api.delete(f"{CM}/gone")
    watch = api.watch(CM, resourceVersion=start)
    assert watch.status == 200
    initial = watch.take(2)
    assert sorted(summary(initial)) == [("ADDED", "a"), ("ADDED", "b")]
    current_a = next(e["object"] for e in initial if e["object"]["metadata"]["name"] == "a")
    assert current_a["data"] == {"v": "2"} and rv(current_a) > rv(a)
    assert current_a["kind"] == "ConfigMap" and current_a["apiVersion"] == "v1"
    create_configmap(api, configmap("c"))
    assert summary([watch.next()]) == [("ADDED", "c")]


def test_watch_from_a_resource_version_delivers_exactly_the_later_changes_in_order(
        api: RawClient) -> None:
    create_configmap(api, configmap("before"))
    start = create_configmap(api, configmap("a", data={"v": "1"}))
    changes = [
        api.patch(f"{CM}/a", {"data": {"v": "2"}}, MERGE).json(),
        create_configmap(api, configmap("b")),
        api.patch(f"{CM}/b", {"metadata": {"labels": {"x": "y"}}}, MERGE).json(),
    ]
    api.delete(f"{CM}/a")
    watch = api.watch(CM, resourceVersion=start["metadata"]["resourceVersion"])
    events = watch.take(4)
    assert summary(events) == [("MODIFIED", "a"), ("ADDED", "b"), ("MODIFIED", "b"),
                               ("DELETED", "a")]
    assert [e["object"] for e in events[:3]] == changes
    versions = [rv(e["object"]) for e in events]
    assert versions == list(range(rv(start) + 1, rv(start) + 5))
    assert events[3]["object"]["data"] == {"v": "2"}  # the last state, with the delete's RV
    fence = create_configmap(api, configmap("fence"))
    event = watch.next()
    assert event["object"] == fence
    watch.assert_quiet()


def test_watch_from_a_future_resource_version_waits_for_changes_after_it(
        api: RawClient, cluster: SimulatedCluster) -> None:
    # The watch cache accepts a future resourceVersion (no 504 for watches, unlike lists)
    # and sends only changes after it.
    future = cluster.resource_version + 2
    watch = api.watch(CM, resourceVersion=str(future))
    assert watch.status == 200
    for name in ("one", "two", "three", "four"):
        create_configmap(api, configmap(name))
    assert summary(watch.take(2)) == [("ADDED", "three"), ("ADDED", "four")]


# ----------------------------------------------------------------------------------- history


def _churn(client: RawClient, count: int) -> None:
    for i in range(count):
        create_configmap(client, configmap(f"churn-{i}"))


def test_watch_from_before_the_history_gets_an_in_stream_410() -> None:
    with sim_client(history_size=5) as (sim, client):
        _churn(client, 12)
        watch = client.watch(CM, resourceVersion="1")
        assert watch.status == 200
        event = watch.next()
        assert event["type"] == "ERROR", event
        status = event["object"]
        assert (status["kind"], status["apiVersion"]) == ("Status", "v1")
        assert (status["status"], status["code"], status["reason"]) == ("Failure", 410,
                                                                         "Expired")
        assert status["message"].startswith("too old resource version: 1 (")
        assert watch.next() == "<end>"
        # The most recent changes are still there to resume from.
        recent = client.watch(CM, resourceVersion=str(sim.resource_version - 2))
        assert [e["type"] for e in recent.take(2)] == ["ADDED", "ADDED"]


def test_watch_from_before_the_history_is_http_410_when_not_in_stream() -> None:
    with sim_client(history_size=5, expired_in_stream=False) as (_sim, client):
        _churn(client, 12)
        response = client.get(CM, watch="true", resourceVersion="1")
        body = assert_status(response, 410, "Expired")
        assert body["message"].startswith("too old resource version: 1 (")


def _socket_buffer_ceiling() -> int:
    """The most a TCP socket's send buffer may grow to (Linux autotuning), 4 MiB if unknown."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 4 * 1024 * 1024


def test_a_watcher_behind_a_compaction_gets_an_in_stream_410(
        api: RawClient, cluster: SimulatedCluster) -> None:
    # The watch starts with more synthetic ADDED data than the socket buffers hold, and its
    # reader does not read: the server stays blocked writing those, its position fixed at
    # the watch's start, while a later change is made and the history compacted.
    big = "x" * 900_000
    count = _socket_buffer_ceiling() // len(big) + 6
    for i in range(count):
        cluster.create(configmap(f"big-{i:03d}", data={"blob": big}))
    slow = ChunkedWatch(cluster.url, cluster.token, CM, {}, rcvbuf=4096)
    try:
        assert slow.read_head() == 200
        cluster.create(configmap("after"))
        cluster.compact()
        events = []
        while (chunk := slow.chunk()) is not None:
            events.append(orjson.loads(chunk))
        *delivered, error = events
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in delivered] == [
            ("ADDED", f"big-{i:03d}") for i in range(count)]
        assert error["type"] == "ERROR", error
        assert (error["object"]["code"], error["object"]["reason"]) == (410, "Expired")
    finally:
        slow.close()


# --------------------------------------------------------------------- bookmarks and timeouts


def test_bookmarks_advance_and_never_lag_behind_delivered_events() -> None:
    with sim_client(bookmark_interval=0.05) as (sim, client):
        watch = client.watch(CM, resourceVersion=str(sim.resource_version),
                             allowWatchBookmarks="true")
        # As from the real server: no bookmark before a change made after the watch began.
        client.post("/api/v1/namespaces/default/secrets",
                    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s0"}})
        first = watch.until(lambda e: e["type"] == "BOOKMARK")[-1]
        assert first["object"]["kind"] == "ConfigMap"
        assert first["object"]["apiVersion"] == "v1"
        assert set(first["object"]["metadata"]) == {"resourceVersion"}
        last_event_rv = 0
        bookmark_rvs = [rv(first["object"])]
        created = [create_configmap(client, configmap(f"cm-{i}")) for i in range(3)]
        while len(bookmark_rvs) < 4 or last_event_rv < rv(created[-1]):
            event = watch.next()
            if event["type"] == "BOOKMARK":
                assert rv(event["object"]) >= last_event_rv
                bookmark_rvs.append(rv(event["object"]))
            else:
                assert event["type"] == "ADDED"
                last_event_rv = rv(event["object"])
        assert bookmark_rvs == sorted(bookmark_rvs)
        # A change to another resource still advances the bookmark's resourceVersion.
        secret = client.post("/api/v1/namespaces/default/secrets",
                             {"apiVersion": "v1", "kind": "Secret",
                              "metadata": {"name": "s"}}).json()
        advanced = watch.until(
            lambda e: e["type"] == "BOOKMARK" and rv(e["object"]) >= rv(secret))[-1]
        assert rv(advanced["object"]) == rv(secret)


def test_timeout_seconds_ends_the_stream_cleanly(api: RawClient) -> None:
    watch = api.watch(CM, timeoutSeconds="1")
    assert watch.next(timeout=5) == "<end>"


def test_timestamps_timeouts_and_bookmarks_follow_an_injected_clock() -> None:
    clock = FakeClock()  # its wall clock starts at 2026-01-01T00:00:00Z
    with SimulatedCluster(clock=clock, bookmark_interval=10.0) as sim:
        api = RawClient(sim.url, sim.token)
        try:
            watch = api.watch(CM, timeoutSeconds="30", allowWatchBookmarks="true",
                              resourceVersion=str(sim.resource_version))
            assert clock.wait_for_waiters(1)  # the stream waits for a change or a bookmark
            created = create_configmap(api, configmap("a"))
            assert created["metadata"]["creationTimestamp"] == "2026-01-01T00:00:00Z"
            assert watch.next() == {"type": "ADDED", "object": created}
            assert clock.wait_for_waiters(1)
            clock.advance(10.0)  # the bookmark is due
            bookmark = watch.next()
            assert bookmark["type"] == "BOOKMARK" and rv(bookmark["object"]) == rv(created)
            assert clock.wait_for_waiters(1)
            clock.advance(20.0)  # timeoutSeconds has passed
            assert watch.next() == "<end>"
            assert sim.get("v1", "Namespace", "default")["metadata"]["creationTimestamp"] == \
                "2026-01-01T00:00:00Z"
        finally:
            api.close()


# ---------------------------------------------------------------------------------- selectors


def test_label_selector_transitions_arrive_as_added_and_deleted(api: RawClient) -> None:
    create_configmap(api, configmap("a", labels={"app": "web"}))
    watch = api.watch(CM, labelSelector="app=web")
    assert summary([watch.next()]) == [("ADDED", "a")]
    moved = api.patch(f"{CM}/a", {"metadata": {"labels": {"app": "db"}}}, MERGE).json()
    left = watch.next()
    assert left["type"] == "DELETED"
    assert left["object"]["metadata"]["labels"] == {"app": "web"}  # the previous state
    assert rv(left["object"]) == rv(moved)  # with the change's resourceVersion
    api.patch(f"{CM}/a", {"data": {"unseen": "1"}}, MERGE)
    back = api.patch(f"{CM}/a", {"metadata": {"labels": {"app": "web"}}}, MERGE).json()
    came_back = watch.next()
    assert came_back["type"] == "ADDED" and came_back["object"] == back
    changed = api.patch(f"{CM}/a", {"data": {"seen": "1"}}, MERGE).json()
    assert watch.next() == {"type": "MODIFIED", "object": changed}
    api.delete(f"{CM}/a")
    assert summary([watch.next()]) == [("DELETED", "a")]


def test_field_selector_on_the_name(api: RawClient) -> None:
    watch = api.watch(CM, fieldSelector="metadata.name=target")
    create_configmap(api, configmap("other"))
    create_configmap(api, configmap("target"))
    api.patch(f"{CM}/other", {"data": {"x": "1"}}, MERGE)
    api.patch(f"{CM}/target", {"data": {"x": "1"}}, MERGE)
    api.delete(f"{CM}/target")
    assert summary(watch.take(3)) == [("ADDED", "target"), ("MODIFIED", "target"),
                                      ("DELETED", "target")]


def test_watch_with_an_unsupported_field_selector_is_400(api: RawClient) -> None:
    assert_status(api.get(CM, watch="true", fieldSelector="data.x=1"), 400, "BadRequest")


# --------------------------------------------------------------------------------- namespaces


def test_watch_in_a_namespace_created_later(api: RawClient, cluster: SimulatedCluster) -> None:
    watch = api.watch("/api/v1/namespaces/later/configmaps")
    assert watch.status == 200
    assert api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                           "metadata": {"name": "later"}}).status == 201
    create_configmap(api, configmap("elsewhere"))
    create_configmap(api, configmap("here", namespace="later"))
    event = watch.next()
    assert summary([event]) == [("ADDED", "here")]
    assert event["object"]["metadata"]["namespace"] == "later"


def test_watchers_of_a_deleted_namespace_see_each_object_deleted(
        api: RawClient, cluster: SimulatedCluster) -> None:
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})
    path = "/api/v1/namespaces/doomed/configmaps"
    for name in ("x", "y", "z"):
        create_configmap(api, configmap(name, namespace="doomed"))
    watch = api.watch(path, resourceVersion=str(cluster.resource_version))
    assert api.delete("/api/v1/namespaces/doomed").status == 200
    assert sorted(summary(watch.take(3))) == [("DELETED", "x"), ("DELETED", "y"),
                                              ("DELETED", "z")]
    assert api.get(path).json()["items"] == []


# ------------------------------------------------------------------------------- wire format


def test_each_event_is_exactly_one_http_chunk(api: RawClient, cluster: SimulatedCluster) -> None:
    for name in ("a", "b", "c"):
        create_configmap(api, configmap(name))
    raw = ChunkedWatch(cluster.url, cluster.token, CM, {"allowWatchBookmarks": "false"})
    try:
        assert raw.read_head() == 200
        assert raw.headers["transfer-encoding"] == "chunked"
        assert raw.headers["content-type"].startswith("application/json")
        chunks = [raw.chunk() for _ in range(3)]
        for i in range(4):  # a burst: written together, still one chunk each
            create_configmap(api, configmap(f"burst-{i}"))
        api.patch(f"{CM}/a", {"data": {"k": "v"}}, MERGE)
        chunks += [raw.chunk() for _ in range(5)]
        events = []
        for chunk in chunks:
            assert chunk is not None and chunk.endswith(b"\n") and chunk.count(b"\n") == 1
            events.append(orjson.loads(chunk))
        assert summary(events) == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c"),
                                   ("ADDED", "burst-0"), ("ADDED", "burst-1"),
                                   ("ADDED", "burst-2"), ("ADDED", "burst-3"),
                                   ("MODIFIED", "a")]
    finally:
        raw.close()
