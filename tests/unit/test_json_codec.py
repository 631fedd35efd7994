"""JSON codec: spec §1.3 framing, §2 encoding rules, §8 transcript shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.errors import DecodeError
from relay.protocol import json_codec as jc
from relay.protocol.codecs import JSON, PROTOBUF


def commands(frame: bytes) -> list[dict[str, Any]]:
    return list(jc.iter_commands(frame))


# ---- decoding ---------------------------------------------------------------------------


def test_js_connect_and_subscribe_in_one_frame() -> None:
    frame = (
        b'{"connect":{"token":"eyJ","name":"js"},"id":1}\n'
        b'{"subscribe":{"channel":"chat:room1","recoverable":true,"positioned":true,'
        b'"join_leave":true,"flag":1},"id":2}'
    )
    assert commands(frame) == [
        {"connect": {"token": "eyJ", "name": "js"}, "id": 1},
        {
            "subscribe": {
                "channel": "chat:room1",
                "recoverable": True,
                "positioned": True,
                "join_leave": True,
                "flag": 1,
            },
            "id": 2,
        },
    ]


def test_python_sdk_whitespace_and_zero_values() -> None:
    frame = b'{"id": 3, "history": {"channel": "c", "limit": 0, "reverse": false}}\n'
    assert commands(frame) == [{"id": 3, "history": {"channel": "c"}}]


def test_data_becomes_compact_raw_json() -> None:
    frame = b'{"id":6,"publish":{"channel":"c","data":{ "text" : "h\\u00e9llo", "n": [1, 2.5] }}}'
    assert commands(frame)[0]["publish"]["data"] == '{"text":"héllo","n":[1,2.5]}'.encode()
    frame = b'{"id":6,"publish":{"channel":"c","data":"hello"}}'
    assert commands(frame)[0]["publish"]["data"] == b'"hello"'
    frame = b'{"id":6,"publish":{"channel":"c","data":0}}'
    assert commands(frame)[0]["publish"]["data"] == b"0"


def test_unknown_and_null_fields_dropped() -> None:
    frame = b'{"id":1,"foo":{"bar":1},"connect":{"token":null,"zzz":[1]},"rpc":null}'
    assert commands(frame) == [{"id": 1, "connect": {}}]


def test_pong_and_send() -> None:
    assert commands(b"{}") == [{}]
    assert commands(b'{"send":{"data":{"a":1}}}') == [{"send": {"data": b'{"a":1}'}}]


def test_nested_maps_lists_and_filters() -> None:
    frame = json.dumps(
        {
            "id": 1,
            "connect": {
                "subs": {"#42": {"recover": True, "epoch": "E", "offset": 3}, "x": {}},
                "headers": {"a": "b", "empty": ""},
            },
        }
    ).encode()
    assert commands(frame)[0]["connect"] == {
        "subs": {"#42": {"recover": True, "epoch": "E", "offset": 3}, "x": {}},
        "headers": {"a": "b", "empty": ""},
    }
    frame = (
        b'{"id":2,"subscribe":{"channel":"c","tf":{"op":"and","nodes":[{"key":"k","vals":["1"]}]}}}'
    )
    tf = commands(frame)[0]["subscribe"]["tf"]
    assert tf == {"op": "and", "nodes": [{"key": "k", "vals": ["1"]}]}


def test_integer_ranges_accepted() -> None:
    frame = (
        b'{"id":4294967295,"subscribe":{"offset":18446744073709551615,"flag":-9223372036854775808}}'
    )
    cmd = commands(frame)[0]
    assert cmd["id"] == 2**32 - 1
    assert cmd["subscribe"] == {"offset": 2**64 - 1, "flag": -(2**63)}


def test_trailing_newline_and_blank_lines() -> None:
    assert commands(b'{"id":1,"ping":{}}\n') == [{"id": 1, "ping": {}}]
    assert commands(b'{"id":1}\n\n  \n{"id":2}\n') == [{"id": 1}, {"id": 2}]


def test_lazy_decoding_yields_before_failing() -> None:
    it = jc.iter_commands(b'{"id":1,"publish":{"channel":"a"}}\n{"id":"2"}')
    assert next(it) == {"id": 1, "publish": {"channel": "a"}}
    with pytest.raises(DecodeError):
        next(it)


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\n",
        b"  \n \n",
        b'{"id":-1}',
        b'{"id":4294967296}',
        b'{"id":"1"}',
        b'{"id":1e3}',
        b'{"id":1.0}',
        b'{"id":true}',
        b'{"id":1,"subscribe":{"offset":18446744073709551616}}',
        b'{"id":1,"subscribe":{"offset":-1}}',
        b'{"id":1,"subscribe":{"type":2147483648}}',
        b'{"id":1,"history":{"limit":-2147483649}}',
        b'{"id":1,"subscribe":{"channel":5}}',
        b'{"id":1,"subscribe":{"recover":1}}',
        b'{"id":1,"subscribe":[]}',
        b'{"id":1,"subscribe":"x"}',
        b'{"id":1,"connect":{"subs":[]}}',
        b'{"id":1,"connect":{"subs":{"a":1}}}',
        b'{"id":1,"connect":{"headers":{"a":1}}}',
        b'{"id":1,"subscribe":{"tf":{"vals":"x"}}}',
        b'{"id":1,"subscribe":{"tf":{"nodes":[1]}}}',
        b'{"id":1,"publish":{"data":NaN}}',
        b'{"id":1,"publish":{"data":Infinity}}',
        b'{"id":1,"publish":{"data":-Infinity}}',
        b"[" * 100_000,
        b'{"id":1,"publish":{"data":' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
        b"\xc3\x28",
        b"[]",
        b'"id"',
        b"1",
        b"null",
        b"{",
        b'{"id":1}{"id":2}',
        b'{"id":1}\n[1]',
    ],
)
def test_decode_errors(frame: bytes) -> None:
    with pytest.raises(DecodeError):
        commands(frame)


@given(st.binary(max_size=200))
def test_decoding_is_total(frame: bytes) -> None:
    try:
        for cmd in jc.iter_commands(frame):
            assert isinstance(cmd, dict)
    except DecodeError:
        pass


# ---- encoding ---------------------------------------------------------------------------

TRANSCRIPT = [
    (
        {
            "id": 1,
            "connect": {
                "client": "3b2f",
                "version": "6.9.1 OSS",
                "expires": True,
                "ttl": 3600,
                "ping": 25,
                "pong": True,
            },
        },
        b'{"id":1,"connect":{"client":"3b2f","version":"6.9.1 OSS","expires":true,'
        b'"ttl":3600,"ping":25,"pong":true}}',
    ),
    (
        {
            "id": 2,
            "subscribe": {"recoverable": True, "epoch": "QhXk", "offset": 7, "positioned": True},
        },
        b'{"id":2,"subscribe":{"recoverable":true,"epoch":"QhXk","offset":7,"positioned":true}}',
    ),
    (
        {"push": {"channel": "chat:room1", "join": {"info": {"user": "42", "client": "3b2f"}}}},
        b'{"push":{"channel":"chat:room1","join":{"info":{"user":"42","client":"3b2f"}}}}',
    ),
    (
        {
            "id": 3,
            "history": {
                "publications": [
                    {"data": b'{"text":"six"}', "offset": 6},
                    {
                        "data": b'{"text":"seven"}',
                        "info": {"user": "7", "client": "9c"},
                        "offset": 7,
                    },
                ],
                "epoch": "QhXk",
                "offset": 7,
            },
        },
        b'{"id":3,"history":{"publications":[{"data":{"text":"six"},"offset":6},'
        b'{"data":{"text":"seven"},"info":{"user":"7","client":"9c"},"offset":7}],'
        b'"epoch":"QhXk","offset":7}}',
    ),
    (
        {"id": 4, "presence": {"presence": {"3b2f": {"user": "42", "client": "3b2f"}}}},
        b'{"id":4,"presence":{"presence":{"3b2f":{"user":"42","client":"3b2f"}}}}',
    ),
    (
        {"id": 5, "presence_stats": {"num_clients": 1, "num_users": 1}},
        b'{"id":5,"presence_stats":{"num_clients":1,"num_users":1}}',
    ),
    ({"id": 6, "publish": {}}, b'{"id":6,"publish":{}}'),
    (
        {
            "push": {
                "channel": "chat:room1",
                "pub": {
                    "data": b'{"text":"hello"}',
                    "info": {"user": "42", "client": "3b2f"},
                    "offset": 8,
                },
            }
        },
        b'{"push":{"channel":"chat:room1","pub":{"data":{"text":"hello"},'
        b'"info":{"user":"42","client":"3b2f"},"offset":8}}}',
    ),
    ({}, b"{}"),
    (
        {"id": 7, "error": {"code": 103, "message": "permission denied"}},
        b'{"id":7,"error":{"code":103,"message":"permission denied"}}',
    ),
    (
        {"id": 11, "refresh": {"expires": True, "ttl": 3600}},
        b'{"id":11,"refresh":{"expires":true,"ttl":3600}}',
    ),
    ({"id": 12, "unsubscribe": {}}, b'{"id":12,"unsubscribe":{}}'),
    (
        {
            "push": {
                "channel": "chat:other",
                "unsubscribe": {"code": 2000, "reason": "server unsubscribe"},
            }
        },
        b'{"push":{"channel":"chat:other","unsubscribe":'
        b'{"code":2000,"reason":"server unsubscribe"}}}',
    ),
]


@pytest.mark.parametrize(("reply", "expected"), TRANSCRIPT)
def test_transcript_shapes(reply: dict[str, Any], expected: bytes) -> None:
    assert jc.encode_reply(reply) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ({"id": 3, "history": {}}, b'{"id":3,"history":{"publications":[],"epoch":"","offset":0}}'),
        ({"id": 4, "presence": {}}, b'{"id":4,"presence":{"presence":{}}}'),
        (
            {"id": 5, "presence_stats": {}},
            b'{"id":5,"presence_stats":{"num_clients":0,"num_users":0}}',
        ),
        (
            {"push": {"channel": "c", "join": {"info": {}}}},
            b'{"push":{"channel":"c","join":{"info":{"user":"","client":""}}}}',
        ),
        (
            {"push": {"channel": "c", "leave": {"info": {"client": "x", "user": ""}}}},
            b'{"push":{"channel":"c","leave":{"info":{"user":"","client":"x"}}}}',
        ),
        ({"id": 7, "rpc": {}}, b'{"id":7,"rpc":{}}'),
        ({"id": 8, "sub_refresh": {}}, b'{"id":8,"sub_refresh":{}}'),
    ],
)
def test_always_written_fields(reply: dict[str, Any], expected: bytes) -> None:
    assert jc.encode_reply(reply) == expected


def test_zero_values_and_none_omitted() -> None:
    reply = {
        "id": 0,
        "error": None,
        "subscribe": {
            "expires": False,
            "ttl": 0,
            "epoch": "",
            "publications": [],
            "data": b"",
            "offset": None,
        },
    }
    assert jc.encode_reply(reply) == b'{"subscribe":{}}'


def test_field_order_is_schema_order() -> None:
    reply = {"connect": {"pong": True, "ping": 25, "client": "c"}, "id": 9}
    assert jc.encode_reply(reply) == b'{"id":9,"connect":{"client":"c","ping":25,"pong":true}}'


def test_connect_subs_map_and_tags() -> None:
    reply = {
        "id": 1,
        "connect": {
            "client": "c",
            "subs": {
                "#42": {"recoverable": True, "publications": [{"data": b'{"n":4}', "offset": 4}]}
            },
        },
        "push": None,
    }
    assert jc.encode_reply(reply) == (
        b'{"id":1,"connect":{"client":"c","subs":{"#42":{"recoverable":true,'
        b'"publications":[{"data":{"n":4},"offset":4}]}}}}'
    )
    pub = {"push": {"channel": "c", "pub": {"data": b"1", "tags": {"k": "v", "e": ""}}}}
    assert (
        jc.encode_reply(pub) == b'{"push":{"channel":"c","pub":{"data":1,"tags":{"k":"v","e":""}}}}'
    )


def test_strings_are_escaped_without_raw_newlines() -> None:
    reply = {"id": 1, "error": {"code": 100, "message": 'line\nbreak "q" \\ é \u2028 \x00'}}
    out = jc.encode_reply(reply)
    assert b"\n" not in out
    assert json.loads(out)["error"]["message"] == 'line\nbreak "q" \\ é \u2028 \x00'
    assert "é".encode() in out


def test_unknown_reply_field_is_a_bug() -> None:
    with pytest.raises(ValueError):
        jc.encode_reply({"id": 1, "bogus": {}})
    with pytest.raises(ValueError):
        jc.encode_reply({"id": 1, "history": {"bogus": 1}})


def test_join_frame_and_codec_objects() -> None:
    assert jc.join_frame([b"{}", b'{"id":1}']) == b'{}\n{"id":1}'
    assert jc.BINARY is False
    assert (JSON.name, JSON.binary, PROTOBUF.name, PROTOBUF.binary) == (
        "json",
        False,
        "protobuf",
        True,
    )
    assert JSON.encode_reply is jc.encode_reply
    assert list(JSON.iter_commands(b"{}")) == [{}]


def test_is_json_and_compact_json() -> None:
    assert jc.is_json(b' {"a": [1, 2]} ')
    assert jc.is_json(b'"x"')
    assert not jc.is_json(b"{")
    assert not jc.is_json(b"NaN")
    assert not jc.is_json(b"\xff")
    assert jc.compact_json(b'{ "a" : [1, 2],\n "b": "\xc3\xa9" }') == '{"a":[1,2],"b":"é"}'.encode()
    with pytest.raises(DecodeError):
        jc.compact_json(b"not json")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=10,
)


@given(json_values, st.text(), st.integers(1, 2**32 - 1))
def test_publish_round_trip(data: Any, channel: str, cmd_id: int) -> None:
    frame = json.dumps({"id": cmd_id, "publish": {"channel": channel, "data": data}}).encode()
    (cmd,) = commands(frame)
    raw = cmd["publish"]["data"]
    assert json.loads(raw) == data  # null is the literal null, as Go's RawMessage keeps it
    decoded_channel = cmd["publish"].get("channel", "")
    # a lone surrogate in a string is U+FFFD, everything else comes through as sent
    assert decoded_channel == "".join(
        "\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in channel
    )
    reply = {"push": {"channel": decoded_channel, "pub": {"data": raw}}}
    out = jc.encode_reply(reply)
    assert b"\n" not in out
    decoded = json.loads(out)
    assert decoded["push"]["pub"]["data"] == data
    assert decoded["push"].get("channel", "") == decoded_channel
