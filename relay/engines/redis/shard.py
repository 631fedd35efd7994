"""One Redis shard: its connection pool, script calls and pipelines."""

from __future__ import annotations

import logging
import os
import shutil
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from relay.config import RedisConfig
from relay.config.pem import load_pem
from relay.config.redis_address import RedisAddress, with_defaults
from relay.config.tree import TLSConfig
from relay.engines.redis.scripts import ALL_SCRIPTS, Script, source_of
from relay.errors import ERROR_INTERNAL, ReplyError

__all__ = [
    "REDIS_FAILURES",
    "ScriptRunner",
    "Shard",
    "PemFiles",
    "common_kwargs",
    "host_port",
    "internal",
    "execute",
    "untyped",
]

# every module of the package logs under the name the single-module engine used
log = logging.getLogger("relay.engines.redis")


#: what a Redis call may raise when Redis (or a cluster node) fails; redis-py's cluster
#: errors (no slot owner, too many redirections) are not ``RedisError``s
REDIS_FAILURES: tuple[type[BaseException], ...] = (
    RedisError,
    RedisClusterException,
    OSError,
    TimeoutError,
)


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


def _tls_kwargs(tls: TLSConfig, entity: str, files: PemFiles) -> dict[str, Any]:
    """redis-py's TLS options for a ``TLSConfig`` block (as Centrifugo's ``ToGoTLSConfig``
    on the client side: TLS 1.2 at least, system roots unless ``server_ca_pem``)."""
    out: dict[str, Any] = {"ssl_min_version": ssl.TLSVersion.TLSv1_2}
    if tls.server_ca_pem:
        out["ssl_ca_data"] = load_pem(tls.server_ca_pem, f"{entity}.server_ca_pem").decode()
    if tls.insecure_skip_verify:
        out["ssl_cert_reqs"] = "none"
        out["ssl_check_hostname"] = False
    if tls.cert_pem and tls.key_pem:
        out["ssl_certfile"] = files.write(load_pem(tls.cert_pem, f"{entity}.cert_pem"))
        out["ssl_keyfile"] = files.write(load_pem(tls.key_pem, f"{entity}.key_pem"))
    return out


class PemFiles:
    """A private directory for the client certificate and key: redis-py reads them from
    files at each connect. Removed when the shard closes."""

    def __init__(self) -> None:
        self._dir: str | None = None
        self._count = 0

    def write(self, data: bytes) -> str:
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="relay-redis-tls-")
        self._count += 1
        path = os.path.join(self._dir, f"{self._count}.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return path

    def remove(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def common_kwargs(target: RedisAddress, cfg: RedisConfig, files: PemFiles) -> dict[str, Any]:
    """The connection options of every connection to ``target`` (TLS included)."""
    common: dict[str, Any] = {
        "db": target.db,
        "username": target.username or None,
        "password": target.password or None,
        "client_name": cfg.client_name or None,
        "protocol": 2,  # replies (PUB/SUB messages included) as plain RESP2 arrays
        "socket_connect_timeout": target.connect_timeout,
        "socket_timeout": target.io_timeout,
        # one quick retry when a pooled connection turned out to be dead
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    }
    if target.tls or cfg.tls.enabled:
        common.update(_tls_kwargs(cfg.tls, "engine.redis.tls", files))
    return common


def _pool(target: RedisAddress, cfg: RedisConfig, files: PemFiles) -> ConnectionPool:
    """The connection pool of one shard: a server (TCP, TLS or a unix socket), or the
    master that ``target``'s sentinels name (re-asked after every connection loss, so a
    failover is followed)."""
    common = common_kwargs(target, cfg, files)
    use_tls = target.tls or cfg.tls.enabled
    if target.mode == "sentinel":
        sentinel_kwargs: dict[str, Any] = {
            "username": target.sentinel_user or cfg.sentinel_user or None,
            "password": target.sentinel_password or cfg.sentinel_password or None,
            "client_name": cfg.sentinel_client_name or None,
            "socket_connect_timeout": target.connect_timeout,
            "socket_timeout": target.io_timeout,
        }
        if target.sentinel_tls or cfg.sentinel_tls.enabled:
            sentinel_kwargs["ssl"] = True
            sentinel_kwargs.update(
                _tls_kwargs(cfg.sentinel_tls, "engine.redis.sentinel_tls", files)
            )
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            [host_port(a) for a in target.addresses], sentinel_kwargs=sentinel_kwargs
        )
        return SentinelConnectionPool(  # type: ignore[no-untyped-call]
            target.sentinel_master_name, sentinel, ssl=use_tls, **common
        )
    if target.unix:
        return ConnectionPool(
            connection_class=UnixDomainSocketConnection, path=target.addresses[0], **common
        )
    host, port = host_port(target.addresses[0])
    connection_class = SSLConnection if use_tls else Connection
    return ConnectionPool(connection_class=connection_class, host=host, port=port, **common)


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class ScriptRunner:
    """Lua scripts over a shard's client: EVALSHA, EVAL when the script is not loaded,
    and batches that load what they miss (a server or a cluster)."""

    client: Any

    async def run_script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await execute(self.client, "EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await execute(self.client, "EVAL", script.source, len(keys), *keys, *args)

    async def run_batch(self, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Many commands in one round trip (per node); per-command errors come back as
        values. ``EVALSHA`` calls that find no script are re-run (in order) after loading it.
        """
        results = await self._pipeline(calls)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            for source in {source_of(calls[i][1]) for i in missing} - {""}:
                await self._script_load(source)
            retried = await self._pipeline([calls[i] for i in missing])
            for i, r in zip(missing, retried, strict=True):
                results[i] = r
        return results

    async def _pipeline(self, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        raise NotImplementedError

    async def _script_load(self, source: str) -> None:
        raise NotImplementedError

    async def load_scripts(self) -> None:
        """SCRIPT LOAD every script (after a (re)connect: Redis may have restarted)."""
        for script in ALL_SCRIPTS:
            await self._script_load(script.source)


class Shard(ScriptRunner):
    """Commands to one Redis server: a connection pool, scripts, key names."""

    def __init__(self, index: int, target: RedisAddress, cfg: RedisConfig) -> None:
        self.index = index
        self.target = target = with_defaults(target, cfg)
        self.address = ",".join(target.addresses)
        self._files = PemFiles()
        self.pool: ConnectionPool = _pool(target, cfg, self._files)
        self.client: Redis = Redis(connection_pool=self.pool)

    def new_pubsub_connection(self) -> AbstractConnection:
        """A connection outside the pool, with no read timeout (liveness by PING)."""
        kwargs = dict(self.pool.connection_kwargs)
        kwargs["socket_timeout"] = None
        kwargs["retry"] = Retry(NoBackoff(), 0)
        conn: AbstractConnection = self.pool.connection_class(**kwargs)
        return conn

    async def _pipeline(self, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for call in calls:
            pipe.execute_command(*call)
        return list(await pipe.execute(raise_on_error=False))

    async def _script_load(self, source: str) -> None:
        await execute(self.client, "SCRIPT", "LOAD", source)

    async def close(self) -> None:
        await self.client.aclose()
        await self.pool.disconnect()
        self._files.remove()
