"""The one request decoder (protocol/json_decode.py): Go ``encoding/json`` rules, both walks.

Every rule below was first observed on Centrifugo 6.9.1: over a WebSocket for client
commands and on ``/api/publish`` for server API requests. The same tables and walker serve
both, so each rule is checked through both entry points.
"""

from __future__ import annotations

from typing import Any

import pytest

from relay.api import decode_request
from relay.errors import DecodeError
from relay.protocol import json_codec
from relay.protocol.json_decode import build_tables, decode_object, loads, to_raw
from relay.protocol.schema import Field


def client_publish(body: bytes) -> dict[str, Any]:
    """A client ``publish`` command's request, as the client path decodes it."""
    command = json_codec.decode_command(b'{"id":1,"publish":' + body + b"}")
    assert command["id"] == 1
    request: dict[str, Any] = command.get("publish", {})
    return request


def api_publish(body: bytes) -> dict[str, Any]:
    """A server API ``publish`` request, as the exact path decodes it."""
    req = decode_request("publish", loads(body.decode()))
    out: dict[str, Any] = {"channel": req.channel} if req.channel else {}
    if bytes(req.data):
        out["data"] = bytes(req.data)
    return out


WALKS = [client_publish, api_publish]


@pytest.mark.parametrize("walk", WALKS)
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # keys match exactly, else case-insensitively; the later of two keys wins
        (b'{"Channel":"a","DATA":1}', {"channel": "a", "data": b"1"}),
        (b'{"channel":"ab","CHANNEL":"cd","data":1}', {"channel": "cd", "data": b"1"}),
        (b'{"channel":"c","data":{"a":1},"Data":{"b":2}}', {"channel": "c", "data": b'{"b":2}'}),
        # null: no effect on a scalar, the literal null for raw JSON
        (b'{"channel":"c","CHANNEL":null,"data":1}', {"channel": "c", "data": b"1"}),
        (b'{"channel":"c","data":null}', {"channel": "c", "data": b"null"}),
        (b'{"channel":"c","data":{"a":1},"Data":null}', {"channel": "c", "data": b"null"}),
        # a lone surrogate in a string is U+FFFD; in raw JSON it stays an escape
        (b'{"channel":"\\ud800","data":"\\udc00"}', {"channel": "\ufffd", "data": b'"\\udc00"'}),
        # zero values are absent values
        (b'{"channel":"","data":0}', {"data": b"0"}),
    ],
)
def test_go_rules(walk: Any, body: bytes, expected: dict[str, Any]) -> None:
    assert walk(body) == expected


def test_client_command_keys_are_case_insensitive() -> None:
    """Centrifugo 6.9.1 answers ``{"ID":2,"Subscribe":{"Channel":"a"}}`` as a subscribe."""
    command = json_codec.decode_command(b'{"ID":2,"Subscribe":{"Channel":"a"}}')
    assert command == {"id": 2, "subscribe": {"channel": "a"}}


def test_null_clears_lists_maps_and_messages() -> None:
    req = decode_request(
        "broadcast", {"channels": ["a"], "Channels": None, "data": 1, "tags": {"k": "v"}}
    )
    assert req == {"data": b"1", "tags": {"k": "v"}}
    req = decode_request("subscribe", {"recover_since": {"offset": 1}, "RECOVER_SINCE": None})
    assert req == {}
    command = json_codec.decode_command(b'{"id":1,"connect":{"subs":{"a":{}},"Subs":null}}')
    assert command == {"id": 1, "connect": {}}


def test_null_elements_are_zero_values() -> None:
    """``"tags":{"a":null}`` publishes tag ``a`` as ``""`` on Centrifugo 6.9.1."""
    req = decode_request("broadcast", {"channels": ["a", None], "tags": {"k": None}})
    assert req == {"channels": ["a", ""], "tags": {"k": ""}}
    command = json_codec.decode_command(b'{"id":1,"connect":{"subs":{"a":null}}}')
    assert command == {"id": 1, "connect": {"subs": {"a": {}}}}
    batch = decode_request("batch", {"commands": [None, {"info": {}}]})
    assert batch == {"commands": [None, {"info": {}}]}


def test_a_later_zero_value_replaces_an_earlier_value() -> None:
    assert decode_request("history", {"channel": "c", "limit": 5, "LIMIT": 0}) == {"channel": "c"}


def test_nested_messages_stay_when_empty() -> None:
    req = decode_request("subscribe", {"channel": "c", "user": "u", "recover_since": {}})
    assert req == {"channel": "c", "user": "u", "recover_since": {}}


@pytest.mark.parametrize(
    "value",
    [1.0, 1e3, True, "1", -1, 2**64, [1]],
)
def test_integers_are_json_integers_in_range(value: Any) -> None:
    with pytest.raises(DecodeError):
        decode_request("history", {"channel": "c", "since": {"offset": value}})


@pytest.mark.parametrize("value", [1, True, ["a"], {"a": "b"}])
def test_strings_are_strings(value: Any) -> None:
    with pytest.raises(DecodeError):
        decode_request("history", {"channel": value})
    with pytest.raises(DecodeError):
        json_codec.decode_command(b'{"id":1,"history":{"channel":%s}}' % to_raw(value))


def test_tables_are_built_from_any_schema() -> None:
    """One table per message, nested tables shared, a ``finish`` hook per message."""
    messages = {
        "Outer": (Field("inner", 1, "msg", "Inner"), Field("n", 2, "uint32")),
        "Inner": (Field("s", 1, "string", label="repeated"),),
    }
    tables = build_tables(messages, {"Inner": lambda d: tuple(d.get("s", ()))})
    assert decode_object(tables["Outer"], {"INNER": {"S": ["x", None]}, "n": 7}) == {
        "inner": ("x", ""),
        "n": 7,
    }
    with pytest.raises(DecodeError):
        decode_object(tables["Outer"], [])


BIG = b"9" * 5000


@pytest.mark.parametrize("walk", WALKS)
@pytest.mark.parametrize(
    "data",
    [BIG, b"-" + BIG, b"1e999999", b"-1e999999", b'{"n":[1e400,' + BIG + b"]}", b'"\\ud800x"'],
)
def test_numbers_python_cannot_hold_pass_as_written(walk: Any, data: bytes) -> None:
    """Centrifugo 6.9.1 delivers such data unchanged; relay keeps the number's text."""
    assert walk(b'{"channel":"c","data":' + data + b"}")["data"] == data


@pytest.mark.parametrize("text", [b"NaN", b"Infinity", b"-Infinity", b"[1,]", b"01"])
def test_not_json_is_refused(text: bytes) -> None:
    with pytest.raises(DecodeError):
        client_publish(b'{"channel":"c","data":' + text + b"}")
    with pytest.raises(ValueError):
        loads(text.decode())


def test_a_big_number_is_no_integer_field() -> None:
    with pytest.raises(DecodeError):
        decode_request("history", {"channel": "c", "limit": loads(BIG.decode())})
    with pytest.raises(DecodeError):
        json_codec.decode_command(b'{"id":' + BIG + b"}")


def test_invalid_utf8_is_replaced() -> None:
    """Go reads invalid UTF-8 in a string as U+FFFD; the channel is then refused (107)."""
    command = json_codec.decode_command(b'{"id":1,"publish":{"channel":"\xff\xfe","data":1}}')
    assert command["publish"]["channel"] == "\ufffd\ufffd"


def test_is_json_takes_what_go_takes() -> None:
    assert json_codec.is_json(b'{"n":1e999999}') and json_codec.is_json(BIG)
    assert not json_codec.is_json(b"NaN") and not json_codec.is_json(b"\xff")
