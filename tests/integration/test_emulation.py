"""Bidirectional emulation: HTTP-stream and SSE sessions driven over ``/emulation``.

Raw aiohttp clients, one worker and two (``workers2``: each new TCP connection goes to
the next worker, so emulation posts on fresh connections reach the worker that does not
hold the session and must be routed over the bus). Framing as Centrifugo 6.9.1 writes it
(checked side by side with the binary): ``<Reply>\\n`` per message for JSON streams,
varint-delimited Replies for Protobuf, ``data: <Reply>\\n\\n`` after a leading ``\\r\\n``
for SSE.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from relay.config.tree import ClientConfig, StreamEndpointConfig, TokenConfig
from relay.protocol import protobuf_codec
from tests.conftest import API_KEY, SECRET, make_config, token

pytestmark = pytest.mark.asyncio

JSON_HEADERS = {"Content-Type": "application/json"}
PB_HEADERS = {"Content-Type": "application/octet-stream"}
TIMEOUT = 5.0


def emulation_config(**client: Any) -> Any:
    return make_config(
        sse=StreamEndpointConfig(enabled=True, handler_prefix="/connection/sse"),
        http_stream=StreamEndpointConfig(enabled=True, handler_prefix="/connection/http_stream"),
        client=ClientConfig(token=TokenConfig(hmac_secret_key=SECRET), **client),
    )


class JSONStream:
    """The reading half of an HTTP-stream (or SSE) session."""

    def __init__(self, response: aiohttp.ClientResponse, sse: bool = False) -> None:
        self.response = response
        self.sse = sse

    async def next(self) -> dict[str, Any]:
        while True:
            line = await asyncio.wait_for(self.response.content.readline(), TIMEOUT)
            if not line:
                raise EOFError("stream ended")
            text = line.strip()
            if not text:
                continue
            if self.sse:
                assert text.startswith(b"data: "), line
                text = text[len(b"data: ") :]
            return dict(json.loads(text))

    async def until(self, key: str) -> dict[str, Any]:
        while True:
            msg = await self.next()
            if key in msg or key in msg.get("push", {}):
                return msg


@asynccontextmanager
async def poster() -> AsyncIterator[aiohttp.ClientSession]:
    """A session whose every request is a new TCP connection (so: the next worker)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        yield s


async def emulate(
    s: aiohttp.ClientSession, url: str, connect: dict[str, Any], command: dict[str, Any]
) -> int:
    body = {"node": connect["node"], "session": connect["session"], "data": json.dumps(command)}
    async with s.post(url + "/emulation", json=body) as r:
        return r.status


async def api(s: aiohttp.ClientSession, url: str, method: str, body: dict[str, Any]) -> Any:
    async with s.post(f"{url}/api/{method}", json=body, headers={"X-API-Key": API_KEY}) as r:
        assert r.status == 200
        return await r.json()


async def test_http_stream_json_session(server_factory: Any) -> None:
    async with server_factory(emulation_config()) as srv, aiohttp.ClientSession() as s:
        url = srv.http_url
        connect_cmd = {"id": 1, "connect": {"token": token("u1")}}
        async with s.post(
            url + "/connection/http_stream", data=json.dumps(connect_cmd), headers=JSON_HEADERS
        ) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
            assert r.headers["X-Accel-Buffering"] == "no"
            stream = JSONStream(r)
            reply = await stream.next()
            connect = reply["connect"]
            assert reply["id"] == 1 and connect["pong"] is True
            assert connect["node"] == srv.node.uid and connect["session"]
            async with poster() as p:
                for i, ch in enumerate(("a", "b", "c"), start=2):
                    sub = {"id": i, "subscribe": {"channel": ch}}
                    assert await emulate(p, url, connect, sub) == 204
                    assert (await stream.until("subscribe"))["id"] == i
                await api(p, url, "publish", {"channel": "c", "data": {"n": 1}})
                push = (await stream.until("pub"))["push"]
                assert push == {"channel": "c", "pub": {"data": {"n": 1}}}
                rpc = {"id": 9, "publish": {"channel": "b", "data": {"m": 2}}}
                assert await emulate(p, url, connect, rpc) == 204
                assert (await stream.until("pub"))["push"]["channel"] == "b"
                await api(p, url, "disconnect", {"user": "u1"})
                last = await stream.until("disconnect")
                assert last == {
                    "push": {"disconnect": {"code": 3503, "reason": "force disconnect"}}
                }
                with pytest.raises(EOFError):
                    await stream.next()


async def test_http_stream_protobuf_session(server_factory: Any) -> None:
    async with server_factory(emulation_config()) as srv, aiohttp.ClientSession() as s:
        url = srv.http_url
        body = protobuf_codec.join_frame(
            [protobuf_codec.encode_message("Command", {"id": 1, "connect": {"token": token()}})]
        )
        async with s.post(url + "/connection/http_stream", data=body, headers=PB_HEADERS) as r:
            assert r.status == 200
            buf = b""

            async def next_reply() -> dict[str, Any]:
                nonlocal buf
                while True:
                    if buf:
                        size, pos = protobuf_codec._read_length(buf, 0, len(buf))
                        if pos + size <= len(buf):
                            msg = buf[pos : pos + size]
                            buf = buf[pos + size :]
                            return protobuf_codec.decode_message("Reply", msg)
                    chunk = await asyncio.wait_for(r.content.readany(), TIMEOUT)
                    assert chunk, "stream ended"
                    buf += chunk

            connect = (await next_reply())["connect"]
            assert connect["session"] and connect["node"] == srv.node.uid
            sub = protobuf_codec.join_frame(
                [protobuf_codec.encode_message("Command", {"id": 2, "subscribe": {"channel": "p"}})]
            )
            request = _emulation_pb(connect["node"], connect["session"], sub)
            async with poster() as p:
                async with p.post(url + "/emulation", data=request, headers=PB_HEADERS) as er:
                    assert er.status == 204
                reply = await next_reply()
                assert reply["id"] == 2 and "subscribe" in reply
                await api(p, url, "publish", {"channel": "p", "data": {"x": 1}})
                push = (await next_reply())["push"]
                assert push["channel"] == "p" and json.loads(push["pub"]["data"]) == {"x": 1}


def _emulation_pb(node: str, session: str, data: bytes) -> bytes:
    """``protocol.EmulationRequest`` by hand: node = 1, session = 2, data = 3."""
    out = b""
    for number, value in ((1, node.encode()), (2, session.encode()), (3, data)):
        out += bytes([number << 3 | 2]) + protobuf_codec.encode_varint(len(value)) + value
    return out


async def test_sse_session_with_recovery(server_factory: Any) -> None:
    async with server_factory(emulation_config()) as srv, aiohttp.ClientSession() as s:
        url = srv.http_url
        async with poster() as p:
            await api(p, url, "publish", {"channel": "chat:r", "data": {"n": 1}})
            hist = await api(p, url, "history", {"channel": "chat:r", "limit": 0})
            epoch = hist["result"]["epoch"]
            await api(p, url, "publish", {"channel": "chat:r", "data": {"n": 2}})
        first = json.dumps({"id": 1, "connect": {"token": token()}})
        async with s.get(f"{url}/connection/sse?cf_connect={quote(first)}") as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "text/event-stream; charset=utf-8"
            assert await r.content.readexactly(2) == b"\r\n"
            stream = JSONStream(r, sse=True)
            connect = (await stream.next())["connect"]
            recover = {"channel": "chat:r", "recover": True, "offset": 1, "epoch": epoch}
            async with poster() as p:
                assert await emulate(p, url, connect, {"id": 2, "subscribe": recover}) == 204
            result = (await stream.until("subscribe"))["subscribe"]
            assert result["recovered"] is True
            assert [pub["data"] for pub in result["publications"]] == [{"n": 2}]


async def test_sse_post_connect(server_factory: Any) -> None:
    async with server_factory(emulation_config()) as srv, aiohttp.ClientSession() as s:
        body = json.dumps({"id": 1, "connect": {"token": token()}})
        url = srv.http_url + "/connection/sse"
        async with s.post(url, data=body, headers=JSON_HEADERS) as r:
            assert r.status == 200
            assert "session" in (await JSONStream(r, sse=True).next())["connect"]


@pytest.mark.slow
async def test_ping_pong_over_emulation(server_factory: Any) -> None:
    # the pong's poster is opened before the ping comes, and given 1.5 s, so that a busy
    # machine does not turn the answered ping into a "no pong"
    config = emulation_config(ping_interval=2.0, pong_timeout=1.5)
    async with server_factory(config) as srv, aiohttp.ClientSession() as s, poster() as p:
        url = srv.http_url
        body = json.dumps({"id": 1, "connect": {"token": token()}})
        async with s.post(url + "/connection/http_stream", data=body, headers=JSON_HEADERS) as r:
            stream = JSONStream(r)
            connect = (await stream.next())["connect"]
            assert await stream.next() == {}  # the server's ping
            status = await p.post(
                url + "/emulation",
                json={"node": connect["node"], "session": connect["session"], "data": "{}"},
            )
            assert status.status == 204
            assert await stream.next() == {}  # answered: the next ping comes
            last = await stream.next()  # unanswered: no pong
            assert last == {"push": {"disconnect": {"code": 3012, "reason": "no pong"}}}


async def test_bad_first_command_closes_with_3501(server_factory: Any) -> None:
    async with server_factory(emulation_config()) as srv, aiohttp.ClientSession() as s:
        url = srv.http_url + "/connection/http_stream"
        for body in (b"garbage", b""):
            async with s.post(url, data=body, headers=JSON_HEADERS) as r:
                assert r.status == 200
                text = await asyncio.wait_for(r.content.read(), TIMEOUT)
                assert text == b'{"push":{"disconnect":{"code":3501,"reason":"bad request"}}}\n'


async def test_bad_requests(server_factory: Any) -> None:
    config = replace(
        emulation_config(),
        http_stream=StreamEndpointConfig(
            enabled=True, handler_prefix="/connection/http_stream", max_request_body_size=1000
        ),
    )
    async with server_factory(config) as srv, aiohttp.ClientSession() as s:
        url = srv.http_url
        body = json.dumps({"id": 1, "connect": {"token": token()}})
        async with s.post(url + "/connection/http_stream", data=body, headers=JSON_HEADERS) as r:
            connect = (await JSONStream(r).next())["connect"]
            node, session = connect["node"], connect["session"]
            cases: list[tuple[bytes, int]] = [
                (b"{bad", 400),
                (b"[]", 400),
                (b'{"node": 5}', 400),
                (b"null", 404),  # an empty request: node "" is no node
                (json.dumps({"node": "other", "session": session, "data": "{}"}).encode(), 404),
                (json.dumps({"node": node, "session": "nope", "data": "{}"}).encode(), 204),
                (json.dumps({"node": node, "session": session, "data": 5}).encode(), 204),
                (b'{"node":"' + b"x" * 70000 + b'"}', 413),
            ]
            async with poster() as p:
                for data, status in cases:
                    async with p.post(url + "/emulation", data=data, headers=JSON_HEADERS) as er:
                        assert er.status == status, data[:40]
                async with p.get(url + "/emulation") as er:
                    assert er.status == 405
                async with p.options(url + "/emulation") as er:
                    assert er.status == 204
                    assert er.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
                async with p.post(url + "/connection/http_stream", data=b"x" * 1001) as er:
                    assert er.status == 413
                async with p.get(url + "/connection/http_stream") as er:
                    assert er.status == 405
                async with p.get(url + "/connection/sse") as er:
                    assert er.status == 400  # no cf_connect
                async with p.put(url + "/connection/sse") as er:
                    assert er.status == 405
            # the session is still alive after all that
            assert session in {c.connect_extra["session"] for c in srv.clients.values()}


async def test_peer_going_away_closes_the_session(server_factory: Any) -> None:
    async with server_factory(emulation_config()) as srv:
        async with aiohttp.ClientSession() as s:
            body = json.dumps({"id": 1, "connect": {"token": token()}})
            url = srv.http_url + "/connection/http_stream"
            async with s.post(url, data=body, headers=JSON_HEADERS) as r:
                await JSONStream(r).next()
                assert len(srv.clients) == 1
        for _ in range(100):
            if not srv.clients:
                break
            await asyncio.sleep(0.05)
        assert not srv.clients
