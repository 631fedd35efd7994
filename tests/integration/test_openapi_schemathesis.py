"""The served OpenAPI document, and schemathesis requests from it against a live relay.

A real ``RelayServer`` runs in a thread of its own (schemathesis calls are blocking) with
``swagger.enabled``. Some state is seeded first (clients with connection and
channel info in presence, publications with tags and client info in history) so that
results are not all empty. For every method, property-based requests from the document
(positive, negative, and positive in the transport error mode) must get no 5xx, no
internal error (100) and answers that conform to the document: status codes, media types
and response schemas (closed: a key relay writes that the result tables do not name fails).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from relay.api.openapi import document
from relay.config import EndpointConfig
from relay.protocol.schema import API_METHODS
from relay.server import RelayServer
from relay.transports.http_api import TRANSPORT_STATUS
from tests.conftest import API_KEY, make_config
from tests.integration.conftest import WSClient

# schemathesis' negative strategies draw from `random`, which Hypothesis warns about
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

MAX_EXAMPLES = 25
OBSERVER, TARGET = "observer-user", "target-user"
#: Channels requests are steered to: presence, history, none, unknown namespace.
CHANNELS = ("chat:room", "hist:log", "news", "closed:x", "nope:x", "chat:", "hist:other")
AUTH = {"X-API-Key": API_KEY}
PAYLOADS = st.one_of(
    st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
    st.integers(),
    st.text(max_size=10),
)
CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]
CHECKS = {
    GenerationMode.POSITIVE: [not_a_server_error, *CONFORMANCE, positive_data_acceptance],
    GenerationMode.NEGATIVE: [not_a_server_error, *CONFORMANCE, negative_data_rejection],
}


@pytest.fixture(scope="module")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    """The server has its own loop in a thread: these tests run once, not per loop."""
    return asyncio.DefaultEventLoopPolicy()


@dataclass
class Live:
    """A relay serving in a background thread, and the schema it serves."""

    loop: asyncio.AbstractEventLoop
    server: RelayServer | None = None
    schema: Any = None
    clients: list[WSClient] = field(default_factory=list)

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def http_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def api_url(self) -> str:
        return self.http_url + "/api"


def _config() -> Any:
    return make_config(swagger=EndpointConfig(enabled=True, handler_prefix="/swagger"))


async def _start(live: Live) -> None:
    server = RelayServer(_config())
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    await server.start(sock=sock)
    live.server = server


async def _seed(live: Live) -> None:
    """Clients in presence (with conn and chan info), publications with tags and info."""
    ws_url = live.http_url.replace("http", "ws", 1) + "/connection/websocket"
    observer = await WSClient.login(ws_url, OBSERVER, info={"name": "observer"})
    target = await WSClient.login(ws_url, TARGET)
    live.clients += [observer, target]
    for client in (observer, target):
        await client.subscribe("chat:room")
    reply = await observer.call("publish", {"channel": "chat:room", "data": {"from": "ws"}})
    assert "publish" in reply, reply


def _api(live: Live, method: str, params: Any) -> Any:
    resp = requests.post(f"{live.api_url}/{method}", json=params, headers=AUTH, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    state = Live(loop)
    try:
        state.run(_start(state))
        state.run(_seed(state))
        _api(state, "subscribe", {"channel": "news", "user": OBSERVER, "info": {"role": "r"}})
        for n in range(3):
            pub = {"channel": "hist:log", "data": {"n": n}, "tags": {"k": str(n)}}
            assert "error" not in _api(state, "publish", pub)
        state.schema = schemathesis.openapi.from_url(f"{state.http_url}/swagger/swagger.json")
        yield state
    finally:
        for client in state.clients:
            state.run(client.close())
        if state.server is not None:
            state.run(state.server.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


# ---- the served document and page ----------------------------------------------------------
def test_served_document_is_the_generated_one(live: Live) -> None:
    resp = requests.get(f"{live.http_url}/swagger/swagger.json", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    statuses = sorted(set(TRANSPORT_STATUS.values()))
    assert resp.json() == json.loads(json.dumps(document("/api", error_statuses=statuses)))


def test_page_and_redirects(live: Live) -> None:
    base = f"{live.http_url}/swagger"
    page = requests.get(base + "/", timeout=5)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "./swagger.json" in page.text and "<script" in page.text
    assert "http" not in page.text.split("<script", 1)[1]  # no asset from elsewhere
    bare = requests.get(base, allow_redirects=False, timeout=5)
    assert (bare.status_code, bare.headers["Location"]) == (307, "/swagger/")
    assert bare.text == '<a href="/swagger/">Temporary Redirect</a>.\n\n'
    index = requests.get(base + "/index.html", allow_redirects=False, timeout=5)
    assert (index.status_code, index.headers["Location"]) == (301, "./")
    posted = requests.post(base, allow_redirects=False, timeout=5)
    assert (posted.status_code, posted.content) == (307, b"")
    head = requests.head(base + "/swagger.json", timeout=5)
    assert head.status_code == 200 and head.headers["Content-Type"] == "application/json"
    assert requests.post(base + "/swagger.json", timeout=5).json()["swagger"] == "2.0"
    missing = requests.get(base + "/swagger-ui-bundle.js", timeout=5)
    assert (missing.status_code, missing.text) == (404, "404 page not found\n")


@pytest.mark.parametrize("method", list(API_METHODS))
def test_every_key_scheme_of_the_document_is_accepted(live: Live, method: str) -> None:
    url = f"{live.api_url}/{method}"
    ways: list[dict[str, Any]] = [
        {"headers": AUTH},
        {"headers": {"Authorization": f"apikey {API_KEY}"}},
        {"params": {"api_key": API_KEY}},
    ]
    assert len(ways) == len(live.schema.raw_schema["security"])
    for way in ways:
        assert requests.post(url, data=b"{}", timeout=5, **way).status_code == 200, way
    for bad in ({}, {"headers": {"X-API-Key": "wrong"}}, {"params": {"api_key": "wrong"}}):
        resp = requests.post(url, data=b"{}", timeout=5, **bad)
        assert (resp.status_code, resp.content) == (401, b""), bad


# ---- schemathesis -----------------------------------------------------------------------
def _definition(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _prune(value: Any, schema: dict[str, Any], defs: dict[str, Any]) -> None:
    """Drop generated extra keys that spell a field in another case: Go's decoder reads
    them as that field (which a JSON schema cannot say), so they are not extra."""
    schema = _definition(schema, defs)
    if isinstance(value, list) and "items" in schema:
        for item in value:
            _prune(item, schema["items"], defs)
    if not isinstance(value, dict):
        return
    props: dict[str, Any] = schema.get("properties", {})
    folded = {name.lower() for name in props}
    for key in list(value):
        if key in props:
            _prune(value[key], props[key], defs)
        elif key.lower() in folded:
            del value[key]
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for item in value.values():
            _prune(item, extra, defs)


def _steer(case: Any, fields: dict[str, Any], data: st.DataObject) -> None:
    """Point some positive requests at channels and users that exist."""
    body = case.body
    if not isinstance(body, dict) or not data.draw(st.booleans()):
        return
    if "channel" in fields:
        body["channel"] = data.draw(st.sampled_from(CHANNELS))
    if "channels" in fields:
        body["channels"] = data.draw(st.lists(st.sampled_from(CHANNELS), max_size=3))
    if "user" in fields:
        body["user"] = data.draw(st.sampled_from((TARGET, "")))
    if "data" in fields:  # publish, broadcast, subscribe: data that is given and JSON
        body["data"] = data.draw(PAYLOADS)
        body.pop("b64data", None)
    if "limit" in fields:
        body["limit"] = data.draw(st.sampled_from((-1, 0, 1, 10)))


def _reverse_since_zero(params: Any) -> bool:
    """A history read backwards from offset 0: centrifuge refuses it before the engine is
    asked and the API answers 100 (checked against Centrifugo 6.9.1)."""
    if not isinstance(params, dict) or params.get("reverse") is not True:
        return False
    since = params.get("since")
    return isinstance(since, dict) and not since.get("offset")


def _centrifugo_gives_100(method: str, params: Any) -> bool:
    """Where Centrifugo answers 100 too: a bad glob in ``channels``, a reverse read since 0."""
    return method == "channels" or (method == "history" and _reverse_since_zero(params))


def _internal_errors(method: str, request: Any, answer: Any) -> list[Any]:
    """Reply errors 100 in an answer, except where Centrifugo gives them too."""
    found: list[Any] = []
    if not isinstance(answer, dict):
        return found
    replies = answer.get("replies") if method == "batch" else [answer]
    commands = request.get("commands") if isinstance(request, dict) else None
    for i, reply in enumerate(replies or []):
        if not isinstance(reply, dict):
            continue
        command = commands[i] if isinstance(commands, list) and i < len(commands) else None
        expected = _centrifugo_gives_100(method, request)
        if method == "batch" and isinstance(command, dict) and command:
            inner = next(iter(command))
            expected = _centrifugo_gives_100(inner, command[inner])
        error = reply.get("error") or {}
        if error.get("code") == 100 and not expected:
            found.append(reply)
        result = reply.get("result") or reply.get("broadcast") or {}
        for response in result.get("responses") or []:
            if (response.get("error") or {}).get("code") == 100:
                found.append(response)
    return found


def _json(response: Any) -> Any:
    """The JSON body of a schemathesis ``Response`` (lower-case header names, lists)."""
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.startswith("application/json"):
        return None
    return json.loads(response.content)


def _fuzz(
    live: Live,
    method: str,
    mode: GenerationMode,
    checks: list[Any],
    headers: dict[str, str] | None = None,
    extra: Callable[[Any, Any], None] | None = None,
) -> None:
    operation = live.schema[f"/{method}"]["POST"]
    defs = live.schema.raw_schema["definitions"]
    body_schema = {"$ref": f"#/definitions/{API_METHODS[method]}"}
    fields = defs[API_METHODS[method]].get("properties", {})

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def fuzz(case: Any, data: st.DataObject) -> None:
        if mode is GenerationMode.POSITIVE:
            _prune(case.body, body_schema, defs)
            _steer(case, fields, data)
        response = case.call(base_url=live.api_url, headers={**AUTH, **(headers or {})})
        case.validate_response(response, checks=checks)
        answer = _json(response)
        assert not _internal_errors(method, case.body, answer), (case.body, answer)
        if extra is not None:
            extra(case, response)

    fuzz()


@pytest.mark.parametrize("method", list(API_METHODS))
def test_positive_requests_conform(live: Live, method: str) -> None:
    _fuzz(live, method, GenerationMode.POSITIVE, CHECKS[GenerationMode.POSITIVE])


@pytest.mark.parametrize("method", list(API_METHODS))
def test_negative_requests_are_rejected(live: Live, method: str) -> None:
    _fuzz(live, method, GenerationMode.NEGATIVE, CHECKS[GenerationMode.NEGATIVE])


@pytest.mark.parametrize("method", list(API_METHODS))
def test_transport_error_mode_conforms(live: Live, method: str) -> None:
    def only_glob_errors_are_500(case: Any, response: Any) -> None:
        if response.status_code >= 500:
            expected = _centrifugo_gives_100(method, case.body)
            assert expected, (case.body, response.status_code, response.content)
            assert _json(response) == {"code": 100, "message": "internal server error"}

    _fuzz(
        live,
        method,
        GenerationMode.POSITIVE,
        CONFORMANCE,
        headers={"X-Centrifugo-Error-Mode": "transport"},
        extra=only_glob_errors_are_500,
    )
