"""The leader's checkpoint: per informer, the resourceVersion up to which every event it
reported has been delivered, kept in an annotation of the leader's Lease.

Contract: the annotation :data:`ANNOTATION` holds ``{"streams": {informer: version}}`` as
JSON, the informer described as :meth:`faro.controller.Controller.informers` names it, so
replicas with one configuration agree. The leader sets it with every write of the Lease
(each renewal, every ``retry_period``; and its release when it stops, after the last
delivery), so checkpoints cost no request of their own, and a ConfigMap the configuration
watches is never written (a checkpoint there would be an event, and a new checkpoint, for
ever). A new holder keeps the old one's annotation until it has resumed from it.
"""

from __future__ import annotations

import orjson

ANNOTATION = "faro/checkpoint"


def encode_checkpoint(versions: dict[str, str]) -> str:
    """The annotation's value for ``versions`` (sorted: an unchanged one is equal)."""
    return orjson.dumps({"streams": versions}, option=orjson.OPT_SORT_KEYS).decode()


def decode_checkpoint(text: str | None) -> dict[str, str]:
    """The versions in an annotation's value ({} for none, or anything else than faro's:
    the next checkpoint replaces it)."""
    if not text:
        return {}
    try:
        streams = orjson.loads(text)["streams"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return {}
    if not isinstance(streams, dict):
        return {}
    return {key: value for key, value in streams.items()
            if isinstance(key, str) and isinstance(value, str) and value}
