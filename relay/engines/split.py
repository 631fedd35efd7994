"""An engine made of a broker and a presence manager from different places: the
standalone ``broker`` and/or ``presence_manager`` of the config beside (or instead of) the
engine's own parts (centrifugo ``app/engine.go``: ``node.SetBroker``,
``node.SetPresenceManager``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relay.engines.base import EventHandler, PublishOptions
from relay.errors import ReplyError
from relay.protocol.messages import (
    ClientInfo,
    HistoryFilter,
    HistoryResult,
    Publication,
    StreamPosition,
)

__all__ = ["SplitEngine"]


class SplitEngine:
    """Broker calls go to ``broker``, presence calls to ``presence``; both are started,
    closed and (where they keep streams) expired."""

    def __init__(self, broker: Any, presence: Any) -> None:
        self.broker = broker
        self.presence_manager = presence
        self._parts = [broker] if broker is presence else [broker, presence]

    def set_event_handler(self, handler: EventHandler) -> None:
        for part in self._parts:
            part.set_event_handler(handler)

    async def start(self) -> None:
        for part in self._parts:
            await part.start()

    async def close(self) -> None:
        for part in self._parts:
            await part.close()

    def expire(self) -> None:
        for part in self._parts:
            expire = getattr(part, "expire", None)
            if expire is not None:
                expire()

    # ---- broker -------------------------------------------------------------------------
    async def publish(
        self, channel: str, pub: Publication, opts: PublishOptions
    ) -> tuple[StreamPosition, str]:
        result: tuple[StreamPosition, str] = await self.broker.publish(channel, pub, opts)
        return result

    async def publish_many(
        self, items: Sequence[tuple[str, Publication, PublishOptions]]
    ) -> list[tuple[StreamPosition, str] | ReplyError]:
        result: list[tuple[StreamPosition, str] | ReplyError] = await self.broker.publish_many(
            items
        )
        return result

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        await self.broker.publish_join(channel, info)

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        await self.broker.publish_leave(channel, info)

    async def subscribe(self, channel: str) -> None:
        await self.broker.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        await self.broker.unsubscribe(channel)

    async def history(
        self, channel: str, flt: HistoryFilter, meta_ttl: float = 0.0
    ) -> HistoryResult:
        result: HistoryResult = await self.broker.history(channel, flt, meta_ttl)
        return result

    async def remove_history(self, channel: str) -> None:
        await self.broker.remove_history(channel)

    # ---- presence -----------------------------------------------------------------------
    async def add_presence(self, channel: str, client_id: str, info: ClientInfo) -> None:
        await self.presence_manager.add_presence(channel, client_id, info)

    async def remove_presence(self, channel: str, client_id: str, user: str) -> None:
        await self.presence_manager.remove_presence(channel, client_id, user)

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        result: dict[str, ClientInfo] = await self.presence_manager.presence(channel)
        return result

    async def presence_stats(self, channel: str) -> tuple[int, int]:
        result: tuple[int, int] = await self.presence_manager.presence_stats(channel)
        return result
