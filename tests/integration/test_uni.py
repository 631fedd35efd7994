"""Uni-directional transports: ``uni_websocket``, ``uni_sse``, ``uni_http_stream``.

Raw aiohttp clients, one worker and two. The server only pushes, bare ``Push`` objects
(no ``Reply`` around them), the first one the ``connect`` push with the ``session``;
a connect error ends the connection with the disconnect its code maps to. Expected
bytes were checked side by side with the Centrifugo 6.9.1 binary.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from relay.config.tree import UniStreamConfig, UniWebsocketConfig
from tests.conftest import API_KEY, make_config, token

pytestmark = pytest.mark.asyncio

TIMEOUT = 5.0


def uni_config(**uni_ws: Any) -> Any:
    return make_config(
        uni_sse=UniStreamConfig(enabled=True, handler_prefix="/connection/uni_sse"),
        uni_http_stream=UniStreamConfig(
            enabled=True, handler_prefix="/connection/uni_http_stream", max_request_body_size=2000
        ),
        uni_websocket=UniWebsocketConfig(enabled=True, **uni_ws),
    )


async def api(s: aiohttp.ClientSession, url: str, method: str, body: dict[str, Any]) -> Any:
    async with s.post(f"{url}/api/{method}", json=body, headers={"X-API-Key": API_KEY}) as r:
        assert r.status == 200
        return await r.json()


class Lines:
    def __init__(self, response: aiohttp.ClientResponse, sse: bool) -> None:
        self.response = response
        self.sse = sse

    async def next(self) -> Any:
        while True:
            line = await asyncio.wait_for(self.response.content.readline(), TIMEOUT)
            if not line:
                raise EOFError
            text = line.strip()
            if not text:
                continue
            if self.sse:
                assert text.startswith(b"data: ")
                text = text[6:]
            return json.loads(text)


async def _check_session(s: aiohttp.ClientSession, url: str, stream: Lines, user: str) -> None:
    connect = (await stream.next())["connect"]
    assert connect["session"] and "pong" not in connect and "node" not in connect
    await api(s, url, "subscribe", {"channel": "news", "user": user})
    sub = await stream.next()
    assert sub["channel"] == "news" and "subscribe" in sub
    await api(s, url, "publish", {"channel": "news", "data": {"v": 1}})
    assert await stream.next() == {"channel": "news", "pub": {"data": {"v": 1}}}
    await api(s, url, "disconnect", {"user": user, "disconnect": {"code": 4001, "reason": "x"}})
    assert await stream.next() == {"disconnect": {"code": 4001, "reason": "x"}}
    with pytest.raises(EOFError):
        await stream.next()


async def test_uni_sse_get_and_post(server_factory: Any) -> None:
    async with server_factory(uni_config()) as srv, aiohttp.ClientSession() as s:
        url = srv.http_url
        req = quote(json.dumps({"token": token("g")}))
        async with s.get(f"{url}/connection/uni_sse?cf_connect={req}") as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "text/event-stream; charset=utf-8"
            assert await r.content.readexactly(2) == b"\r\n"
            await _check_session(s, url, Lines(r, sse=True), "g")
        body = json.dumps({"token": token("p")})
        async with s.post(f"{url}/connection/uni_sse", data=body) as r:
            assert r.status == 200
            await _check_session(s, url, Lines(r, sse=True), "p")


async def test_uni_http_stream(server_factory: Any) -> None:
    async with server_factory(uni_config()) as srv, aiohttp.ClientSession() as s:
        url = srv.http_url
        body = json.dumps({"token": token("h")})
        async with s.post(f"{url}/connection/uni_http_stream", data=body) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
            await _check_session(s, url, Lines(r, sse=False), "h")


async def test_uni_connect_errors_become_disconnects(server_factory: Any) -> None:
    async with server_factory(uni_config()) as srv, aiohttp.ClientSession() as s:
        url = srv.http_url + "/connection/uni_http_stream"
        expired = token("e", exp=int(time.time()) - 10)
        for req, code in (({"token": "bad"}, 3500), ({"token": expired}, 3005), ({}, 3501)):
            async with s.post(url, data=json.dumps(req)) as r:
                assert r.status == 200
                text = await asyncio.wait_for(r.content.read(), TIMEOUT)
                assert json.loads(text)["disconnect"]["code"] == code, req


async def test_uni_bad_requests(server_factory: Any) -> None:
    async with server_factory(uni_config()) as srv, aiohttp.ClientSession() as s:
        url = srv.http_url
        for method, path, body, status in (
            ("POST", "/connection/uni_http_stream", b"bad", 400),
            ("POST", "/connection/uni_http_stream", b'{"token": 5}', 400),
            ("POST", "/connection/uni_http_stream", b"x" * 2001, 413),
            ("GET", "/connection/uni_http_stream", b"", 405),
            ("OPTIONS", "/connection/uni_http_stream", b"", 204),
            ("POST", "/connection/uni_sse", b"bad", 400),
            ("POST", "/connection/uni_sse", b"x" * 70000, 413),
            ("GET", "/connection/uni_sse?cf_connect=bad", b"", 400),
            ("PUT", "/connection/uni_sse", b"", 405),
        ):
            async with s.request(method, url + path, data=body) as r:
                assert r.status == status, (method, path, body[:20])
        async with s.get(url + "/connection/uni_websocket?cf_connect=bad") as r:
            assert (r.status, await r.text()) == (400, "invalid connect request\n")
        async with s.get(url + "/connection/uni_websocket") as r:
            assert r.status == 400  # not an upgrade


async def test_uni_websocket_first_message_and_query(server_factory: Any) -> None:
    async with server_factory(uni_config()) as srv, aiohttp.ClientSession() as s:
        url = srv.http_url
        ws = await s.ws_connect(url + "/connection/uni_websocket")
        await ws.send_str(json.dumps({"token": token("w")}))
        connect = json.loads((await ws.receive(TIMEOUT)).data)["connect"]
        assert connect["session"] and "pong" not in connect
        await ws.send_str("ignored: the server reads and drops later messages")
        await api(s, url, "subscribe", {"channel": "n", "user": "w"})
        assert "subscribe" in json.loads((await ws.receive(TIMEOUT)).data)
        await api(s, url, "publish", {"channel": "n", "data": {"a": 1}})
        assert json.loads((await ws.receive(TIMEOUT)).data) == {
            "channel": "n",
            "pub": {"data": {"a": 1}},
        }
        await api(
            s, url, "disconnect", {"user": "w", "disconnect": {"code": 4000, "reason": "bye"}}
        )
        msg = await ws.receive(TIMEOUT)
        assert json.loads(msg.data) == {"disconnect": {"code": 4000, "reason": "bye"}}
        msg = await ws.receive(TIMEOUT)
        assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 4000, "bye")
        req = quote(json.dumps({"token": token("q")}))
        ws = await s.ws_connect(f"{url}/connection/uni_websocket?cf_connect={req}")
        assert "connect" in json.loads((await ws.receive(TIMEOUT)).data)
        await ws.close()


async def test_uni_websocket_bad_first_message(server_factory: Any) -> None:
    async with server_factory(uni_config()) as srv, aiohttp.ClientSession() as s:
        ws = await s.ws_connect(srv.http_url + "/connection/uni_websocket")
        await ws.send_str("garbage")
        msg = await ws.receive(TIMEOUT)  # no disconnect push before the close frame
        assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 3501, "bad request")


async def test_uni_websocket_join_push_messages(server_factory: Any) -> None:
    config = uni_config(join_push_messages=True, disable_disconnect_push=True)
    async with server_factory(config) as srv, aiohttp.ClientSession() as s:
        url = srv.http_url
        ws = await s.ws_connect(url + "/connection/uni_websocket")
        await ws.send_str(json.dumps({"token": token("j")}))
        assert "connect" in json.loads((await ws.receive(TIMEOUT)).data)
        await api(s, url, "subscribe", {"channel": "j", "user": "j"})
        assert "subscribe" in json.loads((await ws.receive(TIMEOUT)).data)
        cmds = [{"publish": {"channel": "j", "data": {"i": i}}} for i in range(3)]
        await api(s, url, "batch", {"commands": cmds})
        got: list[Any] = []
        while len(got) < 3:
            frame = (await ws.receive(TIMEOUT)).data
            got.extend(json.loads(line) for line in frame.split("\n"))
        assert [g["pub"]["data"]["i"] for g in got] == [0, 1, 2]
        await api(s, url, "disconnect", {"user": "j"})
        msg = await ws.receive(TIMEOUT)  # disable_disconnect_push: the close frame only
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 3503)


async def test_transport_label_in_metrics(server_factory: Any) -> None:
    async with server_factory(uni_config()) as srv, aiohttp.ClientSession() as s:
        url = srv.http_url
        async with s.post(
            f"{url}/connection/uni_http_stream", data=json.dumps({"token": token()})
        ) as r:
            assert "connect" in await Lines(r, sse=False).next()
            total = 0.0
            for node in srv.nodes:
                node.metrics.flush()
                for metric in node.metrics.connections_accepted.collect():
                    for sample in metric.samples:
                        if sample.labels.get("transport") == "uni_http_stream":
                            total += sample.value
            assert total >= 1


async def test_publication_frames_carry_the_subscriber_transport(server_factory: Any) -> None:
    """Fan-out ``push_publication`` frames are counted under each subscriber's transport
    (one WebSocket and one uni_http_stream subscriber of one channel)."""
    from tests.integration.wsutil import RawClient

    def sent(srv: Any, transport: str) -> float:
        total = 0.0
        for node in srv.nodes:
            node.metrics.flush()
            for metric in node.metrics.transport_sent.collect():
                for sample in metric.samples:
                    labels = sample.labels
                    if (
                        not sample.name.endswith("_created")
                        and labels.get("frame_type") == "push_publication"
                        and labels.get("transport") == transport
                    ):
                        total += sample.value
        return total

    async with server_factory(uni_config()) as srv, aiohttp.ClientSession() as s:
        ws = await RawClient.open(srv.ws_url)
        await ws.connect(token=token("w"))
        await ws.call("subscribe", {"channel": "news"})
        body = json.dumps({"token": token("u")})
        async with s.post(f"{srv.http_url}/connection/uni_http_stream", data=body) as r:
            stream = Lines(r, sse=False)
            assert "connect" in await stream.next()
            await api(s, srv.http_url, "subscribe", {"channel": "news", "user": "u"})
            assert "subscribe" in await stream.next()
            for i in range(3):
                await api(s, srv.http_url, "publish", {"channel": "news", "data": i})
                assert (await stream.next())["pub"]["data"] == i
                await ws.push("pub", "news")
            assert sent(srv, "uni_http_stream") == 3
            assert sent(srv, "websocket") == 3
        await ws.close()


async def test_unwrap_push_keeps_other_messages() -> None:
    from relay.transports.streaming import unwrap_push

    assert unwrap_push(b'{"push":{"channel":"a","pub":{}}}') == b'{"channel":"a","pub":{}}'
    assert unwrap_push(b"{}") == b"{}"
    assert unwrap_push(b'{"id":1,"connect":{}}') == b'{"id":1,"connect":{}}'


async def test_disabled_endpoints_are_not_served(server_factory: Any) -> None:
    config = replace(uni_config(), uni_sse=UniStreamConfig(handler_prefix="/connection/uni_sse"))
    async with server_factory(config) as srv, aiohttp.ClientSession() as s:
        async with s.get(srv.http_url + "/connection/uni_sse") as r:
            assert r.status == 404
        async with s.post(srv.http_url + "/emulation", data=b"{}") as r:
            assert r.status == 404


async def test_connection_limit_refuses_with_503(server_factory: Any, mode: str) -> None:
    cfg = uni_config()
    config = replace(cfg, client=replace(cfg.client, connection_limit=1))
    async with server_factory(config) as srv:
        sessions = [aiohttp.ClientSession() for _ in range(3)]
        try:
            statuses = []
            for s in sessions:  # one TCP connection each (so: each worker in turn)
                body = json.dumps({"token": token()})
                r = await s.post(f"{srv.http_url}/connection/uni_http_stream", data=body)
                statuses.append(r.status)
                if r.status == 200:
                    assert "connect" in await Lines(r, sse=False).next()
            # each worker enforces its share of the node's limit (here 1 each)
            expected = [200, 503, 503] if mode == "single" else [200, 200, 503]
            assert statuses == expected
        finally:
            for s in sessions:
                await s.close()


async def test_connect_codes_transformed_as_configured(server_factory: Any) -> None:
    """``client.connect_code_to_unidirectional_disconnect`` and
    ``connect_code_to_http_response`` (uni_http_stream): the answers Centrifugo 6.9.1
    gives for the same config (401 with the disconnect reason as body, 403 with the
    configured body, 500 for an unmatched code; 4109 for a transformed disconnect)."""
    from relay.config.transport_tree import (
        ConnectCodeToHTTPResponse,
        ConnectCodeToUnidirectionalDisconnect,
        HTTPResponseTransform,
        TransformedDisconnect,
        TransformedHTTPResponse,
        UniDisconnectTransform,
    )
    from relay.config.tree import ClientConfig

    base = uni_config()
    uni_disconnect = ConnectCodeToUnidirectionalDisconnect(
        enabled=True,
        transforms=(UniDisconnectTransform(109, TransformedDisconnect(4109, "expired!")),),
    )
    http_answers = ConnectCodeToHTTPResponse(
        enabled=True,
        transforms=(
            HTTPResponseTransform(3500, TransformedHTTPResponse(401)),
            HTTPResponseTransform(109, TransformedHTTPResponse(403, "gone")),
        ),
    )
    cfg = replace(
        base,
        client=replace(base.client, connect_code_to_unidirectional_disconnect=uni_disconnect),
        uni_http_stream=replace(base.uni_http_stream, connect_code_to_http_response=http_answers),
    )
    assert isinstance(cfg.client, ClientConfig)
    expired = token("e", exp=int(time.time()) - 10)
    async with server_factory(cfg) as srv, aiohttp.ClientSession() as s:
        url = srv.http_url + "/connection/uni_http_stream"
        for req, answer in (
            ({"token": "bad"}, (401, "invalid token")),
            ({"token": expired}, (403, "gone")),
            ({}, (500, "Internal Server Error")),
        ):
            async with s.post(url, data=json.dumps(req)) as r:
                assert (r.status, await r.text()) == answer, req
        body = json.dumps({"token": token("ok")})
        async with s.post(url, data=body) as r:  # a good connect still streams
            assert r.status == 200
            await _check_session(s, srv.http_url, Lines(r, sse=False), "ok")
        sse = (
            srv.http_url + "/connection/uni_sse?cf_connect=" + quote(json.dumps({"token": expired}))
        )
        async with s.get(sse) as r:  # no HTTP transforms there: the stream, then the disconnect
            assert r.status == 200
            push = await Lines(r, sse=True).next()
            assert push == {"disconnect": {"code": 4109, "reason": "expired!"}}


async def test_connect_code_transforms_are_validated() -> None:
    from relay.config import load_config, validate
    from relay.errors import ConfigError

    env = "CENTRIFUGO_CLIENT_CONNECT_CODE_TO_UNIDIRECTIONAL_DISCONNECT_TRANSFORMS"
    for value, error in (
        ('[{"to": {"code": 4000}}]', "no code specified in transforms[0]"),
        ('[{"code": 109, "to": {}}]', "no disconnect code specified in transforms[0].to"),
        ('[{"code": 109, "to": {"code": 4000, "reason": "é"}}]', "must be ASCII"),
    ):
        with pytest.raises(ConfigError, match=error.replace("[", r"\[").replace("]", r"\]")):
            validate(load_config(None, {env: value}).config)
    http = "CENTRIFUGO_UNI_SSE_CONNECT_CODE_TO_HTTP_RESPONSE_TRANSFORMS"
    with pytest.raises(ConfigError, match="status_code should be set"):
        validate(load_config(None, {http: '[{"code": 3500, "to": {}}]'}).config)
    ok = load_config(None, {env: '[{"code": 109, "to": {"code": 4109, "reason": "x"}}]'})
    validate(ok.config)
    assert ok.config.client.connect_code_to_unidirectional_disconnect.transforms[0].to.code == 4109
