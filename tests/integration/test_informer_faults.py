"""SharedInformer through the simulator's faults: every fault ends with the store equal to
the server's objects, and every change delivered exactly once, except what a relist
reports from its diff (adds, updates, and deletes with ``final_state_unknown``)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import kubernetes
import pytest

from faro.cache import Backoff, SharedInformer
from faro.testing import FakeClock, SimulatedCluster
from tests.integration.helpers import DEADLINE, configmap, eventually
from tests.integration.informer_helpers import (
    Changes,
    Informers,
    Recorder,
    assert_delivered_once,
    assert_forward,
    assert_in_sync,
    fence,
    informer_threads,
    informers,
    replay,
    rv_of,
    wait_watching,
)

WATCH = r"configmaps\?.*watch=true"
"""The informer's watch requests (its lists have no ``watch=true``)."""


@pytest.fixture
def make(cluster: SimulatedCluster) -> Iterator[Informers]:
    with informers(cluster) as factory:
        yield factory
    assert informer_threads() == []


def check_exactly_once(recorder: Recorder, informer: SharedInformer,
                       cluster: SimulatedCluster, changes: Changes, *, skip: int = 0) -> None:
    """The store equals the server, the notifications replay to it, none goes backwards,
    and each of ``changes`` was delivered exactly once, no relist needed (``skip``: the
    first list's notes, which are no changes)."""
    final = assert_in_sync(informer, cluster, reached=changes.last_rv())
    notes = recorder.notes  # delivered before the informer's resourceVersion moved on
    assert replay(notes) == final
    assert_forward(notes)
    assert_delivered_once(notes[skip:], changes.made, relisted=False)


# ------------------------------------------------------------------------------- dropped watches


@pytest.mark.parametrize("abrupt", [False, True], ids=["clean", "abrupt"])
def test_dropped_watches_resume_without_loss_or_duplicates(
        cluster: SimulatedCluster, make: Informers, abrupt: bool) -> None:
    cluster.create(configmap("before"))
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder)
    initial = len(recorder.notes)
    changes = Changes(cluster)
    for i in range(10):
        fence(recorder, changes, f"cm-{i}")
        changes.update(f"cm-{i}", "default", {"v": "1"})
        assert cluster.drop_watches(abrupt=abrupt) >= 1
        changes.update(f"cm-{i}", "default", {"v": "2"})  # made while the watch is down
        if i % 2:
            changes.delete(f"cm-{i - 1}", "default")
    check_exactly_once(recorder, informer, cluster, changes, skip=initial)
    health = informer.health()
    assert health.relists == {}
    reason = "error" if abrupt else "closed"
    assert health.watch_restarts.get(reason, 0) >= 1, health
    assert health.consecutive_failures == 0
    assert informer.last_sync_resource_version == str(changes.last_rv())


# ------------------------------------------------------------------------------------ compaction


@pytest.mark.parametrize("in_stream", [True, False], ids=["error-event", "http-410"])
def test_after_compaction_the_relist_reports_what_changed_while_down(in_stream: bool) -> None:
    with SimulatedCluster(expired_in_stream=in_stream, too_large_rv_wait=0.3) as cluster, \
            informers(cluster) as make:
        for name in ("kept", "changed", "deleted", "recreated"):
            cluster.create(configmap(name, data={"v": "1"}))
        recorder = Recorder()
        informer = make.started(namespace="default", recorder=recorder)
        listed = {n.key: n.obj for n in recorder.notes}
        wait_watching(cluster)
        with cluster.hold_watches():
            cluster.drop_watches()  # the informer watches again, and is parked
            assert cluster.wait_for_held_watches(1)
            added = cluster.create(configmap("added"))
            changed = cluster.patch("v1", "ConfigMap", "changed", {"data": {"v": "2"}},
                                    namespace="default")
            cluster.delete("v1", "ConfigMap", "deleted", "default")
            cluster.delete("v1", "ConfigMap", "recreated", "default")
            recreated = cluster.create(configmap("recreated", data={"v": "new"}))
            transient = cluster.create(configmap("transient"))
            cluster.delete("v1", "ConfigMap", "transient", "default")
            cluster.compact()
            # The parked watch ends; the next one, from the informer's last version, is
            # answered 410 at once (as an ERROR event, or as the HTTP status).
            cluster.drop_watches()
        assert_in_sync(informer, cluster)
        notes = recorder.wait_count(len(listed) + 4)[len(listed):]
        by_key = {n.key: n for n in notes}
        assert len(notes) == 4 and len(by_key) == 4, notes
        assert (by_key["default/added"].kind, by_key["default/added"].flag) == ("add", False)
        assert by_key["default/added"].rv == rv_of(added)
        update = by_key["default/changed"]
        assert update.kind == "update" and update.rv == rv_of(changed)
        assert update.old == listed["default/changed"]  # the last state the informer had
        gone = by_key["default/deleted"]
        assert (gone.kind, gone.flag) == ("delete", True)
        assert gone.obj == listed["default/deleted"]  # the last known object, not a tombstone
        # Deleted and created again under the same name: a new version, reported updated.
        again = by_key["default/recreated"]
        assert again.kind == "update" and again.rv == rv_of(recreated)
        assert again.obj["metadata"]["uid"] != again.old["metadata"]["uid"]  # type: ignore[index]
        assert "default/transient" not in by_key and rv_of(transient)  # never seen: nothing
        health = informer.health()
        assert health.relists == {"expired": 1}
        assert health.watch_restarts.get("expired") == 1
        assert health.malformed_lines == 0 and health.consecutive_failures == 0
        # It watches on from the relist's version.
        later = cluster.create(configmap("later"))
        assert recorder.wait_rv("default/later", rv_of(later)).kind == "add"


def test_a_watch_that_stays_up_through_a_compaction_needs_no_relist(
        cluster: SimulatedCluster, make: Informers) -> None:
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder)
    changes = Changes(cluster)
    fence(recorder, changes, "a")  # delivered: the watch is not behind the compaction
    cluster.compact()
    changes.update("a", "default", {"v": "2"})
    check_exactly_once(recorder, informer, cluster, changes)
    assert informer.health().relists == {}


# --------------------------------------------------------------------------------- error statuses


def test_a_500_storm_is_retried_and_shown_in_health(cluster: SimulatedCluster,
                                                    make: Informers) -> None:
    cluster.create(configmap("before"))
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder)
    initial = len(recorder.notes)
    changes = Changes(cluster)
    wait_watching(cluster)
    # Every watch and list request fails until the storm is over; the abrupt drop makes
    # the informer check its resourceVersion with a list first.
    cluster.fail_next(100_000, 500, path="configmaps", message="etcd is sad")
    cluster.drop_watches(abrupt=True)
    changes.create(configmap("during"))
    eventually(lambda: informer.health().consecutive_failures >= 3)
    during = informer.health()
    assert not during.healthy and during.running and during.synced
    assert "HTTP 500" in (during.last_error or "") and "etcd is sad" in (during.last_error or "")
    assert during.last_error_time is not None
    changes.update("during", "default", {"v": "2"})
    cluster.clear_faults()
    check_exactly_once(recorder, informer, cluster, changes, skip=initial)
    eventually(lambda: informer.health().consecutive_failures == 0)
    assert informer.health().healthy


@pytest.mark.parametrize("path", [WATCH, r"configmaps\?(?!.*watch=true)"],
                         ids=["watch", "list"])
def test_a_burst_of_500s_on_each_path_is_survived(cluster: SimulatedCluster, make: Informers,
                                                  path: str) -> None:
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder)
    changes = Changes(cluster)
    fence(recorder, changes, "fence")  # the watch is streaming: the drop breaks the stream
    cluster.fail_next(5, 500, path=path)
    cluster.drop_watches(abrupt=True)  # then a list (the version check) and a watch
    changes.create(configmap("a"))
    changes.update("a", "default", {"v": "2"})
    check_exactly_once(recorder, informer, cluster, changes)
    health = informer.health()
    assert "HTTP 500" in (health.last_error or "") and health.consecutive_failures == 0


def test_the_first_list_is_retried_through_500s(cluster: SimulatedCluster,
                                                make: Informers) -> None:
    cluster.create(configmap("a"))
    cluster.fail_next(3, 500, path="configmaps")
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder)
    assert [(n.kind, n.key, n.flag) for n in recorder.notes] == [("add", "default/a", True)]
    assert "HTTP 500" in (informer.health().last_error or "")
    assert informer.health().consecutive_failures == 0


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_waited(cluster: SimulatedCluster, make: Informers, status: int) -> None:
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder)  # backoff <= 0.1 s
    wait_watching(cluster)
    cluster.fail_next(1, status, path=WATCH, retry_after=1)
    cluster.drop_watches()
    created = cluster.create(configmap("after"))
    # The event can only come through the watch made after the wait.
    note = recorder.wait_rv("default/after", rv_of(created))
    health = informer.health()
    assert f"HTTP {status}" in (health.last_error or "")
    assert health.last_error_time is not None
    assert note.at - health.last_error_time >= 1.0
    assert health.consecutive_failures == 0


def test_retry_after_is_capped_by_the_backoff(cluster: SimulatedCluster,
                                              make: Informers) -> None:
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder,
                            backoff=Backoff(initial=0.01, maximum=0.05, max_retry_after=0.2))
    wait_watching(cluster)
    cluster.fail_next(1, 429, path=WATCH, retry_after=60)
    cluster.drop_watches()
    created = cluster.create(configmap("after"))
    note = recorder.wait_rv("default/after", rv_of(created))  # well before 60 s
    assert informer.health().last_error_time is not None
    assert 0.2 <= note.at - informer.health().last_error_time < 30


def test_stop_interrupts_a_long_retry_after_wait(cluster: SimulatedCluster,
                                                 make: Informers) -> None:
    informer = make.started(namespace="default")
    wait_watching(cluster)
    cluster.fail_next(1, 503, path=WATCH, retry_after=60)
    cluster.drop_watches()
    eventually(lambda: informer.health().consecutive_failures == 1)
    assert informer.stop(timeout=1.0)


# ------------------------------------------------------------------------------------ fake clock


def parked(clock: FakeClock, informer: SharedInformer) -> None:
    """Wait (real deadline) until the informer's thread waits on ``clock`` (its backoff)."""
    assert clock.wait_for_waiters(1, DEADLINE), informer.health()


def test_a_fake_clock_drives_the_backoff_and_the_failure_times(cluster: SimulatedCluster,
                                                               make: Informers) -> None:
    clock = FakeClock()
    start = clock.time()
    cluster.create(configmap("a"))
    cluster.fail_next(3, 500, path="configmaps")
    recorder = Recorder()
    informer = make.make(namespace="default", clock=clock,
                         backoff=Backoff(initial=10.0, maximum=30.0, jitter=0.0))
    informer.add_event_handler(recorder)
    informer.start()
    parked(clock, informer)  # the first list failed: 10 s of backoff on the fake clock
    health = informer.health()
    assert (health.consecutive_failures, health.synced) == (1, False)
    assert health.started_at == start
    assert health.failing_since == health.last_error_time == start
    clock.advance(9.5)  # not yet: the informer wakes, sees the time, waits again
    parked(clock, informer)
    assert informer.health().consecutive_failures == 1
    clock.advance(0.5)  # the second list fails at t=10; the next wait is 20 s
    parked(clock, informer)
    health = informer.health()
    assert health.consecutive_failures == 2
    assert health.failing_since == start  # since the first failure of the run
    assert health.last_error_time == pytest.approx(start + 10)
    clock.advance(20.0)  # the third fails at t=30; the next wait is 30 s (the maximum)
    parked(clock, informer)
    assert informer.health().consecutive_failures == 3
    clock.advance(29.0)
    parked(clock, informer)
    assert informer.health().consecutive_failures == 3 and recorder.notes == []
    clock.advance(1.0)  # t=60: the fourth list succeeds
    recorder.wait_count(1)
    assert [(n.kind, n.key, n.flag) for n in recorder.notes] == [("add", "default/a", True)]
    health = informer.health()
    assert health.synced and health.consecutive_failures == 0
    assert health.failing_since is None
    assert health.last_error_time == pytest.approx(start + 30)
    assert health.synced_at == pytest.approx(start + 60)


def test_retry_after_is_waited_on_the_fake_clock(cluster: SimulatedCluster,
                                                make: Informers) -> None:
    clock = FakeClock()
    cluster.fail_next(1, 429, path="configmaps", retry_after=60)
    informer = make.make(namespace="default", clock=clock)
    informer.start()
    parked(clock, informer)
    clock.advance(59.0)
    parked(clock, informer)
    assert not informer.has_synced()
    clock.advance(1.0)
    eventually(informer.has_synced, what="the list after the Retry-After wait")
    assert informer.health().synced_at == pytest.approx(informer.health().started_at + 60)


def test_stop_interrupts_a_backoff_on_the_fake_clock(cluster: SimulatedCluster,
                                                    make: Informers) -> None:
    clock = FakeClock()
    cluster.fail_next(1, 500, path="configmaps")
    informer = make.make(namespace="default", clock=clock, backoff=Backoff(initial=3600.0,
                                                                           maximum=3600.0))
    informer.start()
    parked(clock, informer)
    assert informer.stop(timeout=DEADLINE)  # no time moved: the stop ended the wait
    assert not informer.is_running
    assert not informer.wait_for_sync(timeout=DEADLINE)  # stopped: returns at once


# ----------------------------------------------------------------------------------- credentials


def test_a_rotated_token_is_re_read_after_401(cluster: SimulatedCluster,
                                              make: Informers) -> None:
    api_client = kubernetes.config.new_client_from_config(cluster.kubeconfig_path)
    refreshed: list[float] = []

    def refresh() -> None:
        refreshed.append(time.monotonic())
        kubernetes.config.load_kube_config(config_file=cluster.kubeconfig_path,
                                           client_configuration=api_client.configuration)

    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder, api_client=api_client,
                            refresh_credentials=refresh)
    changes = Changes(cluster)
    wait_watching(cluster)
    cluster.rotate_token()
    cluster.drop_watches()  # the next request carries the old token
    changes.create(configmap("after-rotation"))
    check_exactly_once(recorder, informer, cluster, changes)
    assert len(refreshed) == 1
    assert "HTTP 401" in (informer.health().last_error or "")
    assert informer.health().consecutive_failures == 0
    api_client.close()


def test_without_refresh_credentials_a_401_persists_and_shows_in_health(
        cluster: SimulatedCluster, make: Informers) -> None:
    api_client = kubernetes.config.new_client_from_config(cluster.kubeconfig_path)
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder, api_client=api_client)
    wait_watching(cluster)
    cluster.rotate_token()
    cluster.drop_watches()
    cluster.create(configmap("unseen"))
    eventually(lambda: informer.health().consecutive_failures >= 3)
    health = informer.health()
    assert "HTTP 401" in (health.last_error or "") and not health.healthy
    assert recorder.notes == [] and informer.store.keys() == []
    assert informer.stop(timeout=1.0)
    api_client.close()


def test_a_failing_refresh_is_logged_and_retried(cluster: SimulatedCluster,
                                                 make: Informers,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    api_client = kubernetes.config.new_client_from_config(cluster.kubeconfig_path)
    attempts: list[int] = []

    def refresh() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise OSError("the token file is not there yet")
        kubernetes.config.load_kube_config(config_file=cluster.kubeconfig_path,
                                           client_configuration=api_client.configuration)

    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder, api_client=api_client,
                            refresh_credentials=refresh)
    wait_watching(cluster)
    cluster.rotate_token()
    cluster.drop_watches()
    created = cluster.create(configmap("after-rotation"))
    recorder.wait_rv("default/after-rotation", rv_of(created))
    assert len(attempts) == 3
    assert sum("re-reading credentials failed" in r.getMessage() for r in caplog.records) == 2
    assert informer.health().consecutive_failures == 0
    api_client.close()


def test_refresh_credentials_is_called_after_403_too(cluster: SimulatedCluster,
                                                    make: Informers) -> None:
    calls: list[int] = []
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder,
                            refresh_credentials=lambda: calls.append(1))
    wait_watching(cluster)
    cluster.fail_next(1, 403, path=WATCH)
    cluster.drop_watches()
    fence(recorder, Changes(cluster), "after")
    assert calls == [1]
    assert "HTTP 403" in (informer.health().last_error or "")


# ------------------------------------------------------------------------------- malformed data


def test_a_malformed_watch_line_is_counted_and_the_watch_made_again(
        cluster: SimulatedCluster, make: Informers) -> None:
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder)
    changes = Changes(cluster)
    for i in range(3):
        fence(recorder, changes, f"before-{i}")
        assert cluster.inject_malformed_watch_line() >= 1
        changes.create(configmap(f"after-{i}"))
        fence(recorder, changes, f"fence-{i}")
        assert informer.health().malformed_lines == i + 1
    check_exactly_once(recorder, informer, cluster, changes)
    health = informer.health()
    assert health.malformed_lines == 3 and health.watch_restarts.get("malformed") == 3
    assert health.relists == {} and health.consecutive_failures == 0
    assert "malformed watch event" in (health.last_error or "")


# ------------------------------------------------------------------------------------ restarts


def test_a_server_restart_that_resets_resource_versions_is_relisted(
        cluster: SimulatedCluster, make: Informers) -> None:
    for name in ("a", "b", "c"):
        cluster.create(configmap(name))
    cluster.patch("v1", "ConfigMap", "a", {"data": {"v": "2"}}, namespace="default")
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder)
    fence(recorder, Changes(cluster), "fence")  # the watch is streaming
    known = {n.key: n.obj for n in recorder.notes}
    before = int(informer.last_sync_resource_version or 0)
    cluster.restart()  # every object gone, the counter back below the informer's version
    assert cluster.resource_version < before
    # Nothing may be created until the informer noticed: once the counter passes its
    # version again, a server whose storage was replaced cannot be told apart.
    deletes = recorder.wait_count(2 * len(known))[len(known):]
    assert sorted((n.kind, n.key, n.flag) for n in deletes) == [
        ("delete", key, True) for key in sorted(known)]
    assert all(n.obj == known[n.key] for n in deletes)
    assert informer.health().relists == {"too_large_resource_version": 1}
    assert informer.store.keys() == []
    created = cluster.create(configmap("new"))
    assert recorder.wait_rv("default/new", rv_of(created)).kind == "add"
    assert_in_sync(informer, cluster)


def test_a_server_replaced_while_the_watch_was_down_is_relisted(make: Informers) -> None:
    """The watch ended cleanly, then the server went away and came back on the same address
    with new storage (its resourceVersions restarted): the informer's first request after
    the failed connection checks its version, sees it is too large, and relists. Watching
    from that version instead would wait, silently, for changes that never come."""
    old = SimulatedCluster(too_large_rv_wait=0.3).start()
    try:
        for name in ("a", "b"):
            old.create(configmap(name))
        recorder = Recorder()
        api_client = kubernetes.config.new_client_from_config(old.kubeconfig_path)
        informer = make.started(namespace="default", recorder=recorder, api_client=api_client)
        known = {n.key: n.obj for n in recorder.notes}
        wait_watching(old)
        old.fail_next(100_000, 500, path=WATCH)  # its watch cannot come back...
        old.drop_watches()  # ...after this clean end
        eventually(lambda: "HTTP 500" in (informer.health().last_error or ""))
        port, token = old.port, old.token
    finally:
        old.stop()
    eventually(lambda: "HTTP 500" not in (informer.health().last_error or ""))  # refused
    with SimulatedCluster(port=port, token=token, too_large_rv_wait=0.3) as new:
        assert new.resource_version < int(informer.last_sync_resource_version or 0)
        deletes = recorder.wait_count(len(known) + 2)[len(known):]
        assert sorted((n.kind, n.key, n.flag) for n in deletes) == [
            ("delete", key, True) for key in sorted(known)]
        assert informer.health().relists == {"too_large_resource_version": 1}
        created = new.create(configmap("new"))
        assert recorder.wait_rv("default/new", rv_of(created)).kind == "add"
        assert_in_sync(informer, new)
        assert informer.stop(timeout=DEADLINE)
    api_client.close()


# --------------------------------------------------------------------------- expired continue


def test_an_expired_continue_token_falls_back_to_one_unpaged_list(
        cluster: SimulatedCluster, make: Informers) -> None:
    for i in range(1201):
        cluster.create(configmap(f"cm-{i:04d}"))
    # The second page is slowed down; meanwhile the history is compacted and the
    # collection changes, so the first page's continue token expires (410).
    cluster.delay(0.5, path=r"configmaps\?.*continue=", count=1)
    recorder = Recorder()
    informer = make.make(namespace="default")
    informer.add_event_handler(recorder)
    informer.start()
    changes = Changes(cluster)
    deadline = time.monotonic() + DEADLINE
    while not informer.has_synced():
        assert time.monotonic() < deadline, informer.health()
        changes.create(configmap(f"during-{len(changes.made)}"))
        cluster.compact()
        time.sleep(0.01)  # pacing of the changes, not synchronisation
    final = assert_in_sync(informer, cluster, reached=changes.last_rv())
    relists = informer.health().relists
    assert relists["expired_continue"] == 1, relists
    # A compaction made after the fallback list, before the first watch, expires that
    # watch too: a legitimate relist of its own.
    assert set(relists) <= {"expired_continue", "expired"}, relists
    notes = recorder.notes  # delivered before the informer's resourceVersion moved on
    assert replay(notes) == final
    initial = [n for n in notes if n.kind == "add" and n.flag]
    assert len(initial) == len({n.key for n in initial}) >= 1201
    assert all(n.kind == "add" for n in notes)  # only creates were made
    assert_delivered_once(notes, changes.made, relisted=False)


def test_a_410_on_a_continue_request_falls_back_to_one_unpaged_list(
        cluster: SimulatedCluster, make: Informers) -> None:
    for i in range(1201):
        cluster.create(configmap(f"cm-{i:04d}"))
    cluster.fail_next(1, 410, path=r"configmaps\?.*continue=",
                      message="The provided continue parameter is too old")
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder)
    notes = recorder.notes
    assert len(notes) == 1201 and {(n.kind, n.flag) for n in notes} == {("add", True)}
    assert informer.health().relists == {"expired_continue": 1}
    assert informer.health().consecutive_failures == 0
    assert_in_sync(informer, cluster)


def test_repeated_expiry_backs_off_but_recovers(cluster: SimulatedCluster,
                                                make: Informers) -> None:
    """410 after 410 with no event in between: each is relisted, from the third on after a
    backoff wait (counted as a failure), and the informer recovers."""
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder)
    wait_watching(cluster)
    cluster.fail_next(4, 410, path=WATCH)
    cluster.drop_watches()
    eventually(lambda: informer.health().relists.get("expired") == 4)
    fence(recorder, Changes(cluster), "after")
    health = informer.health()
    assert health.watch_restarts.get("expired") == 4
    assert "HTTP 410" in (health.last_error or "")  # the third and fourth backed off
    assert health.consecutive_failures == 0
    assert_in_sync(informer, cluster)


def test_a_relist_reports_an_object_replaced_under_the_same_resource_version(
        cluster: SimulatedCluster, make: Informers) -> None:
    """After a storage reset an object can come back with the very resourceVersion the
    informer knew, but as a different object (new uid): the relist reports it updated."""
    filler = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "filler"}}
    cluster.create(filler)
    for i in range(20):
        cluster.create(configmap(f"f{i}", namespace="filler"))
    first = cluster.create(configmap("a"))
    cluster.create(configmap("b"))  # the informer's version ends above a's
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder)
    fence(recorder, Changes(cluster), "fence")
    cluster.fail_next(100_000, 500)  # nothing of the informer's gets through meanwhile
    cluster.restart()
    eventually(lambda: informer.health().consecutive_failures > 0)
    cluster.create(filler)
    while cluster.resource_version < int(rv_of(first)) - 1:
        cluster.create(configmap(f"f{cluster.resource_version}", namespace="filler"))
    again = cluster.create(configmap("a"))
    assert rv_of(again) == rv_of(first)
    assert again["metadata"]["uid"] != first["metadata"]["uid"]
    cluster.clear_faults()
    notes = recorder.wait_for(
        lambda ns: any(n.kind == "update" and n.key == "default/a" for n in ns))
    update = next(n for n in notes if n.kind == "update" and n.key == "default/a")
    assert update.obj["metadata"]["uid"] == again["metadata"]["uid"]
    assert_in_sync(informer, cluster)


# ------------------------------------------------------------------ watches that end at once


def test_watches_that_end_at_once_are_backed_off_and_keep_failing(cluster: SimulatedCluster,
                                                                  make: Informers) -> None:
    """A server that ends every watch as soon as it is made got 7,081 watch requests in 8 s:
    a watch that ends without an event right after it began now counts as a failure
    (client-go's "very short watch"), so the informer backs off (0.8 s doubling to 30 s),
    and its failing-since time stays put however often it reconnects."""
    clock = FakeClock()
    start = clock.time()
    informer = make.make(namespace="default", clock=clock, backoff=Backoff(jitter=0.0))
    recorder = Recorder()
    informer.add_event_handler(recorder)
    with cluster.close_watches(path=WATCH):
        informer.start()
        parked(clock, informer)  # listed, watched once, the watch ended at once: 0.8 s
        assert informer.has_synced()
        assert cluster.watch_requests == 1
        health = informer.health()
        assert (health.consecutive_failures, health.failing_since) == (1, start), health
        assert "very short watch" in (health.last_error or ""), health
        for _ in range(600):  # a minute of the informer's time, 0.1 s at a time
            clock.advance(0.1)
            parked(clock, informer)
        # Waits of 0.8, 1.6, 3.2, 6.4, 12.8 and 25.6 s: watches at about t = 0, 0.8, 2.4,
        # 5.6, 12, 24.8 and 50.4 s (each step may land up to 0.1 s late).
        assert cluster.watch_requests == 7
        health = informer.health()
        assert health.consecutive_failures == 7, health
        assert health.failing_since == start, health  # no reconnection reset it
        assert health.watch_restarts.get("closed") == 7, health
    # The server streams again: the next watch stays up and delivers; the run of failures ends.
    clock.advance(30.0)
    created = cluster.create(configmap("after"))
    recorder.wait_rv("default/after", rv_of(created))
    health = informer.health()
    assert (health.consecutive_failures, health.failing_since) == (0, None), health


def test_a_watch_that_stays_up_ends_the_run_of_failures(cluster: SimulatedCluster,
                                                       make: Informers) -> None:
    """After failures, a watch that is up without events for longer than a short watch is
    healthy (a quiet collection is no failure), and a later clean end is no failure either."""
    clock = FakeClock()
    start = clock.time()
    informer = make.make(namespace="default", clock=clock, backoff=Backoff(jitter=0.0))
    cluster.fail_next(1, 500, path=WATCH)
    informer.start()
    parked(clock, informer)
    assert informer.health().failing_since == start
    clock.advance(0.8)
    wait_watching(cluster)  # the second watch (the first, a 500, never reached a watch)
    assert cluster.watch_requests == 1
    assert informer.health().failing_since == start  # open and quiet, for no time yet
    clock.advance(1.0)
    health = informer.health()
    assert (health.consecutive_failures, health.failing_since) == (0, None), health
    cluster.drop_watches()  # a clean end after a second up: watched again at once
    eventually(lambda: cluster.watch_requests == 2)
    assert informer.health().consecutive_failures == 0


# ------------------------------------------------------------------ stop with a request in flight

LIST = r"configmaps\?(?!.*watch=true)"
"""The informer's list requests."""


@pytest.mark.parametrize("path", [LIST, WATCH], ids=["list", "watch"])
def test_stop_interrupts_a_request_waiting_for_its_response(cluster: SimulatedCluster,
                                                            make: Informers, path: str) -> None:
    cluster.delay(60.0, path=path)  # the server holds the request before its response head
    informer = make.make(namespace="default")
    informer.start()
    assert cluster.wait_for_delayed_requests(1)
    began = time.monotonic()
    assert informer.stop(timeout=5.0)
    assert time.monotonic() - began < 1.0
    assert not informer.is_running and informer_threads() == []


def test_stop_interrupts_a_version_check_list_in_flight(cluster: SimulatedCluster,
                                                        make: Informers) -> None:
    informer = make.started(namespace="default")
    wait_watching(cluster)
    cluster.delay(60.0, path=LIST)
    cluster.drop_watches(abrupt=True)  # the informer checks its version with a list
    assert cluster.wait_for_delayed_requests(1)
    began = time.monotonic()
    assert informer.stop(timeout=5.0)
    assert time.monotonic() - began < 1.0
    assert not informer.is_running and informer_threads() == []


def test_stop_interrupts_a_request_over_tls() -> None:
    with SimulatedCluster(tls=True) as cluster, informers(cluster) as make:
        cluster.create(configmap("a"))
        recorder = Recorder()
        informer = make.started(namespace="default", recorder=recorder)
        assert [n.key for n in recorder.notes] == ["default/a"]
        wait_watching(cluster)
        cluster.delay(60.0, path=LIST)
        cluster.drop_watches(abrupt=True)  # the version check: a list, held
        assert cluster.wait_for_delayed_requests(1)
        began = time.monotonic()
        assert informer.stop(timeout=5.0)
        assert time.monotonic() - began < 1.0
        assert not informer.is_running and informer_threads() == []


# ------------------------------------------------------------------ empty resourceVersions


@pytest.mark.parametrize("replacement", [b'"resourceVersion":""', b""], ids=["empty", "missing"])
def test_an_event_without_a_resource_version_makes_no_spurious_event(
        cluster: SimulatedCluster, make: Informers, replacement: bytes) -> None:
    """An event whose resourceVersion is empty or missing is applied, but never becomes the
    version the informer watches from: watching from "" would replay every object as ADDED,
    each reported as an UPDATED that never happened."""
    cluster.create(configmap("a"))
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder)
    changes = Changes(cluster)
    fence(recorder, changes, "fence")
    version = informer.last_sync_resource_version
    pattern = rb'"resourceVersion":"\d+"' if replacement else rb',"resourceVersion":"\d+"'
    cluster.corrupt_watch_events("b", lambda line: re.sub(pattern, replacement, line))
    cluster.create(configmap("b"))
    recorder.wait_for(lambda notes: any(n.key == "default/b" for n in notes))
    assert informer.last_sync_resource_version == version
    cluster.drop_watches()  # watched again from its version: b's event comes again
    fence(recorder, changes, "after")
    notes = recorder.notes
    assert [n for n in notes if n.kind != "add"] == []
    assert [n.key for n in notes].count("default/b") == 1
    assert informer.health().decode_errors == 0
