"""Transforms applied to each object before an informer stores it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Transform = Callable[[dict[str, Any]], dict[str, Any]]
"""Takes a freshly decoded object (nobody else holds it yet) and returns the object to store."""


def strip_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop ``metadata.managedFields`` (often half an object's size; rarely read by watchers)."""
    metadata = obj.get("metadata")
    if metadata is not None:
        metadata.pop("managedFields", None)
    return obj
