"""Protobuf codec: parity with the real protobuf library (centrifuge-python's client_pb2)."""

from __future__ import annotations

from typing import Any

import pytest
from centrifuge.protocol import client_pb2 as pb
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.errors import DecodeError
from relay.fastpath import encode_varint, join_delimited
from relay.protocol import protobuf_codec as pc
from relay.protocol.codecs import PROTOBUF
from relay.protocol.schema import MESSAGES, Field

# ---- client_pb2 Command -> relay ---------------------------------------------------------

COMMANDS: list[tuple[Any, dict[str, Any]]] = [
    (
        pb.Command(
            id=1,
            connect=pb.ConnectRequest(
                token="t",
                data=b"\x00\xff",
                subs={
                    "#42": pb.SubscribeRequest(recover=True, epoch="E", offset=3),
                    "x": pb.SubscribeRequest(),
                },
                name="csharp",
                version="1.0",
                headers={"a": "b", "empty": ""},
            ),
        ),
        {
            "id": 1,
            "connect": {
                "token": "t",
                "data": b"\x00\xff",
                "subs": {"#42": {"recover": True, "epoch": "E", "offset": 3}, "x": {}},
                "name": "csharp",
                "version": "1.0",
                "headers": {"a": "b", "empty": ""},
            },
        },
    ),
    (
        pb.Command(
            id=2,
            subscribe=pb.SubscribeRequest(
                channel="chat:é",
                token="tok",
                recover=True,
                epoch="E",
                offset=2**64 - 1,
                data=b"d",
                positioned=True,
                recoverable=True,
                join_leave=True,
                delta="fossil",
                tf=pb.FilterNode(
                    op="and", nodes=[pb.FilterNode(key="k", cmp="eq", val="v", vals=["1", ""])]
                ),
                flag=-5,
            ),
        ),
        {
            "id": 2,
            "subscribe": {
                "channel": "chat:é",
                "token": "tok",
                "recover": True,
                "epoch": "E",
                "offset": 2**64 - 1,
                "data": b"d",
                "positioned": True,
                "recoverable": True,
                "join_leave": True,
                "delta": "fossil",
                "tf": {
                    "op": "and",
                    "nodes": [{"key": "k", "cmp": "eq", "val": "v", "vals": ["1", ""]}],
                },
                "flag": -5,
            },
        },
    ),
    (
        pb.Command(id=3, unsubscribe=pb.UnsubscribeRequest(channel="c")),
        {"id": 3, "unsubscribe": {"channel": "c"}},
    ),
    (
        pb.Command(id=4, publish=pb.PublishRequest(channel="c", data=b"\x01\x02")),
        {"id": 4, "publish": {"channel": "c", "data": b"\x01\x02"}},
    ),
    (
        pb.Command(id=5, presence=pb.PresenceRequest(channel="c")),
        {"id": 5, "presence": {"channel": "c"}},
    ),
    (
        pb.Command(id=6, presence_stats=pb.PresenceStatsRequest(channel="c")),
        {"id": 6, "presence_stats": {"channel": "c"}},
    ),
    (
        pb.Command(
            id=7,
            history=pb.HistoryRequest(
                channel="c", limit=-1, since=pb.StreamPosition(offset=5, epoch="E"), reverse=True
            ),
        ),
        {
            "id": 7,
            "history": {
                "channel": "c",
                "limit": -1,
                "since": {"offset": 5, "epoch": "E"},
                "reverse": True,
            },
        },
    ),
    (pb.Command(id=8, ping=pb.PingRequest()), {"id": 8, "ping": {}}),
    (pb.Command(send=pb.SendRequest(data=b"s")), {"send": {"data": b"s"}}),
    (
        pb.Command(id=9, rpc=pb.RPCRequest(data=b"r", method="m")),
        {"id": 9, "rpc": {"data": b"r", "method": "m"}},
    ),
    (
        pb.Command(id=10, refresh=pb.RefreshRequest(token="t")),
        {"id": 10, "refresh": {"token": "t"}},
    ),
    (
        pb.Command(id=2**32 - 1, sub_refresh=pb.SubRefreshRequest(channel="c", token="t")),
        {"id": 2**32 - 1, "sub_refresh": {"channel": "c", "token": "t"}},
    ),
    (pb.Command(id=11, publish=pb.PublishRequest()), {"id": 11, "publish": {}}),
    (pb.Command(), {}),
]


@pytest.mark.parametrize(("command", "expected"), COMMANDS)
def test_decode_client_pb2_commands(command: Any, expected: dict[str, Any]) -> None:
    raw = command.SerializeToString()
    assert pc.decode_message("Command", raw) == expected
    assert list(pc.iter_commands(join_delimited([raw]))) == [expected]
    assert pc.encode_message("Command", expected) == command.SerializeToString(deterministic=True)


def test_frame_with_many_commands_and_pong() -> None:
    raws = [c.SerializeToString() for c, _ in COMMANDS]
    assert list(pc.iter_commands(join_delimited(raws))) == [e for _, e in COMMANDS]
    assert list(pc.iter_commands(b"\x00")) == [{}]


def test_lazy_decoding_yields_before_failing() -> None:
    good = pb.Command(id=1, publish=pb.PublishRequest(channel="a")).SerializeToString()
    it = pc.iter_commands(join_delimited([good]) + b"\x05\x08")
    assert next(it) == {"id": 1, "publish": {"channel": "a"}}
    with pytest.raises(DecodeError):
        next(it)


# ---- relay Reply -> client_pb2 -----------------------------------------------------------


def test_empty_results_are_encoded() -> None:
    for method in (
        "publish",
        "unsubscribe",
        "rpc",
        "sub_refresh",
        "refresh",
        "presence",
        "history",
    ):
        raw = pc.encode_reply({"id": 5, method: {}})
        parsed = pb.Reply.FromString(raw)
        assert parsed.id == 5 and parsed.HasField(method), method
    assert pc.encode_reply({"id": 5, "publish": {}}) == b"\x08\x05\x42\x00"
    assert pc.encode_reply({}) == b""
    assert pc.join_frame([pc.encode_reply({})]) == b"\x00"


def test_push_with_empty_info_keeps_info() -> None:
    raw = pc.encode_reply({"push": {"channel": "c", "join": {"info": {}}}})
    parsed = pb.Reply.FromString(raw)
    assert parsed.push.join.HasField("info")


REPLIES: list[tuple[dict[str, Any], Any]] = [
    (
        {
            "id": 1,
            "connect": {
                "client": "c",
                "version": "6 OSS",
                "expires": True,
                "ttl": 3600,
                "ping": 25,
                "pong": True,
            },
        },
        pb.Reply(
            id=1,
            connect=pb.ConnectResult(
                client="c", version="6 OSS", expires=True, ttl=3600, ping=25, pong=True
            ),
        ),
    ),
    (
        {
            "push": {
                "channel": "chat",
                "pub": {
                    "data": b"\x00bin",
                    "info": {"user": "u", "client": "c", "conn_info": b"{}"},
                    "offset": 8,
                    "tags": {"k": "v"},
                },
            }
        },
        pb.Reply(
            push=pb.Push(
                channel="chat",
                pub=pb.Publication(
                    data=b"\x00bin",
                    info=pb.ClientInfo(user="u", client="c", conn_info=b"{}"),
                    offset=8,
                    tags={"k": "v"},
                ),
            )
        ),
    ),
    (
        {
            "id": 3,
            "history": {
                "publications": [{"data": b"a", "offset": 1}, {}],
                "epoch": "E",
                "offset": 2**64 - 1,
            },
        },
        pb.Reply(
            id=3,
            history=pb.HistoryResult(
                publications=[pb.Publication(data=b"a", offset=1), pb.Publication()],
                epoch="E",
                offset=2**64 - 1,
            ),
        ),
    ),
    (
        {"id": 4, "presence": {"presence": {"c1": {"user": "u", "client": "c1"}, "c2": {}}}},
        pb.Reply(
            id=4,
            presence=pb.PresenceResult(
                presence={"c1": pb.ClientInfo(user="u", client="c1"), "c2": pb.ClientInfo()}
            ),
        ),
    ),
    (
        {"id": 6, "error": {"code": 103, "message": "permission denied", "temporary": True}},
        pb.Reply(id=6, error=pb.Error(code=103, message="permission denied", temporary=True)),
    ),
    (
        {
            "push": {
                "channel": "c",
                "disconnect": {"code": 3503, "reason": "force disconnect"},
                "id": -3,
            }
        },
        pb.Reply(
            push=pb.Push(
                id=-3, channel="c", disconnect=pb.Disconnect(code=3503, reason="force disconnect")
            )
        ),
    ),
    (
        {
            "id": 2,
            "subscribe": {
                "recoverable": True,
                "epoch": "E",
                "offset": 7,
                "positioned": True,
                "was_recovering": True,
                "recovered": True,
                "publications": [{"data": b"x", "offset": 7}],
            },
        },
        pb.Reply(
            id=2,
            subscribe=pb.SubscribeResult(
                recoverable=True,
                epoch="E",
                offset=7,
                positioned=True,
                was_recovering=True,
                recovered=True,
                publications=[pb.Publication(data=b"x", offset=7)],
            ),
        ),
    ),
]


@pytest.mark.parametrize(("reply", "expected"), REPLIES)
def test_encode_reply_parses_with_client_pb2(reply: dict[str, Any], expected: Any) -> None:
    raw = pc.encode_reply(reply)
    assert pb.Reply.FromString(raw) == expected
    assert pc.decode_message("Reply", raw) == reply


def test_field_order_is_canonical() -> None:
    a = pc.encode_reply({"connect": {"pong": True, "client": "c"}, "id": 1})
    assert a == pb.Reply(id=1, connect=pb.ConnectResult(client="c", pong=True)).SerializeToString()


def test_unknown_reply_field_is_a_bug() -> None:
    with pytest.raises(ValueError):
        pc.encode_reply({"bogus": 1})


def test_codec_object() -> None:
    assert PROTOBUF.binary is True and pc.BINARY is True
    assert PROTOBUF.join_frame([b"ab", b""]) == b"\x02ab\x00"


# ---- decoding edge cases -----------------------------------------------------------------


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    unknown = (
        b"\xa0\x06\x96\x01"  # field 100 varint
        b"\xa1\x06"
        + b"\x00" * 8  # field 100 fixed64
        + b"\xa2\x06\x03abc"  # field 100 len
        + b"\xa5\x06"
        + b"\x00" * 4  # field 100 fixed32
        + b"\xa3\x06\x08\x01\xab\x06\xac\x06\xa4\x06"  # group 100 { f1; group 101 {} }
        + b"\x10\x05\x18\x01"  # reserved fields 2, 3
    )
    raw = b"\x08\x07" + unknown + b"\x3a\x03\x0a\x01c"
    assert pc.decode_message("Command", raw) == {"id": 7, "publish": {"channel": "c"}}


def test_zero_values_on_the_wire_and_merging() -> None:
    # id written twice (last wins, zero removes), publish sent in two parts (merged).
    raw = b"\x08\x07\x08\x00\x3a\x03\x0a\x01c\x3a\x03\x12\x01d"
    assert pc.decode_message("Command", raw) == {"publish": {"channel": "c", "data": b"d"}}


def test_integer_wrapping_like_protobuf() -> None:
    raw = pb.Command(history=pb.HistoryRequest(limit=-1)).SerializeToString()
    assert pc.decode_message("Command", raw) == {"history": {"limit": -1}}
    big_id = b"\x08" + b"\xff" * 9 + b"\x01"  # 2**64-1 into a uint32: truncated
    assert pc.decode_message("Command", big_id) == {"id": 2**32 - 1}


def test_map_entry_without_key_or_value() -> None:
    raw = b"\x22\x04\x32\x02\x12\x00"  # connect { headers { value: "" } }
    assert pc.decode_message("Command", raw) == {"connect": {"headers": {"": ""}}}


def test_zigzag_helpers() -> None:
    for v in (0, -1, 1, 12345, -(2**63), 2**63 - 1):
        assert pc._to_sint64(pc._zigzag(v)) == v
    assert pc._zigzag(-1) == 1 and pc._zigzag(1) == 2


@pytest.mark.parametrize(
    "raw",
    [
        b"\x08",  # truncated varint
        b"\x08" + b"\xff" * 10 + b"\x01",  # 11-byte varint
        b"\x3a\x05\x0a\x01",  # length beyond buffer
        b"\x3a\x03\x0a\x05c",  # nested length beyond its message
        b"\x3a",  # tag only
        b"\x0a\x01x",  # id with wire type 2
        b"\x3a\x01",  # truncated nested length
        b"\x38\x01",  # publish with wire type 0
        b"\x00\x01",  # field number 0
        b"\xa6\x06",  # wire type 6
        b"\xa7\x06",  # wire type 7
        b"\xa4\x06",  # unexpected end group
        b"\xa3\x06\x08\x01",  # unterminated group
        b"\xa3\x06\xac\x06",  # mismatched end group
        b"\xa1\x06\x00",  # truncated fixed64
        b"\xa5\x06\x00",  # truncated fixed32
        b"\x22\x04\x32\x02\x0a\x05",  # broken map entry
    ],
)
def test_decode_errors(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        pc.decode_message("Command", raw)


@pytest.mark.parametrize(
    ("raw", "channel"),
    [(b"\x3a\x03\x0a\x01\xff", "\ufffd"), (b"\x3a\x04\x0a\x02\xed\xa0", "\ufffd\ufffd")],
)
def test_invalid_utf8_in_a_string_is_replaced(raw: bytes, channel: str) -> None:
    """As Centrifugo decodes it: the command stands, its channel is then refused (107)."""
    assert pc.decode_message("Command", raw) == {"publish": {"channel": channel}}


@pytest.mark.parametrize("frame", [b"", b"\x05abc", b"\x80", b"\xff" * 11])
def test_frame_errors(frame: bytes) -> None:
    with pytest.raises(DecodeError):
        list(pc.iter_commands(frame))


def test_deep_nesting_is_a_decode_error() -> None:
    node = b""
    for _ in range(3000):  # FilterNode.nodes nested 3000 deep
        node = b"\x32" + encode_varint(len(node)) + node
    tf = b"\x6a" + encode_varint(len(node)) + node
    with pytest.raises(DecodeError):
        pc.decode_message("Command", b"\x2a" + encode_varint(len(tf)) + tf)


@given(st.binary(max_size=120))
@settings(max_examples=300)
def test_decoding_is_total(data: bytes) -> None:
    try:
        list(pc.iter_commands(data))
    except DecodeError:
        pass
    try:
        pc.decode_message("Reply", data)
    except DecodeError:
        pass


# ---- schema-driven round trips against the real library ----------------------------------

_INTS = {
    "uint32": st.integers(0, 2**32 - 1),
    "int32": st.integers(-(2**31), 2**31 - 1),
    "uint64": st.integers(0, 2**64 - 1),
    "int64": st.integers(-(2**63), 2**63 - 1),
    "sint64": st.integers(-(2**63), 2**63 - 1),
}


def _scalar(kind: str) -> st.SearchStrategy[Any]:
    if kind == "string":
        return st.text(max_size=8)
    if kind == "bytes":
        return st.binary(max_size=8)
    if kind == "bool":
        return st.booleans()
    return _INTS[kind]


def _field(f: Field, depth: int) -> st.SearchStrategy[Any]:
    item = message(f.ref, depth + 1) if f.kind == "msg" else _scalar(f.kind)
    if f.label == "repeated":
        return st.lists(item, max_size=2)
    if f.label == "map":
        return st.dictionaries(st.text(max_size=4), item, max_size=2)
    return item


def message(name: str, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts for schema message ``name`` in normalized form (no zero scalars)."""
    fields = [f for f in MESSAGES[name] if depth < 3 or f.kind != "msg"]
    return st.fixed_dictionaries({}, optional={f.name: _field(f, depth) for f in fields}).map(
        _normalize_top(name)
    )


def _normalize_top(name: str) -> Any:
    kinds = {f.name: (f.kind, f.label) for f in MESSAGES[name]}

    def normalize(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if v or kinds[k] == ("msg", "")}

    return normalize


@given(message("Reply"))
@settings(max_examples=200, deadline=None)
def test_reply_round_trip_through_client_pb2(reply: dict[str, Any]) -> None:
    raw = pc.encode_reply(reply)
    parsed = pb.Reply.FromString(raw)
    assert pc.decode_message("Reply", parsed.SerializeToString()) == reply
    assert pc.decode_message("Reply", raw) == reply


@given(message("Command"))
@settings(max_examples=200, deadline=None)
def test_command_round_trip_through_client_pb2(command: dict[str, Any]) -> None:
    raw = pb.Command.FromString(pc.encode_message("Command", command)).SerializeToString()
    assert list(pc.iter_commands(join_delimited([raw]))) == [command]
