"""Protobuf codec of the client protocol (spec §1.4, §9), hand-written wire format.

No protobuf library at runtime: generic walkers over ``schema.MESSAGES`` with per-message
tables built once at import. Frames are varint-length-delimited messages; client
``Command``s in, server ``Reply``s out. Present nested messages are always encoded (tag +
zero length) because protobufjs and C# tell an empty result from a missing one.

Decoding is total over arbitrary bytes: anything malformed raises ``DecodeError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from relay.errors import DecodeError
from relay.fastpath import encode_varint, join_delimited
from relay.protocol.schema import MESSAGES, Field

__all__ = [
    "BINARY",
    "iter_commands",
    "encode_reply",
    "join_frame",
    "decode_message",
    "encode_message",
]

BINARY = True

_MASK32 = 0xFFFF_FFFF
_MASK64 = 0xFFFF_FFFF_FFFF_FFFF
_VARINT, _FIXED64, _LEN, _START_GROUP, _END_GROUP, _FIXED32 = 0, 1, 2, 3, 4, 5
_NUMERIC = frozenset({"bool", "uint32", "int32", "uint64", "int64", "sint64"})

# ---- wire primitives --------------------------------------------------------------------


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read one varint (at most 10 bytes); return ``(value, new_pos)``."""
    if pos >= end:
        raise DecodeError("truncated varint")
    b = data[pos]
    if b < 0x80:
        return b, pos + 1
    value = b & 0x7F
    shift = 7
    pos += 1
    while True:
        if pos >= end:
            raise DecodeError("truncated varint")
        if shift >= 70:
            raise DecodeError("varint too long")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _read_length(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read a length prefix and check that the bytes it announces are there."""
    n, pos = _read_varint(data, pos, end)
    if n > end - pos:
        raise DecodeError("truncated length-delimited field")
    return n, pos


def _skip_field(data: bytes, pos: int, end: int, wire: int) -> int:
    """Skip one non-group field value of an unknown field."""
    if wire == _VARINT:
        return _read_varint(data, pos, end)[1]
    if wire == _LEN:
        n, pos = _read_length(data, pos, end)
        return pos + n
    size = 8 if wire == _FIXED64 else 4 if wire == _FIXED32 else -1
    if size < 0:
        raise DecodeError(f"invalid wire type {wire}")
    if end - pos < size:
        raise DecodeError("truncated fixed-size field")
    return pos + size


def _skip_group(data: bytes, pos: int, end: int, number: int) -> int:
    """Skip a (deprecated) group up to its matching end tag, iteratively."""
    open_groups = [number]
    while open_groups:
        key, pos = _read_varint(data, pos, end)
        wire = key & 7
        if wire == _END_GROUP:
            if key >> 3 != open_groups.pop():
                raise DecodeError("mismatched end group")
        elif wire == _START_GROUP:
            open_groups.append(key >> 3)
        else:
            pos = _skip_field(data, pos, end, wire)
    return pos


# ---- scalar conversions -----------------------------------------------------------------


def _to_int32(v: int) -> int:
    v &= _MASK32
    return v - (1 << 32) if v >> 31 else v


def _to_int64(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v >> 63 else v


def _to_sint64(v: int) -> int:
    v &= _MASK64
    return (v >> 1) ^ -(v & 1)


_FROM_VARINT: dict[str, Callable[[int], Any]] = {
    "bool": bool,
    "uint32": lambda v: v & _MASK32,
    "uint64": lambda v: v & _MASK64,
    "int32": _to_int32,
    "int64": _to_int64,
    "sint64": _to_sint64,
}


def _zigzag(v: int) -> int:
    return ((v << 1) ^ (v >> 63)) & _MASK64


_TO_VARINT: dict[str, Callable[[int], int]] = {
    "bool": int,
    "uint32": int,
    "uint64": int,
    "int32": lambda v: v & _MASK64,
    "int64": lambda v: v & _MASK64,
    "sint64": _zigzag,
}

# ---- decoding ---------------------------------------------------------------------------

# A reader turns the value at ``pos`` (after the tag) into a Python value and a new pos.
Reader = Callable[[bytes, int, int], tuple[Any, int]]
_SINGLE, _MESSAGE, _REPEATED, _MAP = 0, 1, 2, 3


class _DecField(NamedTuple):
    name: str
    wire: int
    mode: int
    read: Reader
    table: dict[int, _DecField] | None  # for singular nested messages


DecodeTable = dict[int, _DecField]


def _read_string(data: bytes, pos: int, end: int) -> tuple[str, int]:
    """A string field; invalid UTF-8 is U+FFFD, as Go's protobuf reads it into a string."""
    n, pos = _read_length(data, pos, end)
    return data[pos : pos + n].decode("utf-8", errors="replace"), pos + n


def _read_bytes(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    n, pos = _read_length(data, pos, end)
    return data[pos : pos + n], pos + n


def _varint_reader(kind: str) -> Reader:
    convert = _FROM_VARINT[kind]

    def read(data: bytes, pos: int, end: int) -> tuple[Any, int]:
        v, pos = _read_varint(data, pos, end)
        return convert(v), pos

    return read


def _message_reader(table: DecodeTable) -> Reader:
    def read(data: bytes, pos: int, end: int) -> tuple[dict[str, Any], int]:
        n, pos = _read_length(data, pos, end)
        out: dict[str, Any] = {}
        _decode_into(table, data, pos, pos + n, out)
        return out, pos + n

    return read


def _scalar_reader(kind: str, ref: str, tables: dict[str, DecodeTable]) -> Reader:
    if kind == "msg":
        return _message_reader(tables[ref])
    if kind == "string":
        return _read_string
    if kind == "bytes":
        return _read_bytes
    return _varint_reader(kind)


def _zero_of(kind: str) -> Any:
    return {"msg": {}, "string": "", "bytes": b"", "bool": False}.get(kind, 0)


def _map_entry_reader(field: Field, tables: dict[str, DecodeTable]) -> Reader:
    """Read one map entry message (key = field 1, value = field 2) as a pair."""
    entry: DecodeTable = {
        1: _DecField("key", _LEN, _SINGLE, _read_string, None),
        2: _make_dec_field(field._replace(name="value", number=2, label=""), tables),
    }
    value_kind = field.kind

    def read(data: bytes, pos: int, end: int) -> tuple[tuple[str, Any], int]:
        n, pos = _read_length(data, pos, end)
        out: dict[str, Any] = {}
        _decode_into(entry, data, pos, pos + n, out)
        return (out.get("key", ""), out.get("value", _zero_of(value_kind))), pos + n

    return read


def _make_dec_field(f: Field, tables: dict[str, DecodeTable]) -> _DecField:
    if f.label == "map":
        return _DecField(f.name, _LEN, _MAP, _map_entry_reader(f, tables), None)
    wire = _VARINT if f.kind in _NUMERIC else _LEN
    read = _scalar_reader(f.kind, f.ref, tables)
    if f.label == "repeated":
        return _DecField(f.name, wire, _REPEATED, read, None)
    if f.kind == "msg":
        return _DecField(f.name, _LEN, _MESSAGE, read, tables[f.ref])
    return _DecField(f.name, wire, _SINGLE, read, None)


def _build_decode_tables() -> dict[str, DecodeTable]:
    tables: dict[str, DecodeTable] = {name: {} for name in MESSAGES}
    for name, fields in MESSAGES.items():
        for f in fields:
            tables[name][f.number] = _make_dec_field(f, tables)
    return tables


def _read_packed(f: _DecField, data: bytes, pos: int, end: int, out: list[Any]) -> int:
    """Read a packed run of varints (proto3 default for repeated scalars)."""
    n, pos = _read_length(data, pos, end)
    stop = pos + n
    while pos < stop:
        v, pos = f.read(data, pos, stop)
        out.append(v)
    return pos


def _decode_into(table: DecodeTable, data: bytes, pos: int, end: int, out: dict[str, Any]) -> None:
    """Decode fields in ``data[pos:end]`` into ``out`` (merging, as protobuf does)."""
    while pos < end:
        key, pos = _read_varint(data, pos, end)
        number = key >> 3
        wire = key & 7
        if number == 0:
            raise DecodeError("invalid field number 0")
        f = table.get(number)
        if f is None:
            if wire == _START_GROUP:
                pos = _skip_group(data, pos, end, number)
            elif wire == _END_GROUP:
                raise DecodeError("unexpected end group")
            else:
                pos = _skip_field(data, pos, end, wire)
            continue
        if wire != f.wire:
            if f.mode == _REPEATED and wire == _LEN:
                pos = _read_packed(f, data, pos, end, out.setdefault(f.name, []))
                continue
            raise DecodeError(f"wrong wire type for field {f.name!r}")
        mode = f.mode
        if mode == _SINGLE:
            value, pos = f.read(data, pos, end)
            if value:
                out[f.name] = value
            else:
                out.pop(f.name, None)
        elif mode == _MESSAGE:
            n, pos = _read_length(data, pos, end)
            sub = out.get(f.name)
            if sub is None:
                sub = out[f.name] = {}
            _decode_into(f.table or {}, data, pos, pos + n, sub)
            pos += n
        elif mode == _REPEATED:
            value, pos = f.read(data, pos, end)
            out.setdefault(f.name, []).append(value)
        else:
            (k, value), pos = f.read(data, pos, end)
            out.setdefault(f.name, {})[k] = value


_DECODE = _build_decode_tables()
_COMMAND = _DECODE["Command"]


def _decode(table: DecodeTable, data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        _decode_into(table, data, 0, len(data), out)
    except RecursionError as exc:
        raise DecodeError("message nested too deeply") from exc
    return out


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    """Decode one ``name`` message (no length prefix) into a dict."""
    return _decode(_DECODE[name], bytes(data))


def iter_commands(frame: bytes) -> Iterator[dict[str, Any]]:
    """Yield the delimited ``Command``s of one frame lazily; the empty one is ``{}``."""
    data = bytes(frame)
    end = len(data)
    if not end:
        raise DecodeError("empty frame")
    pos = 0
    while pos < end:
        n, pos = _read_length(data, pos, end)
        yield _decode(_COMMAND, data[pos : pos + n])
        pos += n


# ---- encoding ---------------------------------------------------------------------------

Writer = Callable[[Any, list[bytes]], None]


_OTHER, _STR, _RAW, _VAR, _MSG = range(5)


class _EncField(NamedTuple):
    rank: int
    tag: bytes
    code: int  # how the hot loop writes the value inline (``_OTHER``: call ``write``)
    sub: _EncTable | None  # nested table for singular messages
    write: Writer
    omit_zero: bool  # every field but singular nested messages


class _EncTable:
    """Per-message encoding table; filled after creation so recursive refs resolve."""

    __slots__ = ("by_name",)

    def __init__(self) -> None:
        self.by_name: dict[str, _EncField] = {}


def _tag(number: int, wire: int) -> bytes:
    return encode_varint((number << 3) | wire)


def _payload_writer(kind: str, ref: str, tables: dict[str, _EncTable]) -> Callable[[Any], bytes]:
    """Return a function giving the bytes of one value *after* its tag."""
    if kind == "msg":
        table = tables[ref]
        return lambda v: _with_length(_encode(table, v))
    if kind == "string":
        return lambda v: _with_length(v.encode("utf-8"))
    if kind == "bytes":
        return _with_length
    convert = _TO_VARINT[kind]
    return lambda v: encode_varint(convert(v))


def _with_length(payload: bytes) -> bytes:
    return encode_varint(len(payload)) + payload


def _single_writer(tag: bytes, payload: Callable[[Any], bytes]) -> Writer:
    def write(value: Any, out: list[bytes]) -> None:
        out.append(tag)
        out.append(payload(value))

    return write


def _repeated_writer(tag: bytes, payload: Callable[[Any], bytes]) -> Writer:
    def write(value: list[Any], out: list[bytes]) -> None:
        for v in value:
            out.append(tag)
            out.append(payload(v))

    return write


def _packed_writer(tag: bytes, payload: Callable[[Any], bytes]) -> Writer:
    def write(value: list[Any], out: list[bytes]) -> None:
        out.append(tag)
        out.append(_with_length(b"".join(payload(v) for v in value)))

    return write


def _map_writer(tag: bytes, kind: str, payload: Callable[[Any], bytes]) -> Writer:
    key_writer = _payload_writer("string", "", {})
    value_tag = _tag(2, _VARINT if kind in _NUMERIC else _LEN)

    def write(value: dict[str, Any], out: list[bytes]) -> None:
        for k, v in value.items():
            entry = b"\x0a" + key_writer(k) + value_tag + payload(v)
            out.append(tag)
            out.append(_with_length(entry))

    return write


def _make_writer(f: Field, tables: dict[str, _EncTable]) -> Writer:
    payload = _payload_writer(f.kind, f.ref, tables)
    if f.label == "map":
        return _map_writer(_tag(f.number, _LEN), f.kind, payload)
    if f.label == "repeated":
        if f.kind in _NUMERIC:
            return _packed_writer(_tag(f.number, _LEN), payload)
        return _repeated_writer(_tag(f.number, _LEN), payload)
    wire = _VARINT if f.kind in _NUMERIC else _LEN
    return _single_writer(_tag(f.number, wire), payload)


def _inline_code(f: Field) -> int:
    """Fields the hot loop writes itself: singular strings, bytes, messages, unsigned ints."""
    if f.label:
        return _OTHER
    if f.kind == "msg":
        return _MSG
    return {"string": _STR, "bytes": _RAW, "uint32": _VAR, "uint64": _VAR}.get(f.kind, _OTHER)


def _build_encode_tables() -> dict[str, _EncTable]:
    tables = {name: _EncTable() for name in MESSAGES}
    for name, fields in MESSAGES.items():
        by_name = tables[name].by_name
        for rank, f in enumerate(sorted(fields, key=lambda x: x.number)):
            single_msg = f.kind == "msg" and not f.label
            tag = _tag(f.number, _VARINT if f.kind in _NUMERIC and not f.label else _LEN)
            sub = tables[f.ref] if single_msg else None
            write = _make_writer(f, tables)
            by_name[f.name] = _EncField(rank, tag, _inline_code(f), sub, write, not single_msg)
    return tables


def _encode(table: _EncTable, value: dict[str, Any]) -> bytes:
    """Encode one message; fields go out in field-number order (canonical bytes)."""
    by_name = table.by_name
    out: list[bytes] = []
    last = -1
    for key, v in value.items():
        try:
            rank, tag, code, sub, write, omit = by_name[key]
        except KeyError:
            raise ValueError(f"unknown field {key!r}") from None
        if v is None or (omit and not v):
            continue
        if rank < last:
            return _encode_sorted(table, value)
        last = rank
        if code == _STR:
            v = v.encode("utf-8")
            out += (tag, encode_varint(len(v)), v)
        elif code == _RAW:
            out += (tag, encode_varint(len(v)), v)
        elif code == _MSG:
            v = _encode(sub, v)  # type: ignore[arg-type]
            out += (tag, encode_varint(len(v)), v)
        elif code == _VAR:
            out += (tag, encode_varint(v))
        else:
            write(v, out)
    return b"".join(out)


def _encode_sorted(table: _EncTable, value: dict[str, Any]) -> bytes:
    """Slow path of ``_encode`` for dicts whose keys are not in field-number order."""
    ranks = table.by_name
    return _encode(table, dict(sorted(value.items(), key=lambda kv: ranks[kv[0]].rank)))


_ENCODE = _build_encode_tables()
_REPLY = _ENCODE["Reply"]


def encode_message(name: str, value: dict[str, Any]) -> bytes:
    """Encode a dict as one ``name`` message (no length prefix)."""
    return _encode(_ENCODE[name], value)


def encode_reply(reply: dict[str, Any]) -> bytes:
    """Encode one ``Reply`` (no length prefix); the empty reply (ping) is ``b""``."""
    return _encode(_REPLY, reply)


def join_frame(messages: list[bytes]) -> bytes:
    """One binary frame: each message preceded by its varint length."""
    return join_delimited(messages)
