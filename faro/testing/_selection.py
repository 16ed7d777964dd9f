"""Selectors and paging: which objects a list or watch sees, and how a list is cut into pages.

Contract:

- A :class:`Selection` is one resource, a namespace (None: every one) and label and field
  selectors; :meth:`Selection.matches` is the selectors' verdict on an object, as the real
  server's storage filter gives it (fields are the kind's selectable fields, see
  :mod:`faro.testing._fields`). :func:`parse_selection` refuses what the real server
  refuses, in its words (400).
- :class:`Lister` serves a list at the resourceVersion the request asks for (latest, any,
  ``Exact`` N or ``NotOlderThan`` N), waiting for a future one, with 410 Expired for a
  compacted one. Every page of a paged list is read at the first page's resourceVersion;
  the continue token carries it and the last key served. ``remainingItemCount`` is given
  only when no selector filters.
- :func:`check_list_options` and :func:`check_watch_options` validate ListOptions as the
  real handler does (422 Invalid naming the field).
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from faro._selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from faro.testing._errors import ApiError, expired, invalid
from faro.testing._fields import field_values, selectable
from faro.testing._resources import ResourceType
from faro.testing._storage import Key, VersionedStorage, dumps, parse_rv

_CONTINUE_TOO_OLD = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted "
    "between the time the first chunk was returned and now may show up in the list."
)


@dataclass(frozen=True)
class Selection:
    """The objects of one resource a list or watch asks for."""

    resource: ResourceType
    namespace: str | None  # None: every namespace (and cluster-scoped resources)
    labels: LabelSelector
    fields: FieldSelector

    @property
    def filters(self) -> bool:
        """Whether a selector may leave objects out (the namespace aside)."""
        return not (self.labels.is_empty and self.fields.is_empty)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether ``obj`` satisfies the label and field selectors (not the namespace)."""
        metadata = obj["metadata"]
        if not self.labels.is_empty and not self.labels.matches(metadata.get("labels")):
            return False
        if self.fields.is_empty:
            return True
        return self.fields.matches(field_values(self.resource, obj))


def parse_selection(rt: ResourceType, namespace: str | None, label_selector: str = "",
                    field_selector: str = "") -> Selection:
    """A Selection from the request's ``labelSelector`` and ``fieldSelector``; 400 if malformed.

    A field the resource cannot select on is refused, listing those it can.
    """
    # The parser's messages are the real server's, which adds nothing to them.
    try:
        labels = parse_label_selector(label_selector)
    except SelectorError as error:
        raise ApiError(400, str(error)) from error
    try:
        fields = parse_field_selector(field_selector)
    except SelectorError as error:
        raise ApiError(400, str(error)) from error
    supported = selectable(rt)
    for name in sorted(fields.fields()):
        if name not in supported:
            raise ApiError(400, f'"{name}" is not a known field selector: only '
                           + ", ".join(f'"{field}"' for field in supported))
    return Selection(rt, namespace, labels, fields)


@dataclass
class ListResult:
    """One page of a list: encoded items and list metadata."""

    items: list[bytes]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None


class Lister:
    """Lists of one storage's objects, at a resourceVersion, filtered and paged."""

    def __init__(self, storage: VersionedStorage) -> None:
        self._storage = storage

    def list(
        self,
        selection: Selection,
        *,
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
        match: str = "",
        bare_items: bool = False,
        send_initial_events: bool | None = None,
    ) -> ListResult:
        """List with the API server's resourceVersion, paging and selector rules.

        ``bare_items`` encodes items without apiVersion and kind, as the real
        server's lists of built-in kinds have them. ``send_initial_events`` is the
        request's parameter (None: absent), which a list refuses.
        """
        check_list_options(resource_version, match, continue_token, send_initial_events)
        if continue_token:
            at, after = _decode_continue(continue_token)
            if resource_version not in ("", "0"):
                raise ApiError(
                    400, "specifying resource version is not allowed when using continue"
                )
        else:
            at = self._list_rv(resource_version, match, limit)
            after = None
        # at < 0: a token for "the latest", as the real server hands out with a 410
        snapshot = self._storage.snapshot(selection.resource.storage, at)
        if snapshot is None:
            if continue_token:
                assert after is not None
                error = expired(_CONTINUE_TOO_OLD)
                error.list_continue = _encode_continue(-1, after)
                raise error
            raise expired("The resourceVersion for the provided list is too old.")
        keys, entries = snapshot.keys, snapshot.entries
        lo, hi = 0, len(keys)
        namespace = selection.namespace
        if namespace is not None:
            lo = bisect.bisect_left(keys, (namespace, ""))
            hi = bisect.bisect_left(keys, (namespace + "\x00", ""))
        if after is not None:
            lo = max(lo, bisect.bisect_right(keys, after))
        filtering = selection.filters
        items: list[bytes] = []
        api_version = selection.resource.api_version
        index = lo
        while index < hi:
            entry = entries[index]
            index += 1
            if filtering and not selection.matches(entry.obj):
                continue
            items.append(entry.list_item() if bare_items else entry.encoded_as(api_version))
            if limit and len(items) >= limit:
                break
        result = ListResult(items, snapshot.rv)
        if limit and index < hi:
            result.continue_token = _encode_continue(snapshot.rv, keys[index - 1])
            if not filtering:
                result.remaining = hi - index
        return result

    def _list_rv(self, resource_version: str, match: str, limit: int = 0) -> int:
        """The resourceVersion a list without a continue token is served at.

        N with ``Exact``, or N with a limit and no match (the legacy rule), is
        served at exactly N; N otherwise at the latest (not older than N).
        """
        if resource_version in ("", "0"):
            return self._storage.rv
        requested = parse_rv(resource_version)
        self._storage.wait_for_rv(requested)
        exact = match == "Exact" or (not match and limit > 0)
        return requested if exact else self._storage.rv


def _encode_continue(rv: int, last: Key) -> str:
    token = dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": [last[0], last[1]]})
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, Key]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        rv = int(data["rv"])
        start = (str(data["start"][0]), str(data["start"][1]))
    except (binascii.Error, ValueError, KeyError, TypeError, IndexError) as error:
        raise ApiError(400, f"invalid continue token: continue key is not valid: {error}") \
            from error
    if rv == 0:
        raise ApiError(400, "invalid continue token: continue key is not valid: incorrect "
                       "encoded start resourceVersion (version meta.k8s.io/v1)")
    return rv, start


def check_list_options(resource_version: str, match: str, continue_token: str,
                       send_initial_events: bool | None = None) -> None:
    """ListOptions validation as the real handler does it (422 Invalid ListOptions)."""
    problems = []
    if match:
        if not resource_version:
            problems.append("Forbidden: resourceVersionMatch is forbidden unless "
                            "resourceVersion is provided")
        if continue_token:
            problems.append("Forbidden: resourceVersionMatch is forbidden when continue is "
                            "provided")
        if match not in ("Exact", "NotOlderThan"):
            problems.append(f'Unsupported value: "{match}": supported values: "Exact", '
                            '"NotOlderThan", ""')
        if match == "Exact" and resource_version == "0":
            problems.append('Forbidden: resourceVersionMatch "exact" is forbidden for '
                            'resourceVersion "0"')
    causes = [("resourceVersionMatch", problem) for problem in problems]
    if send_initial_events is not None:
        causes.append(("sendInitialEvents", "Forbidden: sendInitialEvents is forbidden for list"))
    if causes:
        raise invalid("ListOptions", "meta.k8s.io", "", causes)


def check_watch_options(match: str, continue_token: str,
                        send_initial_events: bool | None) -> None:
    """A watch's ListOptions validation, as the real handler's (422 Invalid ListOptions)."""
    problems = []
    if send_initial_events is not None and match != "NotOlderThan":
        problems.append("Forbidden: sendInitialEvents requires setting resourceVersionMatch to "
                        "NotOlderThan")
    if match:
        if send_initial_events is None:
            problems.append("Forbidden: resourceVersionMatch is forbidden for watch unless "
                            "sendInitialEvents is provided")
        if match != "NotOlderThan":
            problems.append(f'Unsupported value: "{match}": supported values: "NotOlderThan"')
        if continue_token:
            problems.append("Forbidden: resourceVersionMatch is forbidden when continue is "
                            "provided")
    if problems:
        raise invalid("ListOptions", "meta.k8s.io", "",
                      [("resourceVersionMatch", problem) for problem in problems])
