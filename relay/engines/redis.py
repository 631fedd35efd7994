"""Redis engine: broker (PUB/SUB + history streams + idempotency) and presence manager.

Same contract as :mod:`relay.engines.base` / ``MemoryEngine``, with Centrifugo v6's key
layout (spec/server-surface.md §9.3) so the data is laid out the way Centrifugo lays
it out:

* ``P.client.<ch>``: PUB/SUB channel; payload = protobuf ``Publication`` (no history),
  ``__p1:<offset>:<epoch>__`` + protobuf ``Publication`` (history), ``__j__`` / ``__l__``
  + protobuf ``ClientInfo`` (join / leave).
* ``P.stream.<ch>``: Redis stream, entry id ``<offset>-0``, field ``d`` = ``Publication``.
* ``P.stream.meta.<ch>``: HASH ``e`` = epoch, ``s`` = top offset.
* ``P.result.<ch>.<key>``: HASH ``e``, ``s``; idempotency result, 300 s.
* ``P.presence.data.<ch>`` (HASH client -> ``ClientInfo``) and
  ``P.presence.expire.<ch>`` (ZSET client scored by expire-at, unix seconds).

Every command is bounded by ``io_timeout``; a Redis failure raises
``ReplyError(ERROR_INTERNAL)`` and never hangs. Several ``address`` entries are
independent shards: a channel lives on shard ``jump_hash(fnv1a_64(channel), n)``.

Each shard has one dedicated PUB/SUB connection (:class:`_PubSubLink`) that follows
``subscribe``/``unsubscribe``, batches SUBSCRIBE/UNSUBSCRIBE commands, reconnects on its
own with capped exponential backoff and resubscribes every channel. Besides the three
``EventHandler`` methods the engine calls two optional hooks on the handler, when the
handler has them (see :class:`BrokerStateHandler`):

* ``handle_broker_lost(channels)`` right after a shard's PUB/SUB connection is lost:
  publications of those channels may be missed from now on, so the node should make
  their clients resubscribe (positioned/recoverable ones then recover from history).
* ``handle_broker_resubscribed(channels)`` once the new connection has resubscribed
  those channels (all confirmations received): delivery is live again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar, cast

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError

from relay.cluster.shards import fnv1a_64, jump_hash
from relay.config import RedisConfig
from relay.engines.base import EventHandler, PublishOptions
from relay.engines.memory import IDEMPOTENCY_TTL, new_epoch
from relay.errors import (
    ERROR_BAD_REQUEST,
    ERROR_INTERNAL,
    ERROR_UNRECOVERABLE_POSITION,
    ReplyError,
)
from relay.protocol import json_codec
from relay.protocol.messages import (
    ClientInfo,
    HistoryFilter,
    HistoryResult,
    Publication,
    StreamPosition,
)
from relay.protocol.protobuf_codec import decode_message, encode_message

__all__ = [
    "RedisEngine",
    "BrokerStateHandler",
    "PublishItem",
    "PublishOutcome",
    "shard_index",
]

log = logging.getLogger("relay.engines.redis")

T = TypeVar("T")

#: One publish of a batch: channel, publication, options.
PublishItem = tuple[str, Publication, PublishOptions]
#: What ``publish_many`` gives for one item: the ``publish`` result or the error.
PublishOutcome = tuple[StreamPosition, bool] | ReplyError


_PING_INTERVAL = 2.0
_BACKOFF_MIN = 0.05
_BACKOFF_MAX = 2.0
_SUBSCRIBE_CHUNK = 512
_RESUB_MARK = b"relay-resubscribed"

_P1 = b"__p1:"
_JOIN = b"__j__"
_LEAVE = b"__l__"

# ---- Lua --------------------------------------------------------------------------------
# Publish. KEYS: stream, meta, result ("" = no idempotency key).
# ARGV: pubsub channel, publication, history size, history ttl ms, meta ttl ms (0 = keep),
#       epoch to use if the channel has none, idempotency ttl ms, "1" = keep history.
# Returns {offset, epoch, suppressed (0/1)}.
_PUBLISH_LUA = """
local stream, meta, result = KEYS[1], KEYS[2], KEYS[3]
if result ~= '' then
  local prev = redis.call('hmget', result, 'e', 's')
  if prev[1] then
    return {tonumber(prev[2]) or 0, prev[1], 1}
  end
end
local offset, epoch = 0, ''
if ARGV[8] == '1' then
  epoch = redis.call('hget', meta, 'e')
  if not epoch then
    epoch = ARGV[6]
    redis.call('del', stream)
    redis.call('hset', meta, 'e', epoch)
  end
  offset = redis.call('hincrby', meta, 's', 1)
  if tonumber(ARGV[5]) > 0 then
    redis.call('pexpire', meta, ARGV[5])
  end
  redis.call('xadd', stream, 'MAXLEN', ARGV[3], offset .. '-0', 'd', ARGV[2])
  redis.call('pexpire', stream, ARGV[4])
  redis.call('publish', ARGV[1], '__p1:' .. offset .. ':' .. epoch .. '__' .. ARGV[2])
else
  redis.call('publish', ARGV[1], ARGV[2])
end
if result ~= '' then
  redis.call('hset', result, 'e', epoch, 's', offset)
  redis.call('pexpire', result, ARGV[7])
end
return {offset, epoch, 0}
"""

# History. KEYS: stream, meta.
# ARGV: "1" = read entries, count (<= 0 = all), "1" = reverse, meta ttl ms (0 = keep),
#       epoch to use if the channel has none, since epoch ("" = none), range start id,
#       range end id ("" = empty range).
# Returns {top offset, epoch, entries}.
_HISTORY_LUA = """
local stream, meta = KEYS[1], KEYS[2]
local epoch = redis.call('hget', meta, 'e')
if not epoch then
  epoch = ARGV[5]
  redis.call('del', stream)
  redis.call('hset', meta, 'e', epoch)
end
local top = tonumber(redis.call('hget', meta, 's')) or 0
if tonumber(ARGV[4]) > 0 then
  redis.call('pexpire', meta, ARGV[4])
end
if ARGV[1] ~= '1' or ARGV[8] == '' or (ARGV[6] ~= '' and ARGV[6] ~= epoch) then
  return {top, epoch, {}}
end
local cmd = 'xrange'
if ARGV[3] == '1' then cmd = 'xrevrange' end
local entries
if tonumber(ARGV[2]) > 0 then
  entries = redis.call(cmd, stream, ARGV[7], ARGV[8], 'COUNT', ARGV[2])
else
  entries = redis.call(cmd, stream, ARGV[7], ARGV[8])
end
return {top, epoch, entries}
"""

# Presence add. KEYS: expire zset, data hash. ARGV: ttl ms, expire-at (s), client, info.
_PRESENCE_ADD_LUA = """
redis.call('zadd', KEYS[1], ARGV[2], ARGV[3])
redis.call('hset', KEYS[2], ARGV[3], ARGV[4])
redis.call('pexpire', KEYS[1], ARGV[1])
redis.call('pexpire', KEYS[2], ARGV[1])
return 1
"""

# Presence remove. KEYS: expire zset, data hash. ARGV: client.
_PRESENCE_REMOVE_LUA = """
redis.call('zrem', KEYS[1], ARGV[1])
redis.call('hdel', KEYS[2], ARGV[1])
return 1
"""

# Presence read. KEYS: expire zset, data hash. ARGV: now (s). Purges expired entries.
_PRESENCE_GET_LUA = """
local expired = redis.call('zrangebyscore', KEYS[1], '0', ARGV[1])
if #expired > 0 then
  redis.call('zremrangebyscore', KEYS[1], '0', ARGV[1])
  redis.call('hdel', KEYS[2], unpack(expired))
end
return redis.call('hgetall', KEYS[2])
"""


class _Script:
    """A Lua script run by EVALSHA, falling back to EVAL when Redis lost its cache."""

    __slots__ = ("source", "sha")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


_PUBLISH = _Script(_PUBLISH_LUA)
_HISTORY = _Script(_HISTORY_LUA)
_PRESENCE_ADD = _Script(_PRESENCE_ADD_LUA)
_PRESENCE_REMOVE = _Script(_PRESENCE_REMOVE_LUA)
_PRESENCE_GET = _Script(_PRESENCE_GET_LUA)


# ---- sharding ---------------------------------------------------------------------------
def shard_index(channel: str, shards: int) -> int:
    """The shard of ``channel`` among ``shards``, as Centrifugo picks it."""
    if shards <= 1:
        return 0
    return jump_hash(fnv1a_64(channel.encode()), shards)


# ---- payloads ---------------------------------------------------------------------------
def _encode_pub(pub: Publication) -> bytes:
    d = pub.to_dict()
    d.pop("offset", None)
    return encode_message("Publication", d)


def _info_from_dict(d: dict[str, Any]) -> ClientInfo:
    return ClientInfo(
        user=d.get("user", ""),
        client=d.get("client", ""),
        conn_info=d.get("conn_info") or None,
        chan_info=d.get("chan_info") or None,
    )


def _decode_info(data: bytes) -> ClientInfo:
    return _info_from_dict(decode_message("ClientInfo", data))


def _decode_pub(data: bytes, offset: int = 0) -> Publication:
    d = decode_message("Publication", data)
    info = d.get("info")
    payload = bytes(d.get("data", b""))
    return Publication(
        data=payload,
        info=_info_from_dict(info) if info is not None else None,
        offset=offset,
        tags=d.get("tags") or None,
        time=int(d.get("time", 0)),
        data_json=json_codec.is_json(payload),
    )


def _split_p1(data: bytes) -> tuple[int, str, bytes]:
    """``__p1:<offset>:<epoch>__<protobuf>`` -> offset, epoch, protobuf."""
    end = data.index(b"__", len(_P1))
    offset, _, epoch = data[len(_P1) : end].partition(b":")
    return int(offset), epoch.decode(), data[end + 2 :]


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _range_ids(flt: HistoryFilter) -> tuple[str, str]:
    """XRANGE/XREVRANGE bounds for a filter (end "" = nothing to read)."""
    since = flt.since
    if flt.reverse:
        if since is None:
            return "+", "-"
        high = since.offset - 1
        return (str(high), "-") if high >= 1 else ("+", "")
    if since is None:
        return "-", "+"
    return str(since.offset + 1), "+"


def _normalize_address(address: str) -> str:
    return address if "://" in address else f"redis://{address}"


def _internal(exc: BaseException) -> ReplyError:
    log.warning("redis engine: %s: %s", type(exc).__name__, exc)
    err = ReplyError(ERROR_INTERNAL)
    err.__cause__ = exc
    return err


# ---- optional handler hooks -------------------------------------------------------------
class BrokerStateHandler(Protocol):
    """Optional methods an ``EventHandler`` may have to learn about PUB/SUB outages."""

    def handle_broker_lost(self, channels: list[str]) -> None:
        """The PUB/SUB connection carrying ``channels`` broke; publications may be lost."""

    def handle_broker_resubscribed(self, channels: list[str]) -> None:
        """``channels`` are subscribed again on a new PUB/SUB connection."""


# ---- one shard --------------------------------------------------------------------------
class _Shard:
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

    async def run_script(self, script: _Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await _execute(self.client, "EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await _execute(self.client, "EVAL", script.source, len(keys), *keys, *args)

    async def run_batch(self, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Many commands in one round trip; per-command errors come back as values.

        ``EVALSHA`` calls that find no script are re-run (in order) after loading it.
        """
        results = await self._pipeline(calls)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            for source in {_source_of(calls[i][1]) for i in missing} - {""}:
                await _execute(self.client, "SCRIPT", "LOAD", source)
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
        for script in _ALL_SCRIPTS:
            pipe.execute_command("SCRIPT", "LOAD", script.source)
        await pipe.execute()

    async def close(self) -> None:
        await self.client.aclose()
        await self.pool.disconnect()


_ALL_SCRIPTS = (_PUBLISH, _HISTORY, _PRESENCE_ADD, _PRESENCE_REMOVE, _PRESENCE_GET)
_SCRIPTS_BY_SHA = {s.sha: s.source for s in _ALL_SCRIPTS}


def _source_of(sha: str) -> str:
    return _SCRIPTS_BY_SHA.get(sha, "")


# ---- PUB/SUB ----------------------------------------------------------------------------
class _PubSubLink:
    """The PUB/SUB connection of one shard: subscriptions, reader, reconnects.

    ``wanted`` is the set of Redis channels this node should be subscribed to; it
    survives reconnects (a new connection subscribes all of it). SUBSCRIBE/UNSUBSCRIBE
    from concurrent callers are queued and written together by one writer task.
    """

    def __init__(
        self,
        shard: _Shard,
        io_timeout: float,
        on_message: Callable[[bytes, bytes], None],
        on_lost: Callable[[list[bytes]], None],
        on_resubscribed: Callable[[list[bytes]], None],
    ) -> None:
        self._shard = shard
        self._io_timeout = io_timeout
        self._on_message = on_message
        self._on_lost = on_lost
        self._on_resubscribed = on_resubscribed
        self._wanted: set[bytes] = set()
        self._waiters: dict[bytes, deque[asyncio.Future[None]]] = {}
        self._ops: list[tuple[bytes, ...]] = []
        self._kick = asyncio.Event()
        self._online = False
        self._resubscribed: list[bytes] = []
        self._last_read = 0.0
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._connected_before = False

    # -- API --
    def start(self) -> None:
        self._task = asyncio.create_task(
            self._supervise(), name=f"redis-pubsub-{self._shard.index}"
        )

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=self._io_timeout + 1.0)

    async def subscribe(self, name: bytes) -> None:
        """Subscribe and wait for Redis to confirm (at most ``io_timeout``)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(name, deque()).append(fut)
        self._wanted.add(name)
        if self._online:
            self._send(b"SUBSCRIBE", name)
        try:
            async with asyncio.timeout(self._io_timeout):
                await fut
        except TimeoutError as exc:
            self._forget_waiter(name, fut)
            self.unsubscribe(name)
            raise _internal(exc) from exc

    def unsubscribe(self, name: bytes) -> None:
        """Stop delivery of ``name`` now; the UNSUBSCRIBE is written in the background."""
        self._wanted.discard(name)
        if self._online:
            self._send(b"UNSUBSCRIBE", name)

    # -- internals --
    def _send(self, *command: bytes) -> None:
        self._ops.append(command)
        self._kick.set()

    def _forget_waiter(self, name: bytes, fut: asyncio.Future[None]) -> None:
        queue = self._waiters.get(name)
        if queue is not None and fut in queue:
            queue.remove(fut)
            if not queue:
                del self._waiters[name]

    async def _supervise(self) -> None:
        # ``_closed`` is checked after every await: a cancel may be lost by a library
        # call that swallows it, and the loop must still end.
        attempt = 0
        while not self._closed:
            conn = self._shard.new_pubsub_connection()
            try:
                async with asyncio.timeout(self._io_timeout):
                    await _untyped(conn.connect)()
            except (RedisError, OSError, TimeoutError) as exc:
                attempt += 1
                log.debug("redis pubsub %s: connect failed: %s", self._shard.address, exc)
                await asyncio.sleep(_backoff(attempt))
                continue
            attempt = 1
            await self._load_scripts()
            if not self._closed:
                await self._serve_until_broken(conn)
            await conn.disconnect(nowait=True)
            if not self._closed:
                await asyncio.sleep(_backoff(attempt))

    async def _load_scripts(self) -> None:
        try:
            async with asyncio.timeout(self._io_timeout):
                await self._shard.load_scripts()
        except (RedisError, OSError, TimeoutError) as exc:  # EVALSHA falls back to EVAL
            log.debug("redis %s: SCRIPT LOAD failed: %s", self._shard.address, exc)

    async def _serve_until_broken(self, conn: AbstractConnection) -> None:
        self._ops = [
            (b"SUBSCRIBE", *chunk) for chunk in _chunks(sorted(self._wanted), _SUBSCRIBE_CHUNK)
        ]
        # the first connection subscribes for the first time: nothing to announce
        self._resubscribed = sorted(self._wanted) if self._connected_before else []
        self._connected_before = True
        self._ops.append((b"PING", _RESUB_MARK))
        self._kick.set()
        self._online = True
        self._last_read = time.monotonic()
        tasks = [
            asyncio.create_task(self._read(conn)),
            asyncio.create_task(self._write(conn)),
            asyncio.create_task(self._watch()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.warning("redis pubsub %s lost: %s", self._shard.address, task.exception())
        finally:
            self._online = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if not self._closed and self._wanted:
            self._on_lost(sorted(self._wanted))

    async def _write(self, conn: AbstractConnection) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            ops, self._ops = _merge(self._ops), []
            if ops:
                await conn.send_packed_command(conn.pack_commands(ops), check_health=False)

    async def _read(self, conn: AbstractConnection) -> None:
        while True:
            reply = await conn.read_response(disconnect_on_error=True)
            self._last_read = time.monotonic()
            if isinstance(reply, list) and reply:
                self._dispatch(reply)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(_PING_INTERVAL)
            if time.monotonic() - self._last_read > _PING_INTERVAL + self._io_timeout:
                raise RedisConnectionError("PUB/SUB connection stopped answering PING")
            self._send(b"PING")

    def _dispatch(self, reply: list[Any]) -> None:
        kind = reply[0]
        if kind == b"message":
            if reply[1] in self._wanted:
                self._on_message(reply[1], reply[2])
        elif kind == b"subscribe":
            self._confirmed(reply[1])
        elif kind == b"pong" and len(reply) > 1 and reply[1] == _RESUB_MARK:
            channels = [c for c in self._resubscribed if c in self._wanted]
            self._resubscribed = []
            if channels:
                self._on_resubscribed(channels)

    def _confirmed(self, name: bytes) -> None:
        queue = self._waiters.get(name)
        if queue:
            fut = queue.popleft()
            if not queue:
                del self._waiters[name]
            if not fut.done():
                fut.set_result(None)
        elif name not in self._wanted:
            self._send(b"UNSUBSCRIBE", name)


def _backoff(attempt: int) -> float:
    delay = min(_BACKOFF_MAX, _BACKOFF_MIN * float(2 ** min(attempt, 10)))
    return delay * (0.5 + random.random() / 2)


def _chunks(items: Sequence[bytes], size: int) -> Iterable[Sequence[bytes]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _merge(ops: list[tuple[bytes, ...]]) -> list[tuple[bytes, ...]]:
    """Join consecutive SUBSCRIBE (or UNSUBSCRIBE) commands into one, order kept."""
    out: list[tuple[bytes, ...]] = []
    for op in ops:
        prev = out[-1] if out else None
        mergeable = op[0] in (b"SUBSCRIBE", b"UNSUBSCRIBE")
        if prev is not None and mergeable and prev[0] == op[0] and len(prev) <= _SUBSCRIBE_CHUNK:
            out[-1] = prev + op[1:]
        else:
            out.append(op)
    return out


# ---- the engine -------------------------------------------------------------------------
class RedisEngine:
    """``engine.type: redis``: broker + presence manager on one or several Redis shards.

    ``default_meta_ttl`` is used when a publication's ``history_meta_ttl`` (or a
    history read's ``meta_ttl``) is 0; 0 here too means the position never expires.
    ``node_id`` names this node (control channels come later).
    """

    def __init__(self, config: RedisConfig, default_meta_ttl: float, node_id: str) -> None:
        if not config.address:
            raise ValueError("engine.redis.address is empty")
        self._cfg = config
        self._prefix = config.prefix
        self._default_meta_ttl = default_meta_ttl
        self._io_timeout = config.io_timeout
        self.node_id = node_id
        self._handler: EventHandler | None = None
        self._shards: list[_Shard] = []
        self._links: list[_PubSubLink] = []
        self._client_prefix = f"{self._prefix}.client.".encode()
        self._control_names: set[bytes] = set()
        self._on_control: Callable[[bytes], None] | None = None

    # ---- lifecycle ----------------------------------------------------------------------
    def set_event_handler(self, handler: EventHandler) -> None:
        self._handler = handler

    async def start(self) -> None:
        """Create the shard clients and start PUB/SUB links; never waits for Redis."""
        self._shards = [_Shard(i, a, self._cfg) for i, a in enumerate(self._cfg.address)]
        self._links = [
            _PubSubLink(s, self._io_timeout, self._on_message, self._on_lost, self._on_resub)
            for s in self._shards
        ]
        for link in self._links:
            link.start()

    async def close(self) -> None:
        for link in self._links:
            await link.close()
        for shard in self._shards:
            await shard.close()

    @property
    def shard_count(self) -> int:
        return len(self._cfg.address)

    def shard_of(self, channel: str) -> int:
        """Index of the shard (``address`` entry) that owns ``channel``."""
        return shard_index(channel, len(self._cfg.address))

    # ---- key names ----------------------------------------------------------------------
    def _client_channel(self, channel: str) -> str:
        return f"{self._prefix}.client.{channel}"

    def _stream_key(self, channel: str) -> str:
        return f"{self._prefix}.stream.{channel}"

    def _meta_key(self, channel: str) -> str:
        return f"{self._prefix}.stream.meta.{channel}"

    def _result_key(self, channel: str, key: str) -> str:
        return f"{self._prefix}.result.{channel}.{key}" if key else ""

    def _presence_keys(self, channel: str) -> list[str]:
        return [
            f"{self._prefix}.presence.expire.{channel}",
            f"{self._prefix}.presence.data.{channel}",
        ]

    # ---- calls --------------------------------------------------------------------------
    async def _call(self, op: Awaitable[T]) -> T:
        """Run one Redis operation bounded by ``io_timeout``; failures -> error 100."""
        try:
            async with asyncio.timeout(self._io_timeout):
                return await op
        except (RedisError, OSError, TimeoutError) as exc:
            raise _internal(exc) from exc

    def _shard(self, channel: str) -> _Shard:
        return self._shards[self.shard_of(channel)]

    # ---- broker -------------------------------------------------------------------------
    async def publish(
        self, channel: str, pub: Publication, opts: PublishOptions
    ) -> tuple[StreamPosition, bool]:
        """Append (history on when ``history_size`` and ``history_ttl`` are > 0) and PUBLISH.

        Atomic per channel (one Lua script). Delivery to handlers, this node's included,
        goes through Redis PUB/SUB to nodes subscribed to the channel.
        """
        shard = self._shard(channel)
        call = self._publish_call(channel, pub, opts)
        keys, args = call[3:6], call[6:]  # ("EVALSHA", sha, 3, *keys, *args)
        reply = await self._call(shard.run_script(_PUBLISH, keys, args))
        return _publish_result(reply, pub)

    async def publish_many(self, items: Sequence[PublishItem]) -> list[PublishOutcome]:
        """Publish a batch: one pipelined round trip per shard, order kept per channel.

        Returns one outcome per item, in input order: ``(position, suppressed)`` like
        ``publish``, or the ``ReplyError`` for that item (a failed shard fails its items).
        """
        by_shard: dict[int, list[int]] = {}
        for i, (channel, _, _) in enumerate(items):
            by_shard.setdefault(self.shard_of(channel), []).append(i)
        out: list[PublishOutcome] = [ReplyError(ERROR_INTERNAL)] * len(items)

        async def run(shard_idx: int, indexes: list[int]) -> None:
            calls = [self._publish_call(*items[i]) for i in indexes]
            try:
                replies = await self._call(self._shards[shard_idx].run_batch(calls))
            except ReplyError as err:
                replies = [err] * len(indexes)
            for i, reply in zip(indexes, replies, strict=True):
                out[i] = self._outcome(reply, items[i][1])

        await asyncio.gather(*(run(s, idx) for s, idx in by_shard.items()))
        return out

    @staticmethod
    def _outcome(reply: Any, pub: Publication) -> PublishOutcome:
        if isinstance(reply, ReplyError):
            return reply
        if isinstance(reply, BaseException):
            return _internal(reply)
        return _publish_result(reply, pub)

    def _publish_call(
        self, channel: str, pub: Publication, opts: PublishOptions
    ) -> tuple[Any, ...]:
        history = opts.history_size > 0 and opts.history_ttl > 0
        meta_ttl = opts.history_meta_ttl or self._default_meta_ttl
        return (
            "EVALSHA",
            _PUBLISH.sha,
            3,
            self._stream_key(channel),
            self._meta_key(channel),
            self._result_key(channel, opts.idempotency_key),
            self._client_channel(channel),
            _encode_pub(pub),
            opts.history_size,
            _ms(opts.history_ttl) if history else 0,
            _ms(meta_ttl) if meta_ttl > 0 else 0,
            new_epoch(),
            _ms(IDEMPOTENCY_TTL),
            "1" if history else "0",
        )

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        """PUBLISH ``__j__`` + ClientInfo to the channel's subscribers."""
        await self._publish_raw(channel, _JOIN + encode_message("ClientInfo", info.to_dict()))

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        """PUBLISH ``__l__`` + ClientInfo to the channel's subscribers."""
        await self._publish_raw(channel, _LEAVE + encode_message("ClientInfo", info.to_dict()))

    async def _publish_raw(self, channel: str, payload: bytes) -> None:
        shard = self._shard(channel)
        await self._call(_execute(shard.client, "PUBLISH", self._client_channel(channel), payload))

    async def subscribe(self, channel: str) -> None:
        """SUBSCRIBE ``P.client.<ch>``; returns once Redis confirmed (or raises 100)."""
        await self._links[self.shard_of(channel)].subscribe(self._client_channel(channel).encode())

    async def unsubscribe(self, channel: str) -> None:
        """UNSUBSCRIBE ``P.client.<ch>``; delivery for it stops at once."""
        self._links[self.shard_of(channel)].unsubscribe(self._client_channel(channel).encode())

    async def history(
        self, channel: str, flt: HistoryFilter, meta_ttl: float = 0.0
    ) -> HistoryResult:
        """Read position and publications; creates the epoch when the channel has none."""
        since = flt.since
        start, end = _range_ids(flt)
        ttl = meta_ttl or self._default_meta_ttl
        args = [
            "1" if flt.limit != 0 else "0",
            max(flt.limit, 0),
            "1" if flt.reverse else "0",
            _ms(ttl) if ttl > 0 else 0,
            new_epoch(),
            since.epoch if since is not None else "",
            start,
            end,
        ]
        keys = [self._stream_key(channel), self._meta_key(channel)]
        reply = await self._call(self._shard(channel).run_script(_HISTORY, keys, args))
        top, epoch = int(reply[0]), _text(reply[1])
        if since is not None and since.epoch and since.epoch != epoch:
            raise ReplyError(ERROR_UNRECOVERABLE_POSITION)
        if since is not None and flt.reverse and since.offset == 0 and flt.limit != 0:
            raise ReplyError(ERROR_BAD_REQUEST)
        pubs = [_entry_to_pub(entry) for entry in reply[2]]
        return HistoryResult(pubs, StreamPosition(top, epoch))

    async def remove_history(self, channel: str) -> None:
        """Drop the stream; the position (meta) stays."""
        await self._call(_execute(self._shard(channel).client, "DEL", self._stream_key(channel)))

    # ---- presence -----------------------------------------------------------------------
    async def add_presence(self, channel: str, client_id: str, info: ClientInfo) -> None:
        """Add or refresh an entry; it expires ``presence_ttl`` after the last refresh."""
        ttl = self._cfg.presence_ttl
        args = [
            _ms(ttl),
            int(time.time() + ttl),
            client_id,
            encode_message("ClientInfo", info.to_dict()),
        ]
        shard = self._shard(channel)
        await self._call(shard.run_script(_PRESENCE_ADD, self._presence_keys(channel), args))

    async def remove_presence(self, channel: str, client_id: str, user: str) -> None:
        shard = self._shard(channel)
        await self._call(
            shard.run_script(_PRESENCE_REMOVE, self._presence_keys(channel), [client_id])
        )

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        """Live entries (expired ones are purged first): client id -> info."""
        shard = self._shard(channel)
        args = [int(time.time())]
        flat = await self._call(shard.run_script(_PRESENCE_GET, self._presence_keys(channel), args))
        return {_text(flat[i]): _decode_info(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def presence_stats(self, channel: str) -> tuple[int, int]:
        entries = await self.presence(channel)
        return len(entries), len({info.user for info in entries.values()})

    # ---- PUB/SUB callbacks ----------------------------------------------------------------
    def _channel_of(self, name: bytes) -> str:
        return name[len(self._client_prefix) :].decode()

    # ---- control channels (cluster-wide node operations) -----------------------------
    def _control_name(self, node_id: str = "") -> bytes:
        return (f"{self._prefix}.node.{node_id}" if node_id else f"{self._prefix}.control").encode()

    async def start_control(self, on_control: Callable[[bytes], None]) -> None:
        """Receive ``P.control`` (everyone) and ``P.node.<node_id>`` (this node) messages.

        The subscriptions survive reconnects; delivery is at most once (Redis PUB/SUB).
        """
        self._on_control = on_control
        link = self._links[0]
        for name in (self._control_name(), self._control_name(self.node_id)):
            self._control_names.add(name)
            try:
                await link.subscribe(name)
            except ReplyError:
                log.warning("redis engine: control channel not subscribed yet (Redis down?)")

    async def publish_control(self, data: bytes, node_id: str = "") -> None:
        """PUBLISH to every node (``P.control``) or one node (``P.node.<node_id>``)."""
        shard = self._shards[0]
        await self._call(shard.client.publish(self._control_name(node_id), data))

    def _on_message(self, name: bytes, data: bytes) -> None:
        if name in self._control_names:
            if self._on_control is not None:
                try:
                    self._on_control(data)
                except Exception:
                    log.exception("redis engine: control message handling failed")
            return
        handler = self._handler
        if handler is None or not name.startswith(self._client_prefix):
            return
        channel = self._channel_of(name)
        try:
            self._deliver(handler, channel, data)
        except Exception:  # a bad payload or a failing handler must not kill the reader
            log.exception("redis engine: cannot deliver a message of %r", channel)

    @staticmethod
    def _deliver(handler: EventHandler, channel: str, data: bytes) -> None:
        if data.startswith(_P1):
            offset, epoch, body = _split_p1(data)
            handler.handle_publication(
                channel, _decode_pub(body, offset), StreamPosition(offset, epoch)
            )
        elif data.startswith(_JOIN):
            handler.handle_join(channel, _decode_info(data[len(_JOIN) :]))
        elif data.startswith(_LEAVE):
            handler.handle_leave(channel, _decode_info(data[len(_LEAVE) :]))
        elif data.startswith(b"__"):
            log.debug("redis engine: unsupported payload on %r", channel)
        else:
            handler.handle_publication(channel, _decode_pub(data), StreamPosition(0, ""))

    def _notify(self, hook: str, names: list[bytes]) -> None:
        method = getattr(self._handler, hook, None)
        if method is None:
            return
        channels = [self._channel_of(n) for n in names if n.startswith(self._client_prefix)]
        try:
            method(channels)
        except Exception:
            log.exception("redis engine: %s failed", hook)

    def _on_lost(self, names: list[bytes]) -> None:
        self._notify("handle_broker_lost", names)

    def _on_resub(self, names: list[bytes]) -> None:
        self._notify("handle_broker_resubscribed", names)


def _untyped(func: Any) -> Callable[..., Awaitable[Any]]:
    """redis-py leaves some coroutine methods unannotated; give them a type."""
    return cast(Callable[..., Awaitable[Any]], func)


def _execute(client: Redis, *args: Any) -> Awaitable[Any]:
    """``client.execute_command(*args)``: one command, raw reply."""
    return _untyped(client.execute_command)(*args)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _publish_result(reply: Any, pub: Publication) -> tuple[StreamPosition, bool]:
    offset, epoch, suppressed = int(reply[0]), _text(reply[1]), bool(int(reply[2]))
    if not suppressed:
        pub.offset = offset
    return StreamPosition(offset, epoch), suppressed


def _entry_to_pub(entry: Any) -> Publication:
    entry_id, fields = entry
    offset = int(_text(entry_id).partition("-")[0])
    values = dict(zip(fields[::2], fields[1::2], strict=True))
    return _decode_pub(values[b"d"], offset)
