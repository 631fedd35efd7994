"""Redis engine (``engine.type: redis``); the design is described in :mod:`.engine`.

Modules, each importing only those listed after it: ``engine`` (:class:`RedisEngine`),
``pubsub`` (one PUB/SUB connection per shard), ``shard`` (pool and commands of one
Redis server), ``scripts`` (the Lua scripts in ``scripts/*.lua``) and ``wire``
(payload encoding, :func:`shard_index`).
"""

from __future__ import annotations

from relay.engines.redis.engine import (
    BrokerStateHandler,
    PublishItem,
    PublishOutcome,
    RedisEngine,
)
from relay.engines.redis.wire import shard_index

__all__ = [
    "RedisEngine",
    "BrokerStateHandler",
    "PublishItem",
    "PublishOutcome",
    "shard_index",
]
