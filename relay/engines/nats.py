"""The NATS broker (``broker.enabled`` + ``broker.type: nats``): PUB/SUB only, no history.

Each worker of each node holds one NATS connection. A channel is the subject
``<prefix>.client.<channel>``; a message on it is a protobuf ``Push`` with ``pub``,
``join`` or ``leave`` (the bytes Centrifugo's NATS broker writes, so relay and Centrifugo
nodes on one NATS see each other's publications). Control messages between workers go to
``<prefix>.control`` and ``<prefix>.node.<worker>`` (``cluster/links.py``).

* History does not exist: reads and removals answer 108 (not available), a
  publication has no offset; presence comes from the engine or ``presence_manager``.
* Wildcards (``*``, ``>``) are refused in published channels (107), and in subscribed
  ones unless ``allow_wildcards``; a publication delivered to a wildcard subscription
  names its concrete channel (``Publication.channel``).
* Raw mode: subjects are ``raw_mode.prefix`` + the channel (after
  ``channel_replacements``) and payloads pass untouched both ways; join/leave are not
  sent.

Unlike Centrifugo (which exits when NATS is unreachable at start), the connection is made
in the background and retried for ever; while it is down a publish fails at once with
100 (as nats.go does without a reconnect buffer) rather than being buffered.
Source: centrifugo ``internal/natsbroker/broker.go``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any

from relay.config.engine_tree import NatsBrokerConfig
from relay.engines.base import EventHandler, PublishOptions
from relay.engines.broker_wire import info_from_dict, pub_from_dict, pub_to_dict
from relay.errors import ERROR_BAD_REQUEST, ERROR_INTERNAL, ERROR_NOT_AVAILABLE, ReplyError
from relay.protocol import json_codec
from relay.protocol.messages import (
    ClientInfo,
    HistoryFilter,
    HistoryResult,
    Publication,
    StreamPosition,
)
from relay.protocol.protobuf_codec import decode_message, encode_message

__all__ = ["NatsBroker", "has_wildcard", "subject_of", "encode_pub_push", "encode_event_push"]

log = logging.getLogger("relay.engines.nats")

_RETRY_FIRST, _RETRY_MAX = 0.5, 5.0
_NO_POSITION = StreamPosition(0, "")


def internal(exc: BaseException) -> ReplyError:
    log.warning("nats broker: %s: %s", type(exc).__name__, exc)
    err = ReplyError(ERROR_INTERNAL)
    err.__cause__ = exc
    return err


def has_wildcard(channel: str) -> bool:
    return "*" in channel or ">" in channel


def subject_of(config: NatsBrokerConfig, channel: str) -> str:
    """The NATS subject of ``channel``: ``<prefix>.client.<channel>``, or in raw mode
    ``raw_mode.prefix`` + the channel after ``channel_replacements``."""
    raw = config.raw_mode
    if not raw.enabled:
        return f"{config.prefix}.client.{channel}"
    for old, new in raw.channel_replacements:
        channel = channel.replace(old, new)
    return raw.prefix + channel


def encode_pub_push(channel: str, pub: Publication, now_ms: int) -> bytes:
    """``Push{channel, pub}`` as Centrifugo's broker writes it (stamped with the time)."""
    body = pub_to_dict(pub)
    body.setdefault("time", now_ms)
    return encode_message("Push", {"channel": channel, "pub": body})


def encode_event_push(channel: str, kind: str, info: ClientInfo) -> bytes:
    """``Push{channel, join|leave: {info}}`` (``kind``: ``join`` or ``leave``)."""
    return encode_message("Push", {"channel": channel, kind: {"info": info.to_dict()}})


def _servers(url: str) -> list[str]:
    return [u.strip() for u in url.split(",") if u.strip()]


class NatsBroker:
    """The broker half of an engine over NATS (the presence half comes from elsewhere)."""

    def __init__(
        self,
        config: NatsBrokerConfig,
        node_id: str,
        tls: Callable[[Any, str], ssl.SSLContext | None] | None = None,
    ) -> None:
        self._cfg = config
        self.node_id = node_id
        self._tls = tls(config.tls, "broker.nats.tls") if tls is not None else None
        self._handler: EventHandler | None = None
        self._nc: Any = None  # nats.aio.client.Client once connected
        self._subs: dict[str, Any] = {}  # channel -> nats Subscription (None: pending)
        self._raw = config.raw_mode.enabled
        self._on_control: Callable[[bytes], None] | None = None
        self._connector: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    # ---- lifecycle ----------------------------------------------------------------------
    def set_event_handler(self, handler: EventHandler) -> None:
        self._handler = handler

    async def start(self) -> None:
        """Start connecting; waits at most ``dial_timeout`` for the first connection (a
        worker serves without NATS, and keeps trying)."""
        self._connector = asyncio.get_running_loop().create_task(self._connect())
        try:
            async with asyncio.timeout(self._cfg.dial_timeout):
                await self._connected.wait()
        except TimeoutError:
            log.warning("nats broker: %s not reachable yet, serving without it", self._cfg.url)

    async def close(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
        if self._nc is not None:
            try:
                await self._nc.close()
            except Exception as exc:  # closing a broken connection
                log.debug("nats broker: close: %s", exc)

    async def _connect(self) -> None:
        import nats

        delay = _RETRY_FIRST
        servers = _servers(self._cfg.url)
        while True:
            try:
                nc = await nats.connect(
                    servers=servers,
                    connect_timeout=max(1, round(self._cfg.dial_timeout)),
                    flush_timeout=self._cfg.write_timeout,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    tls=self._tls,
                    tls_hostname=self._cfg.tls.server_name or None,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    name=f"relay {self.node_id}",
                )
                break
            except Exception as exc:
                log.warning(
                    "nats broker: cannot connect to %s: %s (retrying in %.1fs)",
                    self._cfg.url, exc or type(exc).__name__, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
        self._nc = nc
        log.info("nats broker: connected to %s", self._cfg.url)
        for channel in list(self._subs):
            await self._subscribe_now(channel)
        if self._on_control is not None:
            await self._subscribe_control()
        self._connected.set()

    async def _on_error(self, exc: Exception) -> None:
        log.warning("nats broker: %s", exc or type(exc).__name__)

    async def _on_disconnected(self) -> None:
        log.warning("nats broker: disconnected, reconnecting")

    async def _on_reconnected(self) -> None:
        log.info("nats broker: reconnected")

    def _client(self) -> Any:
        """The connection, or error 100 while it is down (nothing is buffered)."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            raise internal(ConnectionError("nats broker: not connected"))
        return nc

    # ---- subjects -----------------------------------------------------------------------
    def subject(self, channel: str) -> str:
        return subject_of(self._cfg, channel)

    # ---- broker -------------------------------------------------------------------------
    async def publish(
        self, channel: str, pub: Publication, opts: PublishOptions
    ) -> tuple[StreamPosition, str]:
        """Send to the channel's subject; no history, so no position and no suppression."""
        if has_wildcard(channel):
            raise ReplyError(ERROR_BAD_REQUEST)
        if self._raw:
            payload = pub.data
        else:
            payload = encode_pub_push(channel, pub, int(time.time() * 1000))
        await self._send(self.subject(channel), payload)
        return _NO_POSITION, ""

    async def publish_many(
        self, items: Sequence[tuple[str, Publication, PublishOptions]]
    ) -> list[tuple[StreamPosition, str] | ReplyError]:
        out: list[tuple[StreamPosition, str] | ReplyError] = []
        for channel, pub, opts in items:
            try:
                out.append(await self.publish(channel, pub, opts))
            except ReplyError as exc:
                out.append(exc)
        return out

    async def _send(self, subject: str, payload: bytes) -> None:
        nc = self._client()
        try:
            await nc.publish(subject, payload)
        except Exception as exc:
            raise internal(exc) from exc

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        await self._join_leave(channel, "join", info)

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        await self._join_leave(channel, "leave", info)

    async def _join_leave(self, channel: str, kind: str, info: ClientInfo) -> None:
        if self._raw:
            return
        await self._send(self.subject(channel), encode_event_push(channel, kind, info))

    async def subscribe(self, channel: str) -> None:
        """Subscribe the channel's subject (107 for a wildcard unless allowed)."""
        if has_wildcard(channel) and not self._cfg.allow_wildcards:
            raise ReplyError(ERROR_BAD_REQUEST)
        if channel in self._subs:
            return
        self._subs[channel] = None
        if self._nc is not None:
            await self._subscribe_now(channel)

    async def _subscribe_now(self, channel: str) -> None:
        subject = self.subject(channel)

        async def on_message(msg: Any) -> None:
            self._on_message(channel, msg.subject, msg.data)

        try:
            self._subs[channel] = await self._nc.subscribe(subject, cb=on_message)
        except Exception as exc:
            self._subs.pop(channel, None)
            raise internal(exc) from exc

    async def unsubscribe(self, channel: str) -> None:
        sub = self._subs.pop(channel, None)
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # the connection is gone: so is the subscription
                log.debug("nats broker: unsubscribe %r: %s", channel, exc)

    async def history(
        self, channel: str, flt: HistoryFilter, meta_ttl: float = 0.0
    ) -> HistoryResult:
        raise ReplyError(ERROR_NOT_AVAILABLE)

    async def remove_history(self, channel: str) -> None:
        raise ReplyError(ERROR_NOT_AVAILABLE)

    # ---- delivery -----------------------------------------------------------------------
    def _on_message(self, channel: str, subject: str, data: bytes) -> None:
        handler = self._handler
        if handler is None:
            return
        try:
            self._deliver(handler, channel, subject, data)
        except Exception:  # a bad payload or a failing handler must not stop the reader
            log.exception("nats broker: cannot deliver a message of %r", channel)

    def _deliver(self, handler: EventHandler, channel: str, subject: str, data: bytes) -> None:
        if self._raw:
            pub = Publication(data=data, data_json=json_codec.is_json(data))
            pub.channel = subject[len(self._cfg.raw_mode.prefix) :]
            handler.handle_publication(channel, pub, _NO_POSITION)
            return
        push = decode_message("Push", data)
        if "pub" in push:
            pub = pub_from_dict(push["pub"])
            if self._cfg.allow_wildcards:
                pub.channel = push.get("channel", "")
            handler.handle_publication(channel, pub, _NO_POSITION)
        elif "join" in push:
            handler.handle_join(push.get("channel", ""), info_from_dict(push["join"]["info"]))
        elif "leave" in push:
            handler.handle_leave(push.get("channel", ""), info_from_dict(push["leave"]["info"]))
        else:
            log.warning("nats broker: unknown push on %r", subject)

    # ---- control (cluster/links.py RedisLink speaks through these) ---------------------
    def _control_subject(self, node_id: str = "") -> str:
        prefix = self._cfg.prefix
        return f"{prefix}.node.{node_id}" if node_id else f"{prefix}.control"

    async def start_control(self, on_control: Callable[[bytes], None]) -> None:
        self._on_control = on_control
        if self._nc is not None:
            await self._subscribe_control()

    async def _subscribe_control(self) -> None:
        on_control = self._on_control
        assert on_control is not None

        async def on_message(msg: Any) -> None:
            try:
                on_control(msg.data)
            except Exception:
                log.exception("nats broker: control message handling failed")

        for subject in (self._control_subject(), self._control_subject(self.node_id)):
            await self._nc.subscribe(subject, cb=on_message)

    async def publish_control(self, data: bytes, node_id: str = "") -> None:
        await self._send(self._control_subject(node_id), data)
