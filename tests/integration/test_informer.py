"""SharedInformer against the simulated API server: list, watch, handlers, transforms, lifecycle.

Each test proves one rule of ``faro.cache`` (see the docstrings of
``reflector.py`` and ``shared_informer.py``) over real HTTP through the
official client; faults are in ``test_informer_faults.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from faro.cache import ResourceEventHandlerFuncs
from faro.cache.store import decode
from faro.testing import SimulatedCluster
from tests.integration.helpers import DEADLINE, configmap, eventually
from tests.integration.informer_helpers import (
    Changes,
    Informers,
    Note,
    Producer,
    Recorder,
    assert_delivered_once,
    assert_forward,
    assert_in_sync,
    informer_threads,
    informers,
    replay,
    rv_of,
    server_state,
    wait_watching,
)


@pytest.fixture
def make(cluster: SimulatedCluster) -> Iterator[Informers]:
    with informers(cluster) as factory:
        yield factory
    assert informer_threads() == []


def namespace(cluster: SimulatedCluster, name: str) -> str:
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def kinds(notes: list[Note]) -> list[tuple[str, str, bool | None]]:
    return [(n.kind, n.key, n.flag) for n in notes]


# ----------------------------------------------------------------------------- the first list


def test_the_initial_paged_list_adds_every_object_once_as_initial(
        cluster: SimulatedCluster, make: Informers) -> None:
    ns = namespace(cluster, "paged")
    for i in range(1201):  # three pages of the default 500
        cluster.create(configmap(f"cm-{i:04d}", ns, data={"i": str(i)}))
    cluster.create(configmap("elsewhere"))  # another namespace: not listed
    recorder = Recorder()
    informer = make.make(namespace=ns)
    informer.add_event_handler(recorder)
    assert not informer.has_synced()
    informer.start()
    assert informer.wait_for_sync(DEADLINE)
    assert informer.has_synced()
    # Synced means the first list's adds were delivered, all of them, before it returned.
    notes = recorder.notes
    assert len(notes) == 1201
    assert {(n.kind, n.flag) for n in notes} == {("add", True)}
    assert sorted(n.key for n in notes) == [f"paged/cm-{i:04d}" for i in range(1201)]
    assert informer.last_sync_resource_version == str(cluster.resource_version)
    assert sorted(informer.store.keys()) == [f"paged/cm-{i:04d}" for i in range(1201)]
    assert informer.store.get_by_name("cm-0600", ns)["data"] == {"i": "600"}  # type: ignore[index]
    assert informer.health().objects == 1201 and informer.health().synced
    assert_in_sync(informer, cluster)


def test_a_paged_list_that_fails_half_way_delivers_each_object_once(
        cluster: SimulatedCluster, make: Informers) -> None:
    ns = namespace(cluster, "paged")
    for i in range(1201):
        cluster.create(configmap(f"cm-{i:04d}", ns))
    # The second page fails: the first page's objects were stored and reported; the list
    # starts again, and finds them unchanged: each object is reported once.
    cluster.fail_next(1, 500, path=r"configmaps\?.*continue=")
    recorder = Recorder()
    informer = make.started(namespace=ns, recorder=recorder)
    notes = recorder.notes
    assert len(notes) == 1201 and len({n.key for n in notes}) == 1201
    assert "HTTP 500" in (informer.health().last_error or "")  # the page was asked for
    assert informer.health().consecutive_failures == 0
    assert_in_sync(informer, cluster)


def test_cluster_scoped_objects_are_keyed_by_name(cluster: SimulatedCluster,
                                                  make: Informers) -> None:
    recorder = Recorder()
    informer = make.started("v1/namespaces", recorder=recorder)
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= set(
        informer.store.keys())
    created = cluster.create({"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": "extra"}})
    assert recorder.wait_rv("extra", rv_of(created)).kind == "add"
    assert informer.store.get("extra") is not None
    assert_in_sync(informer, cluster)


def test_the_namespace_index_of_an_all_namespaces_informer(cluster: SimulatedCluster,
                                                           make: Informers) -> None:
    for ns in ("red", "blue"):
        namespace(cluster, ns)
        for i in range(3):
            cluster.create(configmap(f"{ns}-{i}", ns))
    recorder = Recorder()
    informer = make.started(recorder=recorder)  # no namespace: every namespace
    by_ns = informer.store.by_index("namespace", "red")
    assert sorted(o["metadata"]["name"] for o in by_ns) == ["red-0", "red-1", "red-2"]
    assert sorted(informer.store.index_keys("namespace", "blue")) == [
        "blue/blue-0", "blue/blue-1", "blue/blue-2"]
    gone = cluster.delete("v1", "ConfigMap", "red-1", "red")
    recorder.wait_rv("red/red-1", rv_of(gone))
    added = cluster.create(configmap("green-0", namespace(cluster, "green")))
    recorder.wait_rv("green/green-0", rv_of(added))
    assert sorted(informer.store.index_keys("namespace", "red")) == ["red/red-0", "red/red-2"]
    assert informer.store.index_keys("namespace", "green") == ["green/green-0"]
    assert {"red", "blue", "green"} <= set(informer.store.index_values("namespace"))
    assert_in_sync(informer, cluster)


# ---------------------------------------------------------------------------------- the watch


def test_watch_events_become_add_update_delete_in_order(cluster: SimulatedCluster,
                                                         make: Informers) -> None:
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder)
    assert recorder.notes == []
    changes = Changes(cluster)
    a1 = changes.create(configmap("a", data={"v": "1"}))
    b1 = changes.create(configmap("b", data={"v": "1"}))
    a2 = changes.update("a", "default", {"v": "2"})
    b2 = changes.update("b", "default", {"v": "2"})
    a3 = changes.update("a", "default", {"v": "3"})
    a_gone = changes.delete("a", "default")
    recorder.wait_rv("default/a", rv_of(a_gone))
    notes = recorder.notes
    assert [(n.kind, n.key, n.rv, n.flag) for n in notes] == [
        ("add", "default/a", rv_of(a1), False),
        ("add", "default/b", rv_of(b1), False),
        ("update", "default/a", rv_of(a2), None),
        ("update", "default/b", rv_of(b2), None),
        ("update", "default/a", rv_of(a3), None),
        ("delete", "default/a", rv_of(a_gone), False),
    ]
    # An update carries the previous version as old, exactly the object delivered before.
    update_a2, update_a3 = notes[2], notes[4]
    assert update_a2.old == notes[0].obj and update_a2.obj["data"] == {"v": "2"}
    assert update_a3.old == update_a2.obj and update_a3.obj["data"] == {"v": "3"}
    # A delete event carries the object's final state.
    assert notes[5].obj["data"] == {"v": "3"}
    assert replay(notes) == {"default/b": rv_of(b2)}
    assert_delivered_once(notes, changes.made, relisted=False)
    assert informer.last_sync_resource_version == str(rv_of(a_gone))
    assert informer.health().events == 6
    assert_in_sync(informer, cluster)


def test_a_handler_with_on_update_stored_gets_the_old_object_undecoded(
        cluster: SimulatedCluster, make: Informers) -> None:
    seen: list[tuple[object, dict[str, Any]]] = []
    olds: list[dict[str, Any]] = []

    class Lazy:
        def on_add(self, obj: dict[str, Any], is_initial: bool) -> None: ...

        def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
            raise AssertionError("on_update_stored is called instead")

        def on_update_stored(self, old: object, new: dict[str, Any]) -> None:
            seen.append((old, new))

        def on_delete(self, obj: dict[str, Any], final_state_unknown: bool) -> None: ...

    informer = make.make(namespace="default")
    informer.add_event_handler(Lazy())
    informer.add_event_handler(on_update=lambda old, new: olds.append(old))
    informer.start()
    assert informer.wait_for_sync(DEADLINE)
    changes = Changes(cluster)
    first = changes.create(configmap("a", data={"v": "1"}))
    changes.update("a", "default", {"v": "2"})
    eventually(lambda: len(seen) == 1 and len(olds) == 1)
    old, new = seen[0]
    assert isinstance(old, bytes)  # the store's JSON of the version before, undecoded
    assert decode(old) == olds[0]  # a plain on_update gets it decoded
    assert olds[0]["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert new["data"] == {"v": "2"}
    # Once the store keeps "a" decoded (it was read), that dict is handed over as it is.
    read = informer.store.get("default/a")
    changes.update("a", "default", {"v": "3"})
    eventually(lambda: len(seen) == 2 and len(olds) == 2)
    assert seen[1][0] is read and olds[1] is read and read["data"] == {"v": "2"}


def test_events_for_each_object_arrive_in_order_under_load(cluster: SimulatedCluster,
                                                           make: Informers) -> None:
    ns = namespace(cluster, "busy")
    recorder = Recorder()
    informer = make.started(namespace=ns, recorder=recorder)
    with Producer(cluster, ns, limit=600) as producer:
        producer.wait_made(600)
    final = assert_in_sync(informer, cluster, reached=producer.changes.last_rv())
    notes = recorder.notes  # delivered before the informer's resourceVersion moved on
    assert_forward(notes)
    assert replay(notes) == final
    assert_delivered_once(notes, producer.changes.made, relisted=False)
    assert [n.rv for n in notes] == sorted(n.rv for n in notes)  # one global order


def test_a_label_selector_is_applied_by_the_server(cluster: SimulatedCluster,
                                                   make: Informers) -> None:
    cluster.create(configmap("web-0", labels={"app": "web"}))
    cluster.create(configmap("db-0", labels={"app": "db"}))
    recorder = Recorder()
    informer = make.started(namespace="default", label_selector="app=web", recorder=recorder)
    assert kinds(recorder.notes) == [("add", "default/web-0", True)]
    cluster.create(configmap("db-1", labels={"app": "db"}))
    cluster.patch("v1", "ConfigMap", "db-0", {"data": {"x": "1"}}, namespace="default")
    web1 = cluster.create(configmap("web-1", labels={"app": "web"}))  # the fence
    recorder.wait_rv("default/web-1", rv_of(web1))
    # An object that stops matching is deleted for the informer; one that starts, added.
    moved_out = cluster.patch("v1", "ConfigMap", "web-0", {"metadata": {"labels": {"app": "db"}}},
                              namespace="default")
    moved_in = cluster.patch("v1", "ConfigMap", "db-1", {"metadata": {"labels": {"app": "web"}}},
                             namespace="default")
    recorder.wait_rv("default/db-1", rv_of(moved_in))
    assert kinds(recorder.notes) == [
        ("add", "default/web-0", True),
        ("add", "default/web-1", False),
        ("delete", "default/web-0", False),
        ("add", "default/db-1", False),
    ]
    assert recorder.notes[2].rv == rv_of(moved_out)
    assert "default/db-0" not in {n.key for n in recorder.notes}
    assert_in_sync(informer, cluster, match=lambda o: o["metadata"].get("labels", {}).get(
        "app") == "web")


def test_a_field_selector_is_applied_by_the_server(cluster: SimulatedCluster,
                                                   make: Informers) -> None:
    cluster.create(configmap("wanted"))
    cluster.create(configmap("other"))
    recorder = Recorder()
    informer = make.started(namespace="default", field_selector="metadata.name=wanted",
                            recorder=recorder)
    assert kinds(recorder.notes) == [("add", "default/wanted", True)]
    cluster.patch("v1", "ConfigMap", "other", {"data": {"x": "1"}}, namespace="default")
    cluster.delete("v1", "ConfigMap", "other", "default")
    fence = cluster.patch("v1", "ConfigMap", "wanted", {"data": {"x": "1"}}, namespace="default")
    recorder.wait_rv("default/wanted", rv_of(fence))
    assert {n.key for n in recorder.notes} == {"default/wanted"}
    assert_in_sync(informer, cluster, match=lambda o: o["metadata"]["name"] == "wanted")


def test_the_watch_resumes_after_the_server_ends_it(cluster: SimulatedCluster,
                                                    make: Informers) -> None:
    """With a 1 s server-side timeout the watch ends cleanly again and again while changes
    keep coming; each is delivered once, and no relist is ever needed."""
    ns = namespace(cluster, "resume")
    recorder = Recorder()
    informer = make.started(namespace=ns, recorder=recorder, watch_timeout=(1, 1))
    changes = Changes(cluster)
    deadline = time.monotonic() + DEADLINE
    i = 0
    while informer.health().watch_restarts.get("closed", 0) < 2:
        assert time.monotonic() < deadline, informer.health()
        changes.create(configmap(f"cm-{i}", ns))
        if i % 2:
            changes.update(f"cm-{i - 1}", ns, {"i": str(i)})
        i += 1
        time.sleep(0.02)  # pacing of the changes, not synchronisation
    final = assert_in_sync(informer, cluster, reached=changes.last_rv())
    notes = recorder.notes  # delivered before the informer's resourceVersion moved on
    assert replay(notes) == final
    assert_delivered_once(notes, changes.made, relisted=False)
    assert informer.health().relists == {}


def test_the_watch_resumes_after_clean_drops(cluster: SimulatedCluster,
                                             make: Informers) -> None:
    ns = namespace(cluster, "resume")
    recorder = Recorder()
    informer = make.started(namespace=ns, recorder=recorder)
    changes = Changes(cluster)
    for i in range(15):
        wait_watching(cluster)
        changes.create(configmap(f"cm-{i}", ns))
        cluster.drop_watches()
        changes.update(f"cm-{i}", ns, {"v": "2"})
        if i % 3 == 0:
            changes.delete(f"cm-{i}", ns)
    final = assert_in_sync(informer, cluster, reached=changes.last_rv())
    notes = recorder.notes  # delivered before the informer's resourceVersion moved on
    assert replay(notes) == final
    assert_delivered_once(notes, changes.made, relisted=False)
    health = informer.health()
    assert health.relists == {} and health.watch_restarts.get("closed", 0) >= 1
    assert informer.last_sync_resource_version == str(changes.last_rv())


def test_bookmarks_advance_the_resource_version_and_notify_nothing() -> None:
    with SimulatedCluster(bookmark_interval=0.05) as cluster, informers(cluster) as make:
        ns = namespace(cluster, "quiet")
        recorder = Recorder()
        informer = make.started(namespace=ns, recorder=recorder)
        start = informer.last_sync_resource_version
        wait_watching(cluster)  # bookmarks only report changes made after the watch began
        for i in range(5):  # changes the informer does not see: another namespace
            cluster.create(configmap(f"noise-{i}"))
        latest = str(cluster.resource_version)
        eventually(lambda: informer.last_sync_resource_version == latest)
        assert latest != start
        assert recorder.notes == [] and informer.health().events == 0
        # The bookmark's version is worth having: after a compaction the watch resumes
        # from it without a relist (from the list's version it would get 410).
        cluster.compact()
        cluster.drop_watches()
        created = cluster.create(configmap("after", ns))
        recorder.wait_rv(f"{ns}/after", rv_of(created))
        assert informer.health().relists == {}


# ------------------------------------------------------------------------------- transforms


def test_managed_fields_are_stripped_by_default(cluster: SimulatedCluster,
                                                make: Informers) -> None:
    cluster.create(configmap("listed"))
    assert cluster.get("v1", "ConfigMap", "listed", "default")["metadata"]["managedFields"]
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder)
    watched = cluster.create(configmap("watched"))
    recorder.wait_rv("default/watched", rv_of(watched))
    for note in recorder.notes:
        assert "managedFields" not in note.obj["metadata"], note
        assert note.obj["metadata"]["uid"]  # the rest of the metadata is kept
    for obj in informer.store.list():
        assert "managedFields" not in obj["metadata"]


def test_transform_none_keeps_objects_whole(cluster: SimulatedCluster, make: Informers) -> None:
    cluster.create(configmap("listed"))
    recorder = Recorder()
    make.started(namespace="default", recorder=recorder, transform=None)
    watched = cluster.create(configmap("watched"))
    recorder.wait_rv("default/watched", rv_of(watched))
    assert [bool(n.obj["metadata"].get("managedFields")) for n in recorder.notes] == [True, True]


def test_a_custom_transform_applies_to_listed_and_watched_objects(
        cluster: SimulatedCluster, make: Informers) -> None:
    def only_names(obj: dict[str, Any]) -> dict[str, Any]:
        metadata = obj["metadata"]
        return {"metadata": {k: metadata[k] for k in ("name", "namespace", "resourceVersion")},
                "seen": True}

    cluster.create(configmap("listed", data={"big": "x" * 1000}))
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder, transform=only_names)
    cluster.create(configmap("watched", data={"big": "x"}))
    updated = cluster.patch("v1", "ConfigMap", "watched", {"data": {"big": "y"}},
                            namespace="default")
    recorder.wait_rv("default/watched", rv_of(updated))
    assert all(n.obj.get("seen") and "data" not in n.obj for n in recorder.notes)
    assert all(o.get("seen") for o in informer.store.list())
    assert informer.health().transform_errors == 0


def test_a_transform_that_raises_keeps_the_object_and_counts_the_error(
        cluster: SimulatedCluster, make: Informers, caplog: pytest.LogCaptureFixture) -> None:
    def picky(obj: dict[str, Any]) -> dict[str, Any]:
        if obj["metadata"]["name"].startswith("bad"):
            raise ValueError("cannot transform this one")
        obj["metadata"].pop("managedFields", None)
        return obj

    cluster.create(configmap("bad-listed"))
    cluster.create(configmap("good-listed"))
    recorder = Recorder()
    informer = make.started(namespace="default", recorder=recorder, transform=picky)
    bad = cluster.create(configmap("bad-watched"))
    good = cluster.create(configmap("good-watched"))
    recorder.wait_rv("default/good-watched", rv_of(good))
    store = informer.store
    for name in ("bad-listed", "bad-watched"):
        assert store.get(f"default/{name}")["metadata"]["managedFields"]  # type: ignore[index]
    for name in ("good-listed", "good-watched"):
        assert "managedFields" not in store.get(f"default/{name}")["metadata"]  # type: ignore[index]
    assert informer.health().transform_errors == 2
    assert informer.health().handler_errors == 0
    assert sum("transform failed" in r.getMessage() for r in caplog.records) == 2
    assert rv_of(store.get("default/bad-watched") or {}) == rv_of(bad)
    assert_in_sync(informer, cluster)


# --------------------------------------------------------------------------------- handlers


def test_a_handler_added_after_sync_gets_the_current_objects_then_every_change(
        cluster: SimulatedCluster, make: Informers) -> None:
    """Added while changes stream in, it sees each object once as an initial add, then
    exactly the changes that follow: replaying its notifications gives the server's state."""
    ns = namespace(cluster, "late")
    for i in range(50):
        cluster.create(configmap(f"early-{i}", ns))
    informer = make.started(namespace=ns, recorder=Recorder())
    with Producer(cluster, ns, limit=2000) as producer:
        producer.wait_made(200)
        late = Recorder(slow_initial=0.0005)  # changes go on while it replays
        informer.add_event_handler(late)
        replayed = len(late)
        producer.wait_made(2000)
    final = assert_in_sync(informer, cluster, reached=producer.changes.last_rv())
    notes = late.notes  # delivered before the informer's resourceVersion moved on
    initial, later = notes[:replayed], notes[replayed:]
    assert replayed >= 50
    assert {(n.kind, n.flag) for n in initial} == {("add", True)}
    assert all(n.flag is not True for n in later)
    assert initial[0].thread == threading.current_thread().name  # replayed by the caller
    assert {n.thread for n in later} == {f"faro-informer-{informer.name}"}
    assert replay(notes) == final
    assert_forward(notes)
    assert len({(n.key, n.rv) for n in notes}) == len(notes)  # nothing twice


def test_a_failing_handler_is_logged_and_counted_and_others_go_on(
        cluster: SimulatedCluster, make: Informers, caplog: pytest.LogCaptureFixture) -> None:
    cluster.create(configmap("listed"))
    failing = Recorder(fail=lambda note: True)
    healthy = Recorder()
    informer = make.make(namespace="default")
    informer.add_event_handler(failing)
    informer.add_event_handler(healthy)
    informer.start()
    assert informer.wait_for_sync(DEADLINE)
    changes = Changes(cluster)
    changes.create(configmap("a"))
    changes.update("a", "default", {"v": "2"})
    gone = changes.delete("a", "default")
    healthy.wait_rv("default/a", rv_of(gone))
    # Both handlers saw all four notifications, in the same order; three failed.
    assert kinds(failing.notes) == kinds(healthy.notes) == [
        ("add", "default/listed", True), ("add", "default/a", False),
        ("update", "default/a", None), ("delete", "default/a", False)]
    assert informer.health().handler_errors == 4
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and "failed in" in
                r.getMessage()]
    assert [r.getMessage().split(" failed in ")[1].split()[0] for r in failures] == [
        "on_add", "on_add", "on_update", "on_delete"]
    assert all(r.exc_info for r in failures)
    assert informer.health().healthy and informer.is_running
    # A late handler whose replay fails is counted too, and still registered.
    late_failing = Recorder(fail=lambda note: True)
    informer.add_event_handler(late_failing)
    assert informer.health().handler_errors == 5
    after = cluster.create(configmap("b"))
    late_failing.wait_rv("default/b", rv_of(after))
    healthy.wait_rv("default/b", rv_of(after))


def test_handlers_as_functions_and_their_removal(cluster: SimulatedCluster,
                                                 make: Informers) -> None:
    informer = make.started(namespace="default")
    added: list[str] = []
    deleted: list[tuple[str, bool]] = []
    functions = informer.add_event_handler(
        on_add=lambda obj, initial: added.append(obj["metadata"]["name"]),
        on_delete=lambda obj, unknown: deleted.append((obj["metadata"]["name"], unknown)))
    assert isinstance(functions, ResourceEventHandlerFuncs)
    recorder = Recorder()
    assert informer.add_event_handler(recorder) is recorder
    first = cluster.create(configmap("first"))
    recorder.wait_rv("default/first", rv_of(first))
    cluster.patch("v1", "ConfigMap", "first", {"data": {"v": "2"}}, namespace="default")
    gone = cluster.delete("v1", "ConfigMap", "first", "default")
    recorder.wait_rv("default/first", rv_of(gone))
    assert added == ["first"] and deleted == [("first", False)]  # no on_update given: fine
    informer.remove_event_handler(functions)
    informer.remove_event_handler(recorder)
    seen = len(recorder)
    with pytest.raises(ValueError, match="not a handler"):
        informer.remove_event_handler(recorder)
    fence = Recorder()
    informer.add_event_handler(fence)
    second = cluster.create(configmap("second"))
    fence.wait_rv("default/second", rv_of(second))
    assert added == ["first"] and len(recorder) == seen
    with pytest.raises(TypeError):
        informer.add_event_handler()
    with pytest.raises(TypeError):
        informer.add_event_handler(recorder, on_add=lambda obj, initial: None)


# -------------------------------------------------------------------------------- lifecycle


def test_start_twice_raises_and_a_stopped_informer_cannot_restart(
        cluster: SimulatedCluster, make: Informers) -> None:
    informer = make.started(namespace="default")
    with pytest.raises(RuntimeError, match="already started"):
        informer.start()
    assert informer.stop(timeout=1.0)
    with pytest.raises(RuntimeError, match="already started"):
        informer.start()
    never_started = make.make(namespace="default")
    assert never_started.stop() is True  # nothing to wait for
    with pytest.raises(RuntimeError):
        never_started.start()


def test_the_context_manager_starts_and_stops(cluster: SimulatedCluster,
                                              make: Informers) -> None:
    cluster.create(configmap("a"))
    with make.make(namespace="default") as informer:
        assert informer.is_running
        assert informer.wait_for_sync(DEADLINE)
        assert informer.store.keys() == ["default/a"]
    assert not informer.is_running
    assert informer_threads() == []


def test_stop_returns_at_once_and_leaves_no_thread(cluster: SimulatedCluster,
                                                   make: Informers) -> None:
    recorder = Recorder()
    # No bookmark and no server timeout for minutes: the watch read blocks until stop()
    # shuts its connection down.
    informer = make.started(namespace="default", recorder=recorder,
                            watch_timeout=(300, 600))
    wait_watching(cluster)
    assert informer_threads() == [f"faro-informer-{informer.name}"]
    eventually(lambda: informer.health().running)
    assert informer.stop(timeout=1.0)
    assert informer_threads() == []
    health = informer.health()
    assert not health.running and not health.healthy and not informer.is_running
    assert informer.stop(timeout=1.0)  # idempotent
    cluster.create(configmap("after-stop"))
    assert recorder.notes == []


def test_stop_during_a_burst_returns_promptly(cluster: SimulatedCluster,
                                              make: Informers) -> None:
    ns = namespace(cluster, "burst")
    recorder = Recorder()
    with cluster.hold_watches():
        informer = make.started(namespace=ns, recorder=recorder)
        assert cluster.wait_for_held_watches(1)
        for i in range(5000):
            cluster.create(configmap(f"cm-{i}", ns, data={"pad": "x" * 200}))
    recorder.wait_count(100)  # released: the burst streams in, in large reads
    assert informer.stop(timeout=1.0)
    assert informer_threads() == []
    delivered = recorder.notes
    assert_forward(delivered)
    assert replay(delivered).keys() <= server_state(cluster, "v1/configmaps", ns).keys()


def test_stop_while_events_stream_in_returns_promptly(cluster: SimulatedCluster,
                                                      make: Informers) -> None:
    ns = namespace(cluster, "load")
    recorder = Recorder()
    informer = make.started(namespace=ns, recorder=recorder)
    with Producer(cluster, ns) as producer:
        producer.wait_made(300)
        recorder.wait_count(100)
        assert informer.stop(timeout=1.0)
        assert informer_threads() == []
        delivered = len(recorder)
        producer.wait_made(producer.count + 100)
    assert len(recorder) == delivered  # nothing after stop returned


def test_stop_with_the_server_gone_returns_promptly(cluster: SimulatedCluster,
                                                    make: Informers) -> None:
    api_client = kubernetes.config.new_client_from_config(cluster.kubeconfig_path)
    informer = make.started(namespace="default", api_client=api_client)
    wait_watching(cluster)
    cluster.stop()  # cuts the watch; every later connection is refused
    eventually(lambda: informer.health().consecutive_failures >= 2)
    assert "Connection" in (informer.health().last_error or "") or \
        "Max retries" in (informer.health().last_error or ""), informer.health()
    assert informer.stop(timeout=1.0)
    assert informer_threads() == []
    api_client.close()


def test_wait_for_sync_is_false_until_the_first_list_succeeds(cluster: SimulatedCluster,
                                                              make: Informers) -> None:
    cluster.fail_next(10_000, 500, path="configmaps")
    informer = make.make(namespace="default")
    informer.start()
    assert not informer.wait_for_sync(0.2)
    assert not informer.has_synced()
    eventually(lambda: informer.health().consecutive_failures >= 2)
    waiter: list[bool] = []
    thread = threading.Thread(target=lambda: waiter.append(informer.wait_for_sync(None)))
    thread.start()
    assert informer.stop(timeout=1.0)
    thread.join(DEADLINE)  # stop() wakes a waiter that has no deadline
    assert waiter == [False]
    cluster.clear_faults()


def test_server_state_helper_matches_the_informer_view(cluster: SimulatedCluster,
                                                       make: Informers) -> None:
    """The checker itself: it sees a difference when there is one."""
    informer = make.started(namespace="default")
    cluster.create(configmap("x"))
    assert_in_sync(informer, cluster)
    assert server_state(cluster, "v1/configmaps", "default").keys() == {"default/x"}
    with pytest.raises(AssertionError, match="extra"):
        assert_in_sync(informer, cluster, match=lambda o: False, timeout=0.05)


def test_rewind_reports_every_change_since_the_version_again(
        cluster: SimulatedCluster, make: Informers) -> None:
    """What a new leader does with its warm cache: watch again from the old leader's
    checkpoint, and hear the changes since (already cached ones included) as the server
    sends them."""
    ns = namespace(cluster, "rewind")
    before = cluster.create(configmap("before", ns))
    recorder = Recorder()
    informer = make.make(namespace=ns)
    informer.add_event_handler(recorder)
    informer.start()
    assert informer.wait_for_sync(DEADLINE)
    created = cluster.create(configmap("created", ns))
    changed = dict(before, data={"v": "2"})
    changed = cluster.update(changed)
    cluster.delete("v1", "ConfigMap", "created", namespace=ns)
    recorder.wait_for(lambda notes: [n.kind for n in notes][-3:] == ["add", "update", "delete"])
    seen = len(recorder.notes)
    informer.rewind(str(rv_of(before)))
    notes = recorder.wait_for(lambda notes: len(notes) >= seen + 3)[seen:]
    assert [(n.kind, n.key, n.rv) for n in notes] == [
        ("add", f"{ns}/created", rv_of(created)),
        ("update", f"{ns}/before", rv_of(changed)),
        ("delete", f"{ns}/created", notes[2].rv)]
    assert notes[0].flag is False  # a watch event, not an initial list
    assert informer.health().watch_restarts.get("rewind") == 1
    assert informer.health().consecutive_failures == 0  # not a failure
    assert informer.store.get(f"{ns}/before")["data"] == {"v": "2"}  # type: ignore[index]
    assert informer.store.get(f"{ns}/created") is None
    assert_in_sync(informer, cluster)


def test_rewind_to_a_compacted_version_relists_and_reports_every_object(
        cluster: SimulatedCluster, make: Informers) -> None:
    ns = namespace(cluster, "compacted")
    kept = cluster.create(configmap("kept", ns))
    recorder = Recorder()
    informer = make.make(namespace=ns)
    informer.add_event_handler(recorder)
    informer.start()
    assert informer.wait_for_sync(DEADLINE)
    cluster.create(configmap("later", ns))
    recorder.wait_for(lambda notes: len(notes) == 2)
    cluster.compact()
    informer.rewind(str(rv_of(kept)))
    # A handler without on_resync hears an update for every object, changed or not.
    notes = recorder.wait_for(lambda notes: len(notes) == 4)[2:]
    assert sorted((n.kind, n.key) for n in notes) == [("update", f"{ns}/kept"),
                                                      ("update", f"{ns}/later")]
    assert informer.health().relists.get("expired") == 1
    assert_in_sync(informer, cluster)
