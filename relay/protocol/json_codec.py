"""JSON codec of the client protocol (spec §1.3, §2), driven by ``schema.MESSAGES``.

Client frames hold one or more JSON ``Command`` objects separated by ``\\n``;
``iter_commands`` normalizes them lazily. Server messages are compact JSON ``Reply``
objects written in schema order, zero values omitted except ``always`` fields; ``bytes``
fields carry raw embedded JSON (``Raw`` in centrifugal/protocol).

Both directions walk per-message tables built once at import, so a hot call never looks
a message up by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from json.encoder import encode_basestring
from typing import Any, NamedTuple

from relay.errors import DecodeError
from relay.protocol.json_decode import build_tables, decode_object, loads, to_raw
from relay.protocol.schema import MESSAGES, Field

__all__ = [
    "BINARY",
    "iter_commands",
    "encode_reply",
    "join_frame",
    "is_json",
    "compact_json",
    "decode_command",
    "dumps",
]

BINARY = False


def dumps(value: Any) -> bytes:
    """Compact JSON bytes (no spaces, UTF-8, never a raw newline): ``json_decode.to_raw``,
    which also writes ``Number``s and lone surrogates; ``ValueError`` for NaN/infinity."""
    try:
        return to_raw(value)
    except DecodeError as exc:
        raise ValueError(str(exc)) from exc


# ---- decoding: schema tables walked by ``json_decode`` (Go encoding/json rules) --------

_COMMAND = build_tables(MESSAGES)["Command"]


def decode_command(line: bytes) -> dict[str, Any]:
    """Parse and normalize one JSON ``Command`` object."""
    try:
        value = loads(line.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError) as exc:
        raise DecodeError("invalid JSON command") from exc
    try:
        return decode_object(_COMMAND, value)
    except RecursionError as exc:
        raise DecodeError("command nested too deeply") from exc


def iter_commands(frame: bytes) -> Iterator[dict[str, Any]]:
    """Yield the commands of one frame lazily; ``DecodeError`` where the frame goes bad."""
    count = 0
    for line in bytes(frame).split(b"\n"):
        if not line.strip():
            continue
        count += 1
        yield decode_command(line)
    if not count:
        raise DecodeError("empty frame")


# ---- encoding ---------------------------------------------------------------------------

Writer = Callable[[Any, list[bytes]], None]


_OTHER, _STR, _RAW, _INT, _BOOL, _MSG = range(6)


class _EncField(NamedTuple):
    rank: int
    first: bytes  # '{"name":' (opens the object)
    rest: bytes  # ',"name":'
    code: int  # how the hot loop writes the value inline (``_OTHER``: call ``write``)
    sub: _EncTable | None  # nested table for singular messages
    write: Writer
    omit_zero: bool  # zero values are skipped (not ``always``, not a singular message)
    always: bool
    zero: Any  # written for an absent ``always`` field


class _EncTable:
    """Per-message encoding table; filled after creation so recursive refs resolve."""

    __slots__ = ("by_name", "ordered", "has_always")

    def __init__(self) -> None:
        self.by_name: dict[str, _EncField] = {}
        self.ordered: tuple[tuple[str, _EncField], ...] = ()
        self.has_always = False


def _write_str(value: str, out: list[bytes]) -> None:
    out.append(encode_basestring(value).encode("utf-8"))


def _write_raw(value: bytes, out: list[bytes]) -> None:
    out.append(value)


def _write_bool(value: bool, out: list[bytes]) -> None:
    out.append(b"true" if value else b"false")


def _write_int(value: int, out: list[bytes]) -> None:
    out.append(b"%d" % value)


def _msg_writer(table: _EncTable) -> Writer:
    def write(value: dict[str, Any], out: list[bytes]) -> None:
        _write_message(table, value, out)

    return write


def _list_writer(item: Writer) -> Writer:
    def write(value: list[Any], out: list[bytes]) -> None:
        out.append(b"[")
        for i, v in enumerate(value):
            if i:
                out.append(b",")
            item(v, out)
        out.append(b"]")

    return write


def _map_writer(item: Writer) -> Writer:
    def write(value: dict[str, Any], out: list[bytes]) -> None:
        sep = b"{"
        for key, v in value.items():
            out.append(sep)
            out.append(encode_basestring(key).encode("utf-8"))
            out.append(b":")
            item(v, out)
            sep = b","
        out.append(b"}" if sep == b"," else b"{}")

    return write


_SCALAR_WRITERS: dict[str, Writer] = {
    "string": _write_str,
    "bytes": _write_raw,
    "bool": _write_bool,
}
_ZEROS: dict[str, Any] = {"string": "", "bool": False, "bytes": b"null"}


def _field_writer(f: Field, tables: dict[str, _EncTable]) -> Writer:
    item = (
        _msg_writer(tables[f.ref]) if f.kind == "msg" else _SCALAR_WRITERS.get(f.kind, _write_int)
    )
    if f.label == "map":
        return _map_writer(item)
    if f.label == "repeated":
        return _list_writer(item)
    return item


def _zero(f: Field) -> Any:
    if f.label == "map" or (f.kind == "msg" and not f.label):
        return {}
    if f.label == "repeated":
        return []
    return _ZEROS.get(f.kind, 0)


def _code(f: Field) -> int:
    if f.label:
        return _OTHER
    if f.kind == "msg":
        return _MSG
    return {"string": _STR, "bytes": _RAW, "bool": _BOOL}.get(f.kind, _INT)


def _build_encode_tables() -> dict[str, _EncTable]:
    """One table per message; writers capture the (later filled) nested tables."""
    tables = {name: _EncTable() for name in MESSAGES}
    for name, fields in MESSAGES.items():
        table = tables[name]
        for rank, f in enumerate(fields):
            key = encode_basestring(f.name).encode("utf-8") + b":"  # '"name":'
            omit = not (f.always or (f.kind == "msg" and not f.label))
            sub = tables[f.ref] if f.kind == "msg" and not f.label else None
            write = _field_writer(f, tables)
            entry = _EncField(
                rank, b"{" + key, b"," + key, _code(f), sub, write, omit, f.always, _zero(f)
            )
            table.by_name[f.name] = entry
        table.ordered = tuple((f.name, table.by_name[f.name]) for f in fields)
        table.has_always = any(f.always for f in fields)
    return tables


_ENCODE = _build_encode_tables()
_REPLY = _ENCODE["Reply"]


def _write_message(table: _EncTable, value: dict[str, Any], out: list[bytes]) -> None:
    """Append one JSON object, fields in schema order (hot path: dict already in order)."""
    if table.has_always:
        _write_in_schema_order(table, value, out)
        return
    start = len(out)
    last = -1
    for key, v in value.items():
        try:
            rank, first, rest, code, sub, write, omit, _, _ = table.by_name[key]
        except KeyError:
            raise ValueError(f"unknown field {key!r}") from None
        if v is None or (omit and not v):
            continue
        if rank < last:  # keys out of schema order: start over the slow way
            del out[start:]
            _write_in_schema_order(table, value, out)
            return
        out.append(rest if last >= 0 else first)
        last = rank
        if code == _STR:
            out.append(encode_basestring(v).encode("utf-8"))
        elif code == _RAW:
            out.append(v)
        elif code == _MSG:
            _write_message(sub, v, out)  # type: ignore[arg-type]
        elif code == _INT:
            out.append(b"%d" % v)
        else:
            write(v, out)
    out.append(b"}" if last >= 0 else b"{}")


def _write_in_schema_order(table: _EncTable, value: dict[str, Any], out: list[bytes]) -> None:
    """Walk every schema field; ``always`` fields are written even when absent."""
    if not value.keys() <= table.by_name.keys():
        unknown = sorted(value.keys() - table.by_name.keys())
        raise ValueError(f"unknown field {unknown[0]!r}")
    written = False
    for name, f in table.ordered:
        v = value.get(name)
        if v is None:
            if not f.always:
                continue
            v = f.zero
        elif f.omit_zero and not v:
            continue
        out.append(f.rest if written else f.first)
        written = True
        f.write(v, out)
    out.append(b"}" if written else b"{}")


def encode_reply(reply: dict[str, Any]) -> bytes:
    """Encode one ``Reply`` dict as a compact JSON object (never a raw newline)."""
    out: list[bytes] = []
    _write_message(_REPLY, reply, out)
    return b"".join(out)


def join_frame(messages: list[bytes]) -> bytes:
    """Join encoded replies into one text frame, ``\n``-separated, no trailing newline."""
    return b"\n".join(messages)


def is_json(data: bytes) -> bool:
    """Whether ``data`` is one JSON value in UTF-8 (numbers of any size, as Go reads them)."""
    try:
        loads(bytes(data).decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    return True


def compact_json(data: bytes) -> bytes:
    """Re-serialize JSON ``data`` compactly (no whitespace, no raw newline)."""
    try:
        value = loads(bytes(data).decode("utf-8", errors="replace"))
    except (ValueError, RecursionError) as exc:
        raise DecodeError("invalid JSON") from exc
    return to_raw(value)
