"""One Redis shard: its connection pool, script calls and pipelines."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from relay.config import RedisConfig
from relay.engines.redis.scripts import ALL_SCRIPTS, Script, source_of
from relay.errors import ERROR_INTERNAL, ReplyError

__all__ = ["Shard", "internal", "execute", "untyped"]

# every module of the package logs under the name the single-module engine used
log = logging.getLogger("relay.engines.redis")


def _normalize_address(address: str) -> str:
    return address if "://" in address else f"redis://{address}"


def internal(exc: BaseException) -> ReplyError:
    log.warning("redis engine: %s: %s", type(exc).__name__, exc)
    err = ReplyError(ERROR_INTERNAL)
    err.__cause__ = exc
    return err


def untyped(func: Any) -> Callable[..., Awaitable[Any]]:
    """redis-py leaves some coroutine methods unannotated; give them a type."""
    return cast(Callable[..., Awaitable[Any]], func)


def execute(client: Redis, *args: Any) -> Awaitable[Any]:
    """``client.execute_command(*args)``: one command, raw reply."""
    return untyped(client.execute_command)(*args)


class Shard:
    """Commands to one Redis server: a connection pool, scripts, key names."""

    def __init__(self, index: int, address: str, cfg: RedisConfig) -> None:
        self.index = index
        self.address = address
        self.pool: ConnectionPool = ConnectionPool.from_url(
            _normalize_address(address),
            db=cfg.db,
            username=cfg.user or None,
            password=cfg.password or None,
            client_name=cfg.client_name or None,
            protocol=2,  # replies (PUB/SUB messages included) as plain RESP2 arrays
            socket_connect_timeout=cfg.connect_timeout,
            socket_timeout=cfg.io_timeout,
            # one quick retry when a pooled connection turned out to be dead
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self.client: Redis = Redis(connection_pool=self.pool)

    def new_pubsub_connection(self) -> AbstractConnection:
        """A connection outside the pool, with no read timeout (liveness by PING)."""
        kwargs = dict(self.pool.connection_kwargs)
        kwargs["socket_timeout"] = None
        kwargs["retry"] = Retry(NoBackoff(), 0)
        conn: AbstractConnection = self.pool.connection_class(**kwargs)
        return conn

    async def run_script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await execute(self.client, "EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await execute(self.client, "EVAL", script.source, len(keys), *keys, *args)

    async def run_batch(self, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Many commands in one round trip; per-command errors come back as values.

        ``EVALSHA`` calls that find no script are re-run (in order) after loading it.
        """
        results = await self._pipeline(calls)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            for source in {source_of(calls[i][1]) for i in missing} - {""}:
                await execute(self.client, "SCRIPT", "LOAD", source)
            retried = await self._pipeline([calls[i] for i in missing])
            for i, r in zip(missing, retried, strict=True):
                results[i] = r
        return results

    async def _pipeline(self, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for call in calls:
            pipe.execute_command(*call)
        return list(await pipe.execute(raise_on_error=False))

    async def load_scripts(self) -> None:
        """SCRIPT LOAD every script (after a (re)connect: Redis may have restarted)."""
        pipe = self.client.pipeline(transaction=False)
        for script in ALL_SCRIPTS:
            pipe.execute_command("SCRIPT", "LOAD", script.source)
        await pipe.execute()

    async def close(self) -> None:
        await self.client.aclose()
        await self.pool.disconnect()
