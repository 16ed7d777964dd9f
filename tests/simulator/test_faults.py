"""Fault injection seen through raw HTTP: dropped watches, compaction, failures, restarts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from faro.testing import SimulatedCluster
from tests.integration.helpers import RawClient, assert_status, configmap, eventually, sim_client

CM = "/api/v1/namespaces/default/configmaps"


def names(api: RawClient, path: str = CM) -> list[str]:
    response = api.get(path)
    assert response.status == 200, response
    return [item["metadata"]["name"] for item in response.json()["items"]]


# -------------------------------------------------------------------------------- watch faults


def test_drop_watches_ends_streams_cleanly(api: RawClient, cluster: SimulatedCluster) -> None:
    watches = [api.watch(CM), api.watch("/api/v1/namespaces")]
    assert [e["type"] for e in watches[1].take(4)] == ["ADDED"] * 4  # the default namespaces
    eventually(lambda: cluster.watch_count == 2)
    assert cluster.drop_watches() == 2
    assert [w.next() for w in watches] == ["<end>", "<end>"]
    eventually(lambda: cluster.watch_count == 0)
    assert api.get(CM).status == 200  # the server itself keeps serving


def test_drop_watches_abruptly_cuts_the_connections(api: RawClient,
                                                    cluster: SimulatedCluster) -> None:
    watch = api.watch(CM)
    eventually(lambda: cluster.watch_count == 1)
    assert cluster.drop_watches(abrupt=True) == 1
    outcome = watch.next()
    assert isinstance(outcome, str) and outcome.startswith("<error:"), outcome


def test_a_watch_resumed_after_compact_gets_410(api: RawClient,
                                                cluster: SimulatedCluster) -> None:
    created = api.post(CM, configmap("a")).json()
    watch = api.watch(CM, resourceVersion=created["metadata"]["resourceVersion"])
    api.post(CM, configmap("b"))
    assert watch.next()["object"]["metadata"]["name"] == "b"
    cluster.drop_watches()
    assert watch.next() == "<end>"
    cluster.compact()
    resumed = api.watch(CM, resourceVersion=created["metadata"]["resourceVersion"])
    event = resumed.next()
    assert event["type"] == "ERROR" and event["object"]["code"] == 410
    assert event["object"]["reason"] == "Expired"
    assert resumed.next() == "<end>"
    # Resuming from the current resourceVersion still works after a compaction.
    current = api.get(CM).json()["metadata"]["resourceVersion"]
    fresh = api.watch(CM, resourceVersion=current)
    api.post(CM, configmap("c"))
    assert fresh.next()["object"]["metadata"]["name"] == "c"


def test_malformed_watch_line_then_the_stream_continues(api: RawClient,
                                                        cluster: SimulatedCluster) -> None:
    watch = api.watch(CM)
    eventually(lambda: cluster.watch_count == 1)
    assert cluster.inject_malformed_watch_line() == 1
    garbage = watch.next()
    assert isinstance(garbage, str) and garbage.startswith("<malformed:"), garbage
    api.post(CM, configmap("after"))
    event = watch.next()
    assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "after"


# --------------------------------------------------------------------------------- held watches


def test_a_held_watch_gets_its_head_then_replays_the_burst_on_release(
        api: RawClient, cluster: SimulatedCluster) -> None:
    start = api.get(CM).json()["metadata"]["resourceVersion"]
    cluster.hold_watches()
    watch = api.watch(CM, resourceVersion=start)
    assert watch.status == 200  # accepted: the response head came
    assert cluster.wait_for_held_watches(1)
    assert cluster.held_watches == 1 and cluster.watch_count == 1
    for i in range(50):
        api.post(CM, configmap(f"cm-{i:02d}"))
    watch.assert_quiet()  # parked: nothing was streamed
    assert cluster.release_watches() == 1
    events = watch.take(50)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", f"cm-{i:02d}") for i in range(50)]
    assert cluster.held_watches == 0
    # Released: the watch goes on live, and new watches are no longer held.
    api.post(CM, configmap("live"))
    assert watch.next()["object"]["metadata"]["name"] == "live"
    fresh = api.watch(CM)
    assert fresh.next()["type"] == "ADDED"


def test_hold_does_not_affect_watches_already_streaming(api: RawClient,
                                                        cluster: SimulatedCluster) -> None:
    streaming = api.watch(CM)
    eventually(lambda: cluster.watch_count == 1)
    with cluster.hold_watches():
        parked = api.watch(CM)
        assert cluster.wait_for_held_watches(1)
        api.post(CM, configmap("a"))
        assert streaming.next()["object"]["metadata"]["name"] == "a"
        assert cluster.held_watches == 1 and cluster.watch_count == 2
        parked.assert_quiet()
    # Leaving the block released it; it was opened before "a" was created.
    assert cluster.held_watches == 0
    assert parked.next()["object"]["metadata"]["name"] == "a"


def test_a_held_watch_from_zero_keeps_the_state_it_asked_for(api: RawClient,
                                                             cluster: SimulatedCluster) -> None:
    api.post(CM, configmap("before"))
    with cluster.hold_watches():
        watch = api.watch(CM, resourceVersion="0")
        assert cluster.wait_for_held_watches(1)
        api.post(CM, configmap("during"))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in watch.take(2)] == [
        ("ADDED", "before"), ("ADDED", "during")]


def test_hold_watches_path_matches_only_some_watches(api: RawClient,
                                                     cluster: SimulatedCluster) -> None:
    cluster.hold_watches(path=r"/secrets")
    configmaps = api.watch(CM)
    secrets = api.watch("/api/v1/namespaces/default/secrets")
    assert cluster.wait_for_held_watches(1)
    eventually(lambda: cluster.watch_count == 2)
    api.post(CM, configmap("a"))
    assert configmaps.next()["object"]["metadata"]["name"] == "a"
    assert cluster.held_watches == 1
    assert api.get(CM).status == 200  # other requests are not held either
    assert cluster.release_watches() == 1
    api.post("/api/v1/namespaces/default/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})
    assert secrets.next()["object"]["metadata"]["name"] == "s"


def test_wait_for_held_watches_times_out(cluster: SimulatedCluster) -> None:
    cluster.hold_watches()
    assert cluster.wait_for_held_watches(1, timeout=0.05) is False
    assert cluster.held_watches == 0


def test_clear_faults_releases_held_watches(api: RawClient, cluster: SimulatedCluster) -> None:
    cluster.hold_watches()
    watch = api.watch(CM)
    assert cluster.wait_for_held_watches(1)
    api.post(CM, configmap("a"))
    cluster.clear_faults()
    assert watch.next()["object"]["metadata"]["name"] == "a"
    assert cluster.held_watches == 0
    later = api.watch(CM)  # the hold itself is gone too
    assert later.next()["object"]["metadata"]["name"] == "a"


def test_dropping_a_held_watch_ends_it_without_events(api: RawClient,
                                                      cluster: SimulatedCluster) -> None:
    api.post(CM, configmap("a"))
    cluster.hold_watches()
    first, second = api.watch(CM), api.watch(CM)
    assert cluster.wait_for_held_watches(2)
    assert cluster.drop_watches() == 2
    assert first.next() == "<end>" and second.next() == "<end>"
    eventually(lambda: cluster.watch_count == 0)
    assert cluster.held_watches == 0
    abrupt = api.watch(CM)
    assert cluster.wait_for_held_watches(1)
    cluster.drop_watches(abrupt=True)
    outcome = abrupt.next()
    assert isinstance(outcome, str) and outcome.startswith("<error:"), outcome


def test_a_held_watch_ends_cleanly_when_its_timeout_passes(api: RawClient,
                                                           cluster: SimulatedCluster) -> None:
    api.post(CM, configmap("a"))
    cluster.hold_watches()
    watch = api.watch(CM, timeoutSeconds="1")
    assert cluster.wait_for_held_watches(1)
    assert watch.next() == "<end>"  # no ADDED for "a": it was never released


def test_stop_releases_held_watches() -> None:
    with sim_client() as (sim, client):
        sim.hold_watches()
        watch = client.watch(CM)
        assert sim.wait_for_held_watches(1)
        sim.stop()
        outcome = watch.next()
        assert isinstance(outcome, str) and outcome.startswith(("<error:", "<end>")), outcome
        assert sim.held_watches == 0


# ----------------------------------------------------------------------------- request faults


@pytest.mark.parametrize(("code", "reason"), [
    (500, "InternalError"),
    (503, "ServiceUnavailable"),
    (401, "Unauthorized"),
])
def test_fail_next_answers_a_status_with_the_code(api: RawClient, cluster: SimulatedCluster,
                                                  code: int, reason: str) -> None:
    cluster.fail_next(1, code)
    assert_status(api.get(CM), code, reason)
    assert api.get(CM).status == 200


def test_fail_next_429_carries_retry_after(api: RawClient, cluster: SimulatedCluster) -> None:
    cluster.fail_next(1, 429, retry_after=7, message="slow down")
    response = api.get(CM)
    body = assert_status(response, 429, "TooManyRequests")
    assert response.headers["Retry-After"] == "7"
    assert body["details"]["retryAfterSeconds"] == 7
    assert body["message"] == "slow down"


def test_fail_next_applies_before_the_request_is_processed(api: RawClient,
                                                           cluster: SimulatedCluster) -> None:
    cluster.fail_next(1, 503, method="POST")
    before = cluster.resource_version
    assert_status(api.post(CM, configmap("a")), 503, "ServiceUnavailable")
    assert cluster.resource_version == before
    assert api.get(f"{CM}/a").status == 404


def test_fail_next_matches_path_and_method_only_count_times(
        api: RawClient, cluster: SimulatedCluster) -> None:
    cluster.fail_next(2, 500, path=r"/configmaps/target$", method="GET")
    assert api.post(CM, configmap("target")).status == 201  # POST: not matched
    assert api.get(f"{CM}/other").status == 404  # another path: not matched
    assert api.get(CM).status == 200  # the collection: not matched
    assert api.get("/api/v1/namespaces/default/secrets").status == 200
    assert_status(api.get(f"{CM}/target"), 500, "InternalError")
    assert_status(api.get(f"{CM}/target"), 500, "InternalError")
    assert api.get(f"{CM}/target").status == 200  # only count times


def test_fail_next_can_target_watch_requests(api: RawClient, cluster: SimulatedCluster) -> None:
    cluster.fail_next(1, 503, path=r"watch=true")
    assert api.get(CM).status == 200
    assert_status(api.get(CM, watch="true"), 503, "ServiceUnavailable")
    watch = api.watch(CM)
    api.post(CM, configmap("a"))
    assert watch.next()["object"]["metadata"]["name"] == "a"


def test_delay_makes_matching_requests_slow(api: RawClient, cluster: SimulatedCluster) -> None:
    cluster.delay(0.4, path=r"/secrets", count=1)
    started = time.monotonic()
    assert api.get(CM).status == 200
    fast = time.monotonic() - started
    started = time.monotonic()
    assert api.get("/api/v1/namespaces/default/secrets").status == 200
    slow = time.monotonic() - started
    assert slow >= 0.4
    assert fast < 0.4
    started = time.monotonic()
    assert api.get("/api/v1/namespaces/default/secrets").status == 200
    assert time.monotonic() - started < 0.4  # count=1: only once


def test_clear_faults(api: RawClient, cluster: SimulatedCluster) -> None:
    cluster.fail_next(5, 500)
    cluster.clear_faults()
    assert api.get(CM).status == 200


# -------------------------------------------------------------------------------------- restart


def test_restart_loses_everything_and_resets_the_resource_version(
        api: RawClient, cluster: SimulatedCluster) -> None:
    initial = cluster.resource_version
    for i in range(5):
        api.post(CM, configmap(f"cm-{i}"))
    api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": "team"}})
    watch = api.watch(CM)
    assert [e["type"] for e in watch.take(5)] == ["ADDED"] * 5
    cluster.restart()
    outcome = watch.next()
    assert isinstance(outcome, str) and outcome.startswith("<error:"), outcome
    assert cluster.resource_version == initial
    assert names(api) == []
    assert sorted(names(api, "/api/v1/namespaces")) == [
        "default", "kube-node-lease", "kube-public", "kube-system"]
    created = api.post(CM, configmap("new"))
    assert created.status == 201, created
    assert int(created.json()["metadata"]["resourceVersion"]) == initial + 1


def test_after_restart_an_old_resource_version_is_in_the_future(
        api: RawClient, cluster: SimulatedCluster) -> None:
    for i in range(8):
        api.post(CM, configmap(f"old-{i}"))
    old = api.get(CM).json()["metadata"]["resourceVersion"]
    cluster.restart()
    # A list at the old resourceVersion waits, then fails with 504 too-large.
    body = assert_status(api.get(CM, resourceVersion=old), 504, "Timeout")
    assert body["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
    # A watch resumed from it is accepted, as the real watch cache accepts a future
    # resourceVersion: it silently skips every change up to that resourceVersion.
    watch = api.watch(CM, resourceVersion=old)
    assert watch.status == 200
    created = [api.post(CM, configmap(f"new-{i}")).json() for i in range(12)]
    first = watch.next()
    assert first["type"] == "ADDED"
    assert int(first["object"]["metadata"]["resourceVersion"]) == int(old) + 1
    skipped = [c for c in created if int(c["metadata"]["resourceVersion"]) <= int(old)]
    assert len(skipped) >= 5
    assert first["object"]["metadata"]["name"] == f"new-{len(skipped)}"


def test_restart_keeps_port_and_token(api: RawClient, cluster: SimulatedCluster) -> None:
    url, token = cluster.url, cluster.token
    cluster.restart()
    assert (cluster.url, cluster.token) == (url, token)
    assert api.get(CM).status == 200  # the client reconnects to the same address


# --------------------------------------------------------------------------------- credentials


def test_rotate_token(api: RawClient, cluster: SimulatedCluster) -> None:
    old = cluster.token
    new = cluster.rotate_token()
    assert new != old and cluster.token == new
    body = assert_status(api.get(CM), 401, "Unauthorized")
    assert body["message"] == "Unauthorized"
    fresh = RawClient(cluster.url, new)
    try:
        assert fresh.get(CM).status == 200
    finally:
        fresh.close()
    config = yaml.safe_load(Path(cluster.kubeconfig_path).read_text())
    [user] = config["users"]
    assert user["user"]["token"] == new
    assert config["clusters"][0]["cluster"]["server"] == cluster.url
