"""A centrifuge-python SDK client subscribed to one channel, for the fault tests: it
reconnects and recovers by itself, and keeps every ``subscribed`` event and publication."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from centrifuge import Client, SubscribedContext, SubscriptionEventHandler

from relay.auth import encode_hmac_token

__all__ = ["SdkSubscriber"]


class SdkSubscriber(SubscriptionEventHandler):
    def __init__(self, ws_url: str, secret: str, channel: str, user: str = "sdk") -> None:
        self.events: list[SubscribedContext] = []
        self.pubs: list[Any] = []
        self.client = Client(ws_url, token=encode_hmac_token({"sub": user}, secret), proxy=None,
                             min_reconnect_delay=0.2, max_reconnect_delay=0.5)  # fmt: skip
        self.sub = self.client.new_subscription(channel, events=self)

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.events.append(ctx)

    async def on_publication(self, ctx: Any) -> None:
        self.pubs.append(ctx.pub.data)

    async def start(self, timeout: float = 5.0) -> None:
        """Connect and subscribe (the SDK subscribes in the background: wait for it)."""
        await self.client.connect()
        await self.sub.subscribe()
        await self.until(lambda: bool(self.events), timeout)

    @staticmethod
    async def until(cond: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not cond() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return bool(cond())

    async def close(self) -> None:
        await self.client.disconnect()
