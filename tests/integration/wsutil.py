"""A raw WebSocket client for wire-level tests (JSON protocol unless told otherwise)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from relay.protocol import protobuf_codec


class RawClient:
    """Sends commands, collects every reply/push, exposes the close code."""

    def __init__(self, ws: ClientConnection, protobuf: bool = False) -> None:
        self.ws = ws
        self.protobuf = protobuf
        self.inbox: list[dict[str, Any]] = []
        self._next_id = 0

    @classmethod
    async def open(cls, url: str, protobuf: bool = False, **kw: Any) -> RawClient:
        sub = ["centrifuge-protobuf"] if protobuf else None
        ws = await websockets.connect(url, subprotocols=sub, **kw)  # type: ignore[arg-type]
        return cls(ws, protobuf)

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def send(self, *commands: dict[str, Any]) -> None:
        if self.protobuf:
            from relay.fastpath import join_delimited

            msgs = [protobuf_codec.encode_message("Command", c) for c in commands]
            await self.ws.send(join_delimited(msgs))
        else:
            await self.ws.send("\n".join(json.dumps(c) for c in commands))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def _read(self, timeout: float) -> None:
        msg = await asyncio.wait_for(self.ws.recv(), timeout)
        if self.protobuf:
            from relay.fastpath import split_delimited

            assert isinstance(msg, bytes)
            for part in split_delimited(msg):
                self.inbox.append(protobuf_codec.decode_message("Reply", part))
        else:
            assert isinstance(msg, str), "JSON replies must be text frames"
            for line in msg.split("\n"):
                self.inbox.append(json.loads(line))

    async def expect(self, pred: Any, timeout: float = 3.0) -> dict[str, Any]:
        """Wait for (and remove) the first message matching ``pred``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i, m in enumerate(self.inbox):
                if pred(m):
                    return self.inbox.pop(i)
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no matching message; inbox={self.inbox}")
            await self._read(left)

    async def reply(self, cmd_id: int, timeout: float = 3.0) -> dict[str, Any]:
        return await self.expect(lambda m: m.get("id") == cmd_id, timeout)

    async def push(
        self, kind: str, channel: str | None = None, timeout: float = 3.0
    ) -> dict[str, Any]:
        def pred(m: dict[str, Any]) -> bool:
            p = m.get("push")
            return bool(p) and kind in p and (channel is None or p.get("channel") == channel)

        return (await self.expect(pred, timeout))["push"]

    async def call(
        self, method: str, params: dict[str, Any], timeout: float = 3.0
    ) -> dict[str, Any]:
        cid = self.next_id()
        await self.send({"id": cid, method: params})
        return await self.reply(cid, timeout)

    async def connect(self, **params: Any) -> dict[str, Any]:
        return await self.call("connect", params)

    async def closed(self, timeout: float = 3.0) -> tuple[int | None, str]:
        """Read until the server closes; returns (code, reason)."""
        try:
            while True:
                await self._read(timeout)
        except websockets.ConnectionClosed as exc:
            rcvd = exc.rcvd
            return (rcvd.code, rcvd.reason) if rcvd else (None, "")

    async def close(self) -> None:
        await self.ws.close()
