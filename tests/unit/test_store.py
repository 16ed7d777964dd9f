"""The informer's store: keys, indexes, replace, and reads while another thread writes."""

from __future__ import annotations

import threading
from typing import Any

import orjson
import pytest

from faro.cache import NAMESPACE_INDEX, Store, meta_namespace_key


def obj(name: str, namespace: str | None = "default", rv: str = "1",
        labels: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "resourceVersion": rv}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = labels
    return {"metadata": metadata}


def by_app(o: dict[str, Any]) -> list[str]:
    app = o["metadata"].get("labels", {}).get("app")
    return [app] if app else []


def test_keys_are_namespace_slash_name_or_name_for_cluster_scoped() -> None:
    assert meta_namespace_key(obj("a", "ns")) == "ns/a"
    assert meta_namespace_key(obj("node-1", None)) == "node-1"
    with pytest.raises(KeyError):
        meta_namespace_key({"metadata": {}})


def test_add_update_get_delete() -> None:
    store = Store()
    first = obj("a", rv="1")
    assert store.add(first) is None
    second = obj("a", rv="2")
    assert store.update(second) is first
    assert store.get("default/a") is second
    assert store.get_by_name("a", "default") is second
    assert "default/a" in store and len(store) == 1
    assert store.delete(obj("a")) is second
    assert store.get("default/a") is None
    assert store.delete(obj("a")) is None
    assert len(store) == 0


def test_list_and_keys_are_snapshots_not_views() -> None:
    store = Store()
    store.add(obj("a"))
    keys, items = store.keys(), store.list()
    store.add(obj("b"))
    assert keys == ["default/a"]
    assert [o["metadata"]["name"] for o in items] == ["a"]
    assert sorted(store.items()) == ["default/a", "default/b"]


def test_store_keeps_the_very_object_given_no_copy() -> None:
    store = Store()
    o = obj("a")
    store.add(o)
    assert store.get("default/a") is o
    assert store.list()[0] is o


def test_namespace_index_follows_adds_deletes_and_replace() -> None:
    store = Store()
    store.add(obj("a", "one"))
    store.add(obj("b", "one"))
    store.add(obj("c", "two"))
    store.add(obj("node", None))
    assert sorted(o["metadata"]["name"] for o in store.by_index(NAMESPACE_INDEX, "one")) == [
        "a", "b"]
    assert sorted(store.index_values(NAMESPACE_INDEX)) == ["one", "two"]
    store.delete(obj("c", "two"))
    assert store.by_index(NAMESPACE_INDEX, "two") == []
    assert sorted(store.index_values(NAMESPACE_INDEX)) == ["one"]
    store.replace({"three/x": obj("x", "three")})
    assert store.index_keys(NAMESPACE_INDEX, "three") == ["three/x"]
    assert store.by_index(NAMESPACE_INDEX, "one") == []


def test_custom_indexer_moves_an_object_when_its_value_changes() -> None:
    store = Store({"app": by_app})
    store.add(obj("a", labels={"app": "web"}))
    store.add(obj("b", labels={"app": "web"}))
    assert sorted(store.index_keys("app", "web")) == ["default/a", "default/b"]
    store.update(obj("a", labels={"app": "db"}, rv="2"))
    assert store.index_keys("app", "web") == ["default/b"]
    assert store.index_keys("app", "db") == ["default/a"]
    store.delete(obj("b"))
    assert store.index_values("app") == ["db"]


def test_add_indexer_indexes_existing_objects_and_rejects_duplicates() -> None:
    store = Store()
    store.add(obj("a", labels={"app": "web"}))
    store.add_indexer("app", by_app)
    assert store.index_keys("app", "web") == ["default/a"]
    with pytest.raises(ValueError, match="'app' already exists"):
        store.add_indexer("app", by_app)
    with pytest.raises(ValueError, match="'namespace' already exists"):
        store.add_indexer(NAMESPACE_INDEX, by_app)


def test_unknown_index_names_the_index_and_the_known_ones() -> None:
    store = Store({"app": by_app})
    with pytest.raises(KeyError, match=r"no index named 'owner'; have \['app', 'namespace'\]"):
        store.by_index("owner", "x")


def test_replace_is_atomic_for_readers() -> None:
    """A reader sees either the old content or the new, never a mixture."""
    store = Store()
    old = {f"default/o{i}": obj(f"o{i}", rv="old") for i in range(200)}
    new = {f"default/n{i}": obj(f"n{i}", rv="new") for i in range(300)}
    store.replace(old)
    stop = threading.Event()
    seen: set[tuple[int, frozenset[str]]] = set()

    def read() -> None:
        while not stop.is_set():
            items = store.list()
            seen.add((len(items), frozenset(o["metadata"]["resourceVersion"] for o in items)))

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(200):
        store.replace(new)
        store.replace(old)
    stop.set()
    reader.join()
    assert seen <= {(200, frozenset({"old"})), (300, frozenset({"new"}))}


def test_many_readers_while_one_thread_writes() -> None:
    store = Store({"app": by_app})
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                for o in store.by_index("app", "web"):
                    assert o["metadata"]["labels"]["app"] == "web"
                store.keys()
                store.index_values(NAMESPACE_INDEX)
        except BaseException as exc:  # reported below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    for i in range(3000):
        app = "web" if i % 2 else "db"
        store.add(obj(f"o{i % 50}", f"ns{i % 7}", rv=str(i), labels={"app": app}))
        if i % 5 == 0:
            store.delete(obj(f"o{(i + 3) % 50}", f"ns{(i + 3) % 7}"))
    stop.set()
    for thread in readers:
        thread.join()
    assert errors == []
    # The indexes agree with the content at the end.
    for key, o in store.items().items():
        assert key in store.index_keys("app", o["metadata"]["labels"]["app"])
        assert key in store.index_keys(NAMESPACE_INDEX, o["metadata"]["namespace"])


def test_objects_rest_as_compact_json_and_read_back_equal_once_no_longer_kept_decoded() -> None:
    from faro.cache.store import DECODED_CACHE_SIZE

    store = Store({"app": by_app})
    first = obj("a", labels={"app": "web"})
    store.add(first)
    assert store.get_encoded("default/a") == orjson.dumps(first)
    for index in range(DECODED_CACHE_SIZE):  # push "a" out of the decoded objects
        store.add(obj(f"other-{index}"))
    again = store.get("default/a")
    assert again == first and again is not first
    assert store.get("default/a") is again  # a read keeps it decoded
    assert [o["metadata"]["name"] for o in store.by_index("app", "web")] == ["a"]
    store.add(obj("a", labels={"app": "db"}))  # the index drops the old value it decodes
    assert store.by_index("app", "web") == []
    assert store.index_keys("app", "db") == ["default/a"]


def test_an_object_json_cannot_hold_is_kept_as_it_is() -> None:
    store = Store()
    odd = obj("a")
    odd["extra"] = {1, 2}  # a transform may return anything
    store.add(odd)
    assert store.get_encoded("default/a") is odd
    for index in range(1100):
        store.add(obj(f"other-{index}"))
    assert store.get("default/a") is odd
    assert store.pop("default/a") is odd


def test_put_and_pop_encoded_hand_back_the_stored_form_and_the_object_when_kept() -> None:
    store = Store()
    first = obj("a", rv="1")
    assert store.put_encoded("default/a", first, orjson.dumps(first)) == (None, None)
    second = obj("a", rv="2")
    old, old_object = store.put_encoded("default/a", second, orjson.dumps(second))
    assert old == orjson.dumps(first) and old_object is first
    for index in range(1100):
        store.add(obj(f"other-{index}"))
    old, old_object = store.pop_encoded("default/a")
    assert old == orjson.dumps(second) and old_object is None
    assert store.pop_encoded("default/a") == (None, None)
