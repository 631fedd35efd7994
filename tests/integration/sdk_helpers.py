"""Helpers to drive the centrifuge-python SDK against a relay server in tests.

``Recorder`` collects every SDK event as ``(name, ctx)`` and lets a test wait for one;
``SDKPool`` creates clients wired to recorders and disconnects them all on exit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from centrifuge import Client, ClientEventHandler, SubscriptionEventHandler

TIMEOUT = 5.0


class Recorder:
    """Events reported by the SDK, in order, with an ``asyncio.Event`` to wait on."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()

    def add(self, name: str, ctx: Any) -> None:
        self.log.append((name, ctx))
        self._changed.set()

    def all(self, name: str, pred: Callable[[Any], bool] | None = None) -> list[Any]:
        return [c for n, c in self.log if n == name and (pred is None or pred(c))]

    async def wait(
        self,
        name: str,
        pred: Callable[[Any], bool] | None = None,
        *,
        count: int = 1,
        timeout: float = TIMEOUT,
    ) -> Any:
        """The ``count``-th ``name`` event matching ``pred`` (waiting for it)."""

        async def _wait() -> Any:
            while True:
                found = self.all(name, pred)
                if len(found) >= count:
                    return found[count - 1]
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {name!r} event (x{count}); got {self.log}") from None


def _recording(base: type, rec: Recorder, names: tuple[str, ...]) -> Any:
    def make(name: str) -> Any:
        async def handler(self: Any, ctx: Any) -> None:
            rec.add(name, ctx)

        return handler

    cls = type("Recording" + base.__name__, (base,), {"on_" + n: make(n) for n in names})
    return cls()


def client_events(rec: Recorder) -> ClientEventHandler:
    names = (
        "connecting",
        "connected",
        "disconnected",
        "error",
        "subscribed",
        "subscribing",
        "unsubscribed",
        "publication",
        "join",
        "leave",
    )
    handler: ClientEventHandler = _recording(ClientEventHandler, rec, names)
    return handler


def sub_events(rec: Recorder) -> SubscriptionEventHandler:
    names = ("subscribing", "subscribed", "unsubscribed", "publication", "join", "leave", "error")
    handler: SubscriptionEventHandler = _recording(SubscriptionEventHandler, rec, names)
    return handler


def payload(protobuf: bool, obj: Any) -> Any:
    """What the SDK accepts as publication data for the protocol: JSON value or bytes."""
    return json.dumps(obj, separators=(",", ":")).encode() if protobuf else obj


def decoded(data: Any) -> Any:
    """Publication data as reported by the SDK, as a JSON value."""
    if isinstance(data, bytes | bytearray):
        return json.loads(data)
    return data


class SDKPool:
    """``async with SDKPool(url, protobuf) as pool``: clients made here are disconnected
    on exit (in a ``finally``)."""

    def __init__(self, url: str, protobuf: bool) -> None:
        self.url = url
        self.protobuf = protobuf
        self.clients: list[Client] = []

    def client(self, **kwargs: Any) -> tuple[Client, Recorder]:
        rec = Recorder()
        kwargs.setdefault("use_protobuf", self.protobuf)
        kwargs.setdefault("proxy", None)
        kwargs.setdefault("timeout", 3.0)
        client = Client(self.url, events=client_events(rec), **kwargs)
        self.clients.append(client)
        return client, rec

    async def connected(self, **kwargs: Any) -> tuple[Client, Recorder]:
        client, rec = self.client(**kwargs)
        await client.connect()
        await rec.wait("connected")
        return client, rec

    async def __aenter__(self) -> SDKPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self.clients:
            try:
                await client.disconnect()
            except Exception:  # noqa: BLE001 - cleanup must reach every client
                pass
        await asyncio.sleep(0)


def subscription(client: Client, channel: str, **kwargs: Any) -> tuple[Any, Recorder]:
    rec = Recorder()
    sub = client.new_subscription(channel, events=sub_events(rec), **kwargs)
    return sub, rec
