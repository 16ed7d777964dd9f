"""Which shard an object belongs to (``shard:`` in the configuration, ``faro run --shards``).

Contract: an object whose key is ``namespace/name`` (``name`` when cluster-scoped) belongs to
shard ``zlib.crc32(key.encode("utf-8")) % count``: stable across processes, restarts and
faro versions, and computable in any language. With one shard every object belongs to it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from faro.config import ShardConfig


def shard_of(key: str, count: int) -> int:
    """The shard (0 to ``count - 1``) of the object whose key is ``key``."""
    return zlib.crc32(key.encode("utf-8")) % count


def accepts(shard: ShardConfig) -> Callable[[str], bool] | None:
    """Whether an object key belongs to ``shard`` (None: every key does, one shard)."""
    index, count = shard.index, shard.count
    if count <= 1:
        return None
    return lambda key: shard_of(key, count) == index
