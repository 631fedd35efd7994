"""One Redis Cluster as one shard of the Redis engine (``redis+cluster://``,
``cluster_address``), with Centrifugo's cluster key layout.

* Every key of a channel carries the channel as its hash tag (``P.stream.{ch}``,
  ``P.stream.meta.{ch}``, ``P.result.{ch}.<key>``, ``P.presence.data.{ch}``,
  ``P.presence.expire.{ch}``), so one channel's keys share a slot and its Lua scripts run
  on the node that owns it; the PUB/SUB channel is ``P.client.{ch}`` (centrifuge
  ``broker_redis.go``, ``presence_redis.go``; Centrifugo 6.9.1 has no sharded PUB/SUB).
* Commands go through redis-py's cluster client (slots learnt from the seeds, MOVED and
  ASK followed, the topology re-read after failures); PUB/SUB is one SUBSCRIBE
  connection to any node, since Redis Cluster forwards every PUBLISH to all nodes; when
  that node goes away the link reconnects through the next known node.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from relay.config import RedisConfig
from relay.config.redis_address import RedisAddress, with_defaults
from relay.engines.redis.shard import PemFiles, ScriptRunner, common_kwargs, host_port

__all__ = ["ClusterShard", "tagged"]


def tagged(name: str) -> str:
    """``name`` as a cluster hash tag: ``{name}``."""
    return "{" + name + "}"


class ClusterShard(ScriptRunner):
    """The ``Shard`` interface over a Redis Cluster."""

    def __init__(self, index: int, target: RedisAddress, cfg: RedisConfig) -> None:
        self.index = index
        self.target = target = with_defaults(target, cfg)
        self.address = ",".join(target.addresses)
        self._files = PemFiles()
        common = common_kwargs(target, cfg, self._files)
        common.pop("db", None)  # a cluster has database 0 only
        common.pop("retry", None)
        self._common = common
        self._tls = target.tls or cfg.tls.enabled
        seeds = [ClusterNode(*host_port(a)) for a in target.addresses]
        self.client: Any = RedisCluster(startup_nodes=seeds, ssl=self._tls, **common)
        self._seeds = [host_port(a) for a in target.addresses]
        self._turn = itertools.count()

    def _nodes(self) -> list[tuple[str, int]]:
        """Every node known now (after the first topology read), else the seeds."""
        known = [(n.host, n.port) for n in self.client.get_nodes()]
        return known or self._seeds

    def new_pubsub_connection(self) -> AbstractConnection:
        """A connection to the next node in turn, with no read timeout."""
        nodes = self._nodes()
        host, port = nodes[next(self._turn) % len(nodes)]
        kwargs = dict(self._common)
        kwargs["socket_timeout"] = None
        kwargs["retry"] = Retry(NoBackoff(), 0)
        if self._tls:
            return SSLConnection(host=host, port=port, **kwargs)
        return Connection(host=host, port=port, **kwargs)

    async def _pipeline(self, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        pipe = self.client.pipeline()
        for call in calls:
            pipe.execute_command(*call)
        return list(await pipe.execute(raise_on_error=False))

    async def _script_load(self, source: str) -> None:
        await self.client.script_load(source)  # on every primary

    async def close(self) -> None:
        await self.client.aclose()
        self._files.remove()
