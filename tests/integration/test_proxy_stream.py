"""The subscribe_stream proxy against a real grpcio backend (``SubscribeUnidirectional``
and ``SubscribeBidirectional`` with scripted behaviour), with raw WebSocket clients and
the centrifuge-python SDK (JSON and Protobuf), with 1 and 2 workers (in process, and a
``relay --workers 2`` process).

What the client gets was measured against Centrifugo 6.9.1 with the same kind of
backend: an ``error`` in the first message is that error without ``temporary``, a
``disconnect`` closes with it; a first message late (past ``timeout``), missing, without
``subscribe_response`` or a failed call is error 100; a stream the backend ends is
unsubscribe 2000, one that fails (error status, a message that does not parse) is
unsubscribe 2500; data that is not JSON closes a JSON client with 3506.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import grpc.aio
import pytest

from relay.config import load_config, validate
from relay.errors import ConfigError
from relay.proxy import proxy_pb2 as pb
from relay.proxy.grpc import SERVICE
from tests.conftest import token
from tests.integration.sdk_helpers import SDKPool, decoded, payload, subscription
from tests.integration.wsutil import RawClient

INTERNAL = {"code": 100, "message": "internal server error", "temporary": True}
#: what the backend's queue may hold besides publications (data or (data, tags))
EOF, ABORT, GARBAGE = "eof", "abort", "garbage"


def accepted(**result: Any) -> pb.StreamSubscribeResponse:
    return pb.StreamSubscribeResponse(
        subscribe_response=pb.SubscribeResponse(result=pb.SubscribeResult(**result))
    )


class StreamBackend:
    """A grpcio ``CentrifugoProxy`` with the two stream methods. ``first[channel]`` is the
    first message (default: accept), or ``SLOW``-like strings: ``"slow"``, ``EOF``,
    ``ABORT``, ``GARBAGE``. Then each stream sends what the test puts in
    ``feed(client, channel)``; a bidirectional one also records the client's publications
    (``published``) and echoes them as ``{"echo": data}``. ``cancelled`` lists the
    (client, channel) of the streams relay cancelled."""

    def __init__(self) -> None:
        self.first: dict[str, Any] = {}
        self.seen: list[tuple[str, pb.SubscribeRequest, dict[str, str]]] = []
        self.published: list[tuple[str, bytes]] = []
        self.cancelled: list[tuple[str, str]] = []
        self._feeds: dict[tuple[str, str], asyncio.Queue[Any]] = defaultdict(asyncio.Queue)
        self.server: grpc.aio.Server | None = None
        self.target = ""

    def feed(self, client: str, channel: str) -> asyncio.Queue[Any]:
        return self._feeds[(client, channel)]

    async def _stream(self, req: pb.SubscribeRequest, ctx: Any) -> AsyncIterator[Any]:
        key = (req.client, req.channel)
        first = self.first.get(req.channel, accepted())
        try:
            if first == "slow":
                await asyncio.sleep(3)
            if first == EOF:
                return
            if first == ABORT:
                await ctx.abort(grpc.StatusCode.UNAVAILABLE, "down")
            yield b"\xff\xff garbage" if first == GARBAGE else first
            while True:
                item = await self._feeds[key].get()
                if item == EOF:
                    return
                if item == ABORT:
                    await ctx.abort(grpc.StatusCode.INTERNAL, "crash")
                if item == GARBAGE:
                    yield b"\xff\xff garbage"
                    continue
                data, tags = item if isinstance(item, tuple) else (item, {})
                yield pb.StreamSubscribeResponse(publication=pb.Publication(data=data, tags=tags))
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise

    async def _unidirectional(self, req: pb.SubscribeRequest, ctx: Any) -> AsyncIterator[Any]:
        self.seen.append(("uni", req, dict(ctx.invocation_metadata() or ())))
        async for message in self._stream(req, ctx):
            yield message

    async def _bidirectional(self, requests: Any, ctx: Any) -> AsyncIterator[Any]:
        first = await requests.__anext__()
        req = first.subscribe_request
        self.seen.append(("bidi", req, dict(ctx.invocation_metadata() or ())))

        async def read() -> None:
            async for message in requests:
                self.published.append((req.channel, message.publication.data))
                echo = {"echo": json.loads(message.publication.data)}
                await self.feed(req.client, req.channel).put(json.dumps(echo).encode())

        reader = asyncio.ensure_future(read())
        try:
            async for message in self._stream(req, ctx):
                yield message
        finally:
            reader.cancel()

    async def start(self) -> StreamBackend:
        def out(m: Any) -> bytes:
            return m if isinstance(m, bytes) else m.SerializeToString()

        handlers = {
            "SubscribeUnidirectional": grpc.unary_stream_rpc_method_handler(
                self._unidirectional,
                request_deserializer=pb.SubscribeRequest.FromString,
                response_serializer=out,
            ),
            "SubscribeBidirectional": grpc.stream_stream_rpc_method_handler(
                self._bidirectional,
                request_deserializer=pb.StreamSubscribeRequest.FromString,
                response_serializer=out,
            ),
        }
        self.server = grpc.aio.server()
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, handlers),)
        )
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        await self.server.start()
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(None)

    async def wait_cancelled(self, client: str, channel: str) -> None:
        for _ in range(300):
            if (client, channel) in self.cancelled:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"stream {client} {channel} not cancelled: {self.cancelled}")


@pytest.fixture
async def backend() -> AsyncIterator[StreamBackend]:
    b = await StreamBackend().start()
    try:
        yield b
    finally:
        await b.stop()


def config_body(target: str) -> dict[str, Any]:
    """Namespaces ``st`` (unidirectional, default proxy, presence, history and forced
    positioning that a stream ignores), ``bi`` (bidirectional, a named proxy)."""
    proxy = {"endpoint": f"grpc://{target}", "timeout": "500ms", "http_headers": ["X-Token"],
             "grpc": {"static_metadata": {"x-static": "s"}}}  # fmt: skip
    return {
        "http_server": {"port": 0, "address": "127.0.0.1"},
        "http_api": {"key": "k"},
        "prometheus": {"enabled": True},
        "client": {"token": {"hmac_secret_key": "test-secret"}},
        "channel": {
            "proxy": {"subscribe_stream": proxy},
            "namespaces": [
                {"name": "st", "subscribe_stream_proxy_enabled": True, "presence": True,
                 "history_size": 10, "history_ttl": "60s", "force_positioning": True},
                {"name": "bi", "subscribe_stream_proxy_enabled": True,
                 "subscribe_stream_proxy_name": "bidi",
                 "subscribe_stream_proxy_bidirectional": True},
            ],
        },
        "proxies": [{"name": "bidi", **proxy, "binary_encoding": True}],
    }  # fmt: skip


def load(tmp_path: Path, body: dict[str, Any]) -> Any:
    file = tmp_path / "config.json"
    file.write_text(json.dumps(body))
    result = load_config(str(file), {})
    assert not result.refused, result.refused
    validate(result.config)
    return result.config


async def client_of(srv: Any, protobuf: bool = False) -> tuple[RawClient, str]:
    c = await RawClient.open(srv.ws_url, protobuf=protobuf, additional_headers={"X-Token": "t1"})
    reply = await c.connect(token=token("alice"))
    return c, reply["connect"]["client"]


def metric(srv: Any, family: str, labels: str) -> float:
    """A sample summed over the workers (``labels`` as exposed, ``name=...,type=...``)."""
    total = 0.0
    for node in srv.nodes:
        node.metrics.flush()
        for line in node.metrics.exposition().decode().splitlines():
            if line.startswith(f"{family}{{{labels}}} "):
                total += float(line.rsplit(" ", 1)[1])
    return total


STREAM_LABELS = 'name="default",protocol="grpc",type="subscribe_stream"'


async def test_stream_publications_reach_the_subscriber(
    tmp_path: Path, backend: StreamBackend, server_factory: Any
) -> None:
    backend.first["st:a"] = accepted(data=b'{"welcome": 1}', info=b'{"ci": 1}')
    async with server_factory(load(tmp_path, config_body(backend.target))) as srv:
        c, cid = await client_of(srv)
        other, other_id = await client_of(srv)
        reply = await c.call("subscribe", {"channel": "st:a", "data": {"d": 1}, "recover": False})
        # not positioned although the namespace forces it: no epoch, no offset
        assert reply["subscribe"] == {"data": {"welcome": 1}}
        assert "subscribe" in await other.call("subscribe", {"channel": "st:a"})
        method, req, metadata = backend.seen[0]
        assert method == "uni" and req.channel == "st:a" and req.user == "alice"
        assert req.client == cid and req.data == b'{"d":1}' and req.protocol == "json"
        assert req.encoding == "json" and req.transport == "websocket"
        assert metadata["x-token"] == "t1" and metadata["x-static"] == "s"
        await backend.feed(cid, "st:a").put(b'{"n": 1}')
        await backend.feed(cid, "st:a").put((b'{"n":2}', {"k": "v"}))
        assert (await c.push("pub", "st:a"))["pub"] == {"data": {"n": 1}}
        assert (await c.push("pub", "st:a"))["pub"] == {"data": {"n": 2}, "tags": {"k": "v"}}
        # to this subscriber only; the other one gets what its own stream sends
        await backend.feed(other_id, "st:a").put(b'{"mine": true}')
        assert (await other.push("pub", "st:a"))["pub"] == {"data": {"mine": True}}
        assert not [m for m in c.inbox if "push" in m]
        # a stream subscription is a channel subscription too: API publishes and presence
        async with aiohttp.ClientSession() as http:
            body = {"channel": "st:a", "data": {"api": 1}}
            headers = {"X-API-Key": "k"}
            async with http.post(f"{srv.api_url}/publish", json=body, headers=headers) as r:
                assert "result" in await r.json()
            async with http.post(f"{srv.api_url}/presence", json=body, headers=headers) as r:
                presence = (await r.json())["result"]["presence"]
        assert (await c.push("pub", "st:a"))["pub"]["data"] == {"api": 1}
        assert presence[cid]["chan_info"] == {"ci": 1}
        family = "centrifugo_proxy_duration_seconds_histogram_count"
        assert metric(srv, family, STREAM_LABELS) == 2
        assert metric(srv, "centrifugo_proxy_inflight_requests", STREAM_LABELS) == 0
        await c.close()
        await backend.wait_cancelled(cid, "st:a")  # a disconnect cancels the stream
        await other.close()


async def test_stream_first_message_refusals(
    tmp_path: Path, backend: StreamBackend, server_factory: Any
) -> None:
    backend.first.update(
        {
            "st:err": pb.StreamSubscribeResponse(
                subscribe_response=pb.SubscribeResponse(
                    error=pb.Error(code=4001, message="nope", temporary=True)
                )
            ),
            "st:disc": pb.StreamSubscribeResponse(
                subscribe_response=pb.SubscribeResponse(
                    disconnect=pb.Disconnect(code=4601, reason="go away")
                )
            ),
            "st:slow": "slow",
            "st:eof": EOF,
            "st:abort": ABORT,
            "st:garbage": GARBAGE,
            "st:nosub": pb.StreamSubscribeResponse(publication=pb.Publication(data=b"{}")),
            "st:expired": accepted(expire_at=1000),
            "st:b64": accepted(b64data="%%%"),
        }
    )
    async with server_factory(load(tmp_path, config_body(backend.target))) as srv:
        c, cid = await client_of(srv)
        reply = await c.call("subscribe", {"channel": "st:err"})
        assert reply["error"] == {"code": 4001, "message": "nope"}  # no temporary
        for ch in ("st:slow", "st:eof", "st:abort", "st:garbage", "st:nosub", "st:b64"):
            assert (await c.call("subscribe", {"channel": ch}))["error"] == INTERNAL, ch
        assert (await c.call("subscribe", {"channel": "st:expired"}))["error"]["code"] == 110
        for ch in ("st:slow", "st:nosub", "st:expired", "st:b64"):
            await backend.wait_cancelled(cid, ch)  # nothing left open at the backend
        assert srv.num_subscribers("st:slow") == 0
        # the calls that failed count as errors, the error answers do not (as Centrifugo)
        assert metric(srv, "centrifugo_proxy_errors", STREAM_LABELS) == 5
        await c.send({"id": 99, "subscribe": {"channel": "st:disc"}})
        assert await c.closed() == (4601, "go away")


@pytest.mark.parametrize("protobuf", [False, True], ids=["json", "protobuf"])
async def test_stream_ends_and_failures(
    tmp_path: Path, backend: StreamBackend, server_factory: Any, protobuf: bool
) -> None:
    async with server_factory(load(tmp_path, config_body(backend.target))) as srv:
        c, cid = await client_of(srv, protobuf)
        for ch, end, code in (
            ("st:eof", EOF, (2000, "server unsubscribe")),
            ("st:abort", ABORT, (2500, "insufficient state")),
            ("st:garbage", GARBAGE, (2500, "insufficient state")),
        ):
            assert "subscribe" in await c.call("subscribe", {"channel": ch})
            await backend.feed(cid, ch).put(b'"before"')
            await backend.feed(cid, ch).put(end)
            pub = (await c.push("pub", ch))["pub"]
            assert decoded(pub["data"]) == "before"
            unsub = (await c.push("unsubscribe", ch))["unsubscribe"]
            assert (unsub["code"], unsub["reason"]) == code
            for _ in range(100):
                if not srv.num_subscribers(ch):
                    break
                await asyncio.sleep(0.01)
            assert srv.num_subscribers(ch) == 0
        # the connection goes on: the same channel again opens a new stream
        assert "subscribe" in await c.call("subscribe", {"channel": "st:abort"})
        await backend.feed(cid, "st:abort").put(b"\x00binary")
        if protobuf:  # bytes travel as they are
            assert (await c.push("pub", "st:abort"))["pub"]["data"] == b"\x00binary"
            await c.close()
        else:  # not JSON: a JSON client cannot get it (as Centrifugo's encoder)
            assert (await c.closed())[0] == 3506
        await backend.wait_cancelled(cid, "st:abort")


async def test_bidirectional_stream_raw(
    tmp_path: Path, backend: StreamBackend, server_factory: Any
) -> None:
    async with server_factory(load(tmp_path, config_body(backend.target))) as srv:
        c, cid = await client_of(srv)
        not_available = {"code": 108, "message": "not available"}
        reply = await c.call("publish", {"channel": "bi:x", "data": {"early": 1}})
        assert reply["error"] == not_available  # no stream yet
        assert "subscribe" in await c.call("subscribe", {"channel": "st:u"})
        reply = await c.call("publish", {"channel": "st:u", "data": {"c": 1}})
        assert reply["error"] == not_available  # a unidirectional stream takes nothing
        reply = await c.call("subscribe", {"channel": "bi:x", "data": {"hi": 1}})
        assert "subscribe" in reply
        method, req, _ = backend.seen[-1]
        assert method == "bidi" and req.encoding == "binary" and req.b64data == "eyJoaSI6MX0="
        reply = await c.call("publish", {"channel": "bi:x", "data": {"c": 2}})
        assert reply["publish"] == {}
        assert (await c.push("pub", "bi:x"))["pub"]["data"] == {"echo": {"c": 2}}
        assert backend.published == [("bi:x", b'{"c":2}')]
        assert srv.num_subscribers("bi:x") == 1
        assert (await c.call("unsubscribe", {"channel": "bi:x"}))["unsubscribe"] == {}
        await backend.wait_cancelled(cid, "bi:x")
        reply = await c.call("publish", {"channel": "bi:x", "data": {"late": 1}})
        assert reply["error"] == not_available
        await asyncio.sleep(0.1)
        assert not [m for m in c.inbox if "push" in m]  # no unsubscribe push after ours
        await c.close()
        await backend.wait_cancelled(cid, "st:u")


@pytest.mark.parametrize("protobuf", [False, True], ids=["json", "protobuf"])
async def test_sdk_bidirectional_stream(
    tmp_path: Path, backend: StreamBackend, server_factory: Any, protobuf: bool
) -> None:
    async with server_factory(load(tmp_path, config_body(backend.target))) as srv:
        async with SDKPool(srv.ws_url, protobuf) as pool:
            client, _ = await pool.connected(token=token("sam"))
            sub, rec = subscription(client, "bi:room")
            await sub.subscribe()
            await rec.wait("subscribed")
            cid = backend.seen[-1][1].client
            await backend.feed(cid, "bi:room").put(b'{"from": "backend"}')
            assert decoded((await rec.wait("publication")).pub.data) == {"from": "backend"}
            await sub.publish(payload(protobuf, {"from": "sam"}))
            pub = await rec.wait("publication", count=2)
            assert decoded(pub.pub.data) == {"echo": {"from": "sam"}}
            # the backend fails: 2500, the SDK subscribes again and a new stream opens
            await backend.feed(cid, "bi:room").put(ABORT)
            await rec.wait("subscribed", count=2)
            assert len([s for s in backend.seen if s[1].channel == "bi:room"]) == 2
            await sub.unsubscribe()
            await rec.wait("unsubscribed")
            await backend.wait_cancelled(cid, "bi:room")
            assert srv.num_subscribers("bi:room") == 0


async def test_stream_with_worker_processes(tmp_path: Path, backend: StreamBackend) -> None:
    """``relay --workers 2``: each connection's stream runs in the worker holding it."""
    from tests.procutil import free_port, spawn_relay, wait_port

    body = config_body(backend.target)
    del body["http_server"]
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(body))
    port = free_port()
    proc = spawn_relay(cfg, port, workers=2)
    try:
        await wait_port(port)
        url = f"ws://127.0.0.1:{port}/connection/websocket"
        clients = []
        for i in range(4):  # spread over both workers
            c = await RawClient.open(url)
            cid = (await c.connect(token=token(f"u{i}")))["connect"]["client"]
            assert "subscribe" in await c.call("subscribe", {"channel": "st:w"})
            clients.append((c, cid))
        for i, (_c, cid) in enumerate(clients):
            await backend.feed(cid, "st:w").put(json.dumps({"to": i}).encode())
        for i, (c, _cid) in enumerate(clients):
            assert (await c.push("pub", "st:w"))["pub"]["data"] == {"to": i}
        for c, cid in clients:
            await c.close()
            await backend.wait_cancelled(cid, "st:w")
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"endpoint": "http://127.0.0.1:1/x"}, "only GRPC endpoints supported"),
        ({"endpoint": "python://examples.proxy_hooks:rpc"}, "only GRPC endpoints supported"),
        ({"endpoint": ""}, "in channel.proxy.subscribe_stream: endpoint not set"),
    ],
)
def test_stream_proxy_config_errors(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    body = config_body("127.0.0.1:1")
    body["channel"]["proxy"]["subscribe_stream"].update(change)
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, body)


def test_stream_proxy_exclusive_and_named(tmp_path: Path) -> None:
    body = config_body("127.0.0.1:1")
    body["channel"]["namespaces"][0]["publish_proxy_enabled"] = True
    body["channel"]["proxy"]["publish"] = {"endpoint": "http://127.0.0.1:1/p"}
    with pytest.raises(ConfigError, match="can't use subscribe stream proxy together"):
        load(tmp_path, body)
    body = config_body("127.0.0.1:1")
    body["channel"]["namespaces"][1]["subscribe_stream_proxy_name"] = "nope"
    with pytest.raises(ConfigError, match='subscribe stream proxy with name "nope" not found'):
        load(tmp_path, body)
    body = config_body("127.0.0.1:1")
    body["proxies"][0]["endpoint"] = "https://127.0.0.1:1/x"
    with pytest.raises(ConfigError, match="subscribe stream proxy bidi only GRPC"):
        load(tmp_path, body)
