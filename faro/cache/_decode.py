"""Decoding what the API server sends when it cannot all be decoded.

orjson refuses JSON nested deeper than 1024 levels, which the API server accepts
(a custom resource with ``x-kubernetes-preserve-unknown-fields`` may hold anything). One
such object makes a whole LIST body undecodable. :func:`split_list` then finds the
list's items without decoding them (a linear scan over strings and brackets) so that each
item is decoded on its own and only the one that cannot be is skipped.

:func:`describe_raw` reads the name and resourceVersion an undecodable object's bytes
say, for the log line that reports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
"""A JSON string (skipped whole: brackets inside it are text) or a bracket."""
_ITEMS_VALUE = re.compile(rb"\s*:\s*\[")
_FIELD = {field: re.compile(b'"' + field.encode() + rb'"\s*:\s*"([^"\\]{0,253})"')
          for field in ("namespace", "name", "resourceVersion")}
_DESCRIBE_WINDOW = 64 * 1024


class ListDecodeError(ValueError):
    """A LIST body that is not a JSON object with an ``items`` array, even item by item."""


@dataclass(frozen=True, slots=True)
class Undecodable:
    """An item of a list (or a watch event) that could not be decoded, and why."""

    problem: str
    raw: bytes

    def describe(self) -> str:
        """``namespace/name at resourceVersion N`` as far as its bytes say."""
        return describe_raw(self.raw)


def too_deep(error: orjson.JSONDecodeError) -> bool:
    """Whether orjson refused valid-looking JSON only for its nesting depth."""
    return "depth" in str(error) or "ecursion" in str(error)


def split_list(body: bytes) -> tuple[dict[str, Any], list[Any], list[Undecodable]]:
    """A LIST body orjson refused as a whole: (the list without its items, the items that
    decode, the ones that do not). Raises ListDecodeError if the body is not a list object
    even so (the error orjson gave for the whole body was about something else)."""
    start, end, bounds = _items(body)
    try:
        shell = orjson.loads(body[:start] + b"[]" + body[end:])
    except orjson.JSONDecodeError as error:
        raise ListDecodeError(str(error)) from None
    if not isinstance(shell, dict):
        raise ListDecodeError("not a JSON object")
    items: list[Any] = []
    undecodable: list[Undecodable] = []
    for first, last in bounds:
        raw = body[first:last]
        try:
            items.append(orjson.loads(raw))
        except orjson.JSONDecodeError as error:
            problem = "nested deeper than 1024 levels" if too_deep(error) else str(error)
            undecodable.append(Undecodable(problem, raw))
    return shell, items, undecodable


def _items(body: bytes) -> tuple[int, int, list[tuple[int, int]]]:
    """Where the top-level ``items`` array starts and ends (its brackets included), and
    where each of its elements that is an object or an array starts and ends."""
    depth = 0
    array_start = -1  # where the items array's "[" is
    in_items = False
    item_start = -1
    bounds: list[tuple[int, int]] = []
    for match in _TOKEN.finditer(body):
        token = match.group()
        first = token[0]
        if first == 0x22:  # a string: only the key "items" of the top object matters
            if depth == 1 and array_start < 0 and token == b'"items"':
                value = _ITEMS_VALUE.match(body, match.end())
                if value is not None:
                    array_start = value.end() - 1
            continue
        position = match.start()
        if first in (0x5B, 0x7B):  # [ {
            depth += 1
            if position == array_start:
                in_items = True
            elif in_items and depth == 3:
                item_start = position
            continue
        depth -= 1
        if depth < 0:
            break
        if in_items:
            if depth == 2 and item_start >= 0:
                bounds.append((item_start, match.end()))
                item_start = -1
            elif depth == 1:
                return array_start, match.end(), bounds
    raise ListDecodeError("no items array at the top of the list")


def describe_raw(raw: bytes) -> str:
    """``namespace/name at resourceVersion N`` from an undecodable object's first bytes
    (``unknown`` for what they do not say)."""
    window = raw[:_DESCRIBE_WINDOW]
    found = {}
    for field, pattern in _FIELD.items():
        match = pattern.search(window)
        found[field] = match.group(1).decode(errors="replace") if match else None
    name = found["name"] or "(name unknown)"
    key = f"{found['namespace']}/{name}" if found["namespace"] else name
    version = found["resourceVersion"]
    return f"{key} at resourceVersion {version or 'unknown'}"
