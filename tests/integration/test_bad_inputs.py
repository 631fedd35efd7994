"""Bad and unusual inputs, answered as Centrifugo 6.9.1 answers them (issue 9).

Each expectation was first observed on the real Centrifugo 6.9.1 binary. Close frames are
read from a raw socket, because a WebSocket library would refuse the codes under test.
No test here may leave a traceback in the server's log (``no_server_tracebacks`` of
conftest.py checks every integration test), nor an error line.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest

from relay.protocol import protobuf_codec
from tests.conftest import token
from tests.integration.conftest import API
from tests.integration.wsutil import RawClient

BIG = "9" * 5000


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.INFO)
    yield
    traced = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not traced, [r.getMessage() for r in traced]


class RawSocket:
    """A WebSocket client on a plain socket: frames in and out, byte for byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> RawSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            "GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        head += bytes([0x80 | n]) if n < 126 else bytes([0xFE]) + struct.pack("!H", n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + body)

    async def frame(self, timeout: float = 3.0) -> tuple[int, bytes]:
        async with asyncio.timeout(timeout):
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return b0 & 0x0F, await self.reader.readexactly(n)

    async def close_payload(self) -> bytes:
        """Skip data frames up to the server's close frame; answer it; its payload."""
        while True:
            opcode, payload = await self.frame()
            if opcode == 8:
                self.send(8, payload[:2])
                return payload

    async def command(self, body: dict[str, Any]) -> dict[str, Any]:
        self.send(1, json.dumps(body).encode())
        opcode, payload = await self.frame()
        assert opcode == 1
        reply: dict[str, Any] = json.loads(payload)
        return reply

    def close(self) -> None:
        self.writer.close()


# ---- 1. server-side disconnect codes ---------------------------------------------------
@pytest.mark.parametrize(
    ("code", "wire"),
    [
        (99999, struct.pack("!H", 34463) + b"bye"),  # the uint32 code's low 16 bits
        (1005, b""),  # "no status" is never on the wire: an empty close frame
        (0, b"\x00\x00bye"),  # a given code 0 stays 0
        (4001, struct.pack("!H", 4001) + b"bye"),
    ],
)
async def test_api_disconnect_code_on_the_wire(
    relay: Any, api: API, code: int, wire: bytes
) -> None:
    ws = await RawSocket.open(relay.port)
    user = f"d{code}"
    assert "connect" in await ws.command({"id": 1, "connect": {"token": token(user)}})
    await api.call("disconnect", {"user": user, "disconnect": {"code": code, "reason": "bye"}})
    assert await ws.close_payload() == wire
    ws.close()
    # no zombie: the connection is gone from the node, a second disconnect has no target
    for _ in range(50):
        info = await api.call("info", {})
        if sum(n["num_clients"] for n in info["result"]["nodes"]) == 0:
            break
        await asyncio.sleep(0.05)
    assert sum(n["num_clients"] for n in info["result"]["nodes"]) == 0


async def test_api_disconnect_without_object_is_3503(relay: Any, api: API) -> None:
    ws = await RawSocket.open(relay.port)
    assert "connect" in await ws.command({"id": 1, "connect": {"token": token("d-none")}})
    await api.call("disconnect", {"user": "d-none"})
    assert await ws.close_payload() == struct.pack("!H", 3503) + b"force disconnect"
    ws.close()


# ---- 4. close frames from clients ------------------------------------------------------
@pytest.mark.parametrize(
    ("payload", "answer"),
    [
        (b"", b""),
        (b"\x03", b""),
        (struct.pack("!H", 1000), struct.pack("!H", 1000)),
        (struct.pack("!H", 1001) + b"bye", struct.pack("!H", 1001)),
        (struct.pack("!H", 1012), struct.pack("!H", 1012)),
        (struct.pack("!H", 4999), struct.pack("!H", 4999)),
        (struct.pack("!H", 999), b"\x03\xeabad close code 999"),
        (struct.pack("!H", 1005), b"\x03\xeabad close code 1005"),
        (struct.pack("!H", 1004), b"\x03\xeabad close code 1004"),
        (struct.pack("!H", 1014), b"\x03\xeabad close code 1014"),
        (struct.pack("!H", 2999), b"\x03\xeabad close code 2999"),
        (struct.pack("!H", 5000), b"\x03\xeabad close code 5000"),
        (struct.pack("!H", 3000) + b"\xff", b"\x03\xeainvalid utf8 payload in close frame"),
    ],
)
async def test_client_close_frame_answer(relay: Any, payload: bytes, answer: bytes) -> None:
    ws = await RawSocket.open(relay.port)
    ws.send(8, payload)
    opcode, got = await ws.frame()
    assert (opcode, got) == (8, answer)
    assert await ws.reader.read() == b""  # and the server closes the socket
    ws.close()


# ---- 2. valid JSON that Python cannot hold as numbers, surrogates, invalid UTF-8 -------
async def subscribed(port: int, channel: str, user: str = "s") -> RawSocket:
    """A raw JSON client subscribed to ``channel`` (its join push read)."""
    ws = await RawSocket.open(port)
    assert "connect" in await ws.command({"id": 1, "connect": {"token": token(user)}})
    ws.send(1, json.dumps({"id": 2, "subscribe": {"channel": channel}}).encode())
    _, payload = await ws.frame()
    assert b'"subscribe"' in payload, payload
    return ws


async def push_frame(ws: RawSocket) -> bytes:
    """The next frame that holds a publication push."""
    while True:
        _, payload = await ws.frame()
        if b'"pub"' in payload:
            return payload


@pytest.mark.parametrize("data", [BIG, "-" + BIG, "1e999999", '{"n":[1e400,-' + BIG + "]}"])
async def test_client_data_with_numbers_python_cannot_hold(relay: Any, data: str) -> None:
    """Centrifugo delivers such data as sent; relay keeps each number's text."""
    sub = await subscribed(relay.port, "chat:n")  # chat: publishers must be subscribers
    sub.send(1, ('{"id":3,"publish":{"channel":"chat:n","data":' + data + "}}").encode())
    assert b'"data":' + data.encode() + b"," in await push_frame(sub)
    sub.close()


async def test_client_data_with_a_lone_surrogate_is_delivered(relay: Any) -> None:
    sub = await subscribed(relay.port, "chat:s")
    sub.send(1, b'{"id":3,"publish":{"channel":"chat:s","data":"\\ud800x"}}')
    assert b'"data":"\\ud800x"' in await push_frame(sub)
    sub.close()


@pytest.mark.parametrize(
    "frame",
    [
        b'{"id":2,"subscribe":{"channel":"chat:\\ud800"}}',
        b'{"id":2,"subscribe":{"channel":"chat:\xff"}}',
    ],
)
async def test_bad_channel_is_107_and_the_connection_stays(relay: Any, frame: bytes) -> None:
    ws = await RawSocket.open(relay.port)
    assert "connect" in await ws.command({"id": 1, "connect": {"token": token("c")}})
    ws.send(1, frame)
    opcode, payload = await ws.frame()
    assert json.loads(payload)["error"]["code"] == 107
    ws.send(1, b'{"id":3,"subscribe":{"channel":"chat:ok"}}')
    assert b'"id":3,"subscribe"' in (await ws.frame())[1]
    ws.close()


async def test_protobuf_bad_channel_is_107(relay: Any) -> None:
    c = await RawClient.open(relay.ws_url, protobuf=True)
    await c.connect(token=token("c"))
    cmd = protobuf_codec.encode_message("Command", {"id": 2, "subscribe": {"channel": "chat:Z"}})
    await c.send_raw(_delimited(cmd.replace(b"chat:Z", b"chat:\xff")))
    assert (await c.reply(2))["error"]["code"] == 107
    assert "subscribe" in await c.call("subscribe", {"channel": "chat:ok"})
    await c.close()


def _delimited(message: bytes) -> bytes:
    from relay.fastpath import join_delimited

    return join_delimited([message])


async def test_protobuf_publication_of_huge_numbers_reaches_json_subscribers(
    relay: Any,
) -> None:
    sub = await RawClient.open(relay.ws_url)
    await sub.connect(token=token("s"))
    await sub.call("subscribe", {"channel": "pbnums"})
    pub = await RawClient.open(relay.ws_url, protobuf=True)
    await pub.connect(token=token("p"))
    assert "publish" in await pub.call("publish", {"channel": "pbnums", "data": b'{"n":1e999999}'})
    push = await sub.push("pub", "pbnums")
    assert push["pub"]["data"] == {"n": float("inf")}  # json.loads reads 1e999999 as inf
    await pub.close()
    await sub.close()


# ---- 3. the HTTP API -------------------------------------------------------------------
@pytest.mark.parametrize(
    "data", ['"\\udc00"', '"\\ud800x"', "1e999999", BIG, '{"a":[' + BIG + ",1e400]}"]
)
async def test_api_publish_and_broadcast_take_what_go_takes(
    relay: Any, api: API, data: str
) -> None:
    sub = await subscribed(relay.port, "chat:api")
    for method, body in [
        ("publish", '{"channel":"chat:api","data":' + data + "}"),
        ("broadcast", '{"channels":["chat:api"],"data":' + data + "}"),
    ]:
        status, reply, _ = await api.raw("/" + method, body)
        assert status == 200 and b"error" not in reply, reply
        assert b'"data":' + data.encode() in await push_frame(sub)
    sub.close()


async def test_api_batch_with_a_surrogate_in_the_middle(relay: Any, api: API) -> None:
    sub = await subscribed(relay.port, "chat:b")
    item = '{"publish":{"channel":"chat:b","data":%s}}'
    body = '{"commands":[' + ",".join(item % d for d in ["1", '"\\udc00"', "3"]) + "]}"
    status, reply, _ = await api.raw("/batch", body)
    assert status == 200
    assert [r.get("error") for r in json.loads(reply)["replies"]] == [None, None, None]
    got: list[Any] = []
    while len(got) < 3:
        frame = await push_frame(sub)
        got += [json.loads(line)["push"]["pub"]["data"] for line in frame.split(b"\n")]
    assert got == [1, "\udc00", 3]
    sub.close()


async def test_api_tags_with_a_surrogate_become_u_fffd(relay: Any, api: API) -> None:
    sub = await subscribed(relay.port, "chat:t")
    body = '{"channel":"chat:t","data":1,"tags":{"k":"a\\udc00"}}'
    assert (await api.raw("/publish", body))[0] == 200
    push = await push_frame(sub)
    assert json.loads(push.decode("utf-8"))["push"]["pub"]["tags"] == {"k": "a\ufffd"}
    sub.close()


async def test_api_server_side_subscribe_to_a_bad_channel(relay: Any, api: API) -> None:
    ws = await RawSocket.open(relay.port)
    assert "connect" in await ws.command({"id": 1, "connect": {"token": token("ss")}})
    status, reply, _ = await api.raw("/subscribe", '{"user":"ss","channel":"chat:\\udc00"}')
    assert (status, reply) == (200, b'{"result":{}}')
    # as Go reads the request: the lone surrogate is U+FFFD, in valid UTF-8 on the wire
    _, push = await ws.frame()
    assert json.loads(push.split(b"\n")[0].decode("utf-8"))["push"]["channel"] == "chat:\ufffd"
    ws.send(1, b'{"id":2,"subscribe":{"channel":"chat:fine"}}')
    assert b'"id":2,"subscribe"' in (await ws.frame())[1]
    ws.close()


# ---- 5. tokens -------------------------------------------------------------------------
async def test_token_exp_beyond_int64_is_expired(relay: Any) -> None:
    c = await RawClient.open(relay.ws_url)
    reply = await c.connect(token=token("42", exp=1e30))
    assert reply["error"]["code"] == 109
    await c.close()


# ---- 7. slow consumers -----------------------------------------------------------------
async def test_slow_consumer_socket_goes_within_a_second_and_a_half(
    server_factory: Any, http: Any
) -> None:
    from dataclasses import replace

    from tests.conftest import make_config

    config = make_config()
    config = replace(config, client=replace(config.client, queue_max_size=65536))
    async with server_factory(config) as srv:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", srv.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        ws = RawSocket(reader, writer)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            "GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await reader.readuntil(b"\r\n\r\n")
        assert "connect" in await ws.command({"id": 1, "connect": {"token": token("slow")}})
        ws.send(1, b'{"id":2,"subscribe":{"channel":"chat:slow"}}')
        await ws.frame()
        srv_api = API(http, srv.api_url)
        body = json.dumps({"channel": "chat:slow", "data": {"x": "y" * 60000}})
        started = time.monotonic()
        while srv.server_disconnects(3008) == 0 and time.monotonic() - started < 10:
            await srv_api.raw("/publish", body)
        assert srv.server_disconnects(3008) >= 1
        cut = time.monotonic()
        # the reader never read: the close frame cannot be written, the socket must go
        await asyncio.sleep(1.6)
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            async with asyncio.timeout(1.0):
                while True:
                    await ws.frame(timeout=1.0)
        assert time.monotonic() - cut < 4.0
        writer.close()


# ---- 8. malformed HTTP requests: a 400 and one INFO line, never a traceback -------------
@pytest.mark.parametrize(
    ("request_bytes", "answered"),
    [
        (b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", True),
        (
            b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            True,
        ),
        (b'POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{"ch', False),
    ],
)
async def test_malformed_http_requests_log_one_line(
    relay: Any, caplog: pytest.LogCaptureFixture, request_bytes: bytes, answered: bool
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    writer.write(request_bytes)
    if answered:
        assert (await reader.readline()).startswith(b"HTTP/1.0 400")
    writer.close()
    for _ in range(20):  # the server notices the client has gone
        if any("Error handling request" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.05)
    lines = [r for r in caplog.records if "Error handling request" in r.getMessage()]
    # a reply was written: one INFO line (no_tracebacks checks there is no traceback)
    assert len(lines) == (1 if answered else len(lines)) <= 1
    assert all(r.levelno == logging.INFO for r in lines)


async def test_api_history_returns_numbers_python_cannot_hold(api: API) -> None:
    data = '{"n":1e999999,"b":' + BIG + ',"s":"\\udc00"}'
    status, _, _ = await api.raw("/publish", '{"channel":"chat:hn","data":' + data + "}")
    assert status == 200
    status, reply, _ = await api.raw("/history", '{"channel":"chat:hn","limit":10}')
    assert status == 200 and b'"error"' not in reply
    assert b'"data":' + data.encode() + b"," in reply or b'"data":' + data.encode() + b"}" in reply
