"""A LIST body orjson refuses for one item nested too deep is decoded item by item: the
informer keeps every other object (faro.cache._decode; the simulator cannot serve such a
list, as it encodes with orjson too)."""

from __future__ import annotations

import orjson
import pytest

from faro.cache._decode import ListDecodeError, describe_raw, split_list, too_deep

DEEP = b"[" * 3000 + b"]" * 3000


def item(name: str, rv: str, extra: bytes = b"") -> bytes:
    return (b'{"metadata":{"name":"' + name.encode() + b'","namespace":"ns",'
            b'"resourceVersion":"' + rv.encode() + b'"}' + extra + b"}")


def listing(*items: bytes, tail: bytes = b"") -> bytes:
    return (b'{"kind":"ConfigMapList","apiVersion":"v1",'
            b'"metadata":{"resourceVersion":"42","continue":"c"},'
            b'"items":[' + b",".join(items) + b"]" + tail + b"}")


def test_one_item_too_deep_is_left_out_and_described() -> None:
    body = listing(item("a", "1"), item("deep", "2", b',"spec":' + DEEP), item("b", "3"))
    with pytest.raises(orjson.JSONDecodeError) as refused:
        orjson.loads(body)
    assert too_deep(refused.value)
    shell, items, undecodable = split_list(body)
    assert shell["metadata"] == {"resourceVersion": "42", "continue": "c"}
    assert shell["items"] == []
    assert [i["metadata"]["name"] for i in items] == ["a", "b"]
    assert len(undecodable) == 1
    assert undecodable[0].problem == "nested deeper than 1024 levels"
    assert undecodable[0].describe() == "ns/deep at resourceVersion 2"


def test_strings_with_brackets_quotes_and_the_word_items_do_not_confuse_it() -> None:
    tricky = b',"data":{"items":"[{\\"]}","x":"\\\\","items2":["{"]}'
    body = listing(item("a", "1", tricky), item("deep", "2", b',"spec":' + DEEP),
                   tail=b',"note":"items"')
    shell, items, undecodable = split_list(body)
    assert shell["note"] == "items"
    assert items[0]["data"] == {"items": '[{"]}', "x": "\\", "items2": ["{"]}
    assert len(undecodable) == 1


def test_an_empty_list_and_lists_without_items() -> None:
    shell, items, undecodable = split_list(listing())
    assert (items, undecodable) == ([], [])
    assert shell["metadata"]["resourceVersion"] == "42"
    with pytest.raises(ListDecodeError):
        split_list(b'{"metadata":{},"other":' + DEEP + b"}")
    with pytest.raises(ListDecodeError):
        split_list(b"[" + DEEP + b"]")


def test_describe_raw_says_what_it_does_not_know() -> None:
    assert describe_raw(b'{"object":[1]}') == "(name unknown) at resourceVersion unknown"
    assert describe_raw(b'{"metadata":{"name":"x"}}') == "x at resourceVersion unknown"
