"""The one JSON request decoder: ``schema.py`` tables walked with Go ``encoding/json`` rules.

Client commands (``json_codec``) and server API requests (``relay/api/requests.py``) are
both checked here, field by field, as Centrifugo's Go decoders would read them (verified
against Centrifugo 6.9.1 over a WebSocket and the HTTP API):

* a key matches its field exactly or, failing that, case-insensitively; unknown keys are
  skipped, and where two keys name one field the later one wins;
* ``null`` leaves a scalar field as it was, clears a list, map or message, and is the
  literal ``null`` for a raw-JSON (``bytes``) field; a ``null`` element of a list or a
  value of a map is its zero value (``None`` for a message in a list: Go's nil pointer);
* integers must be JSON integers within their kind's range; strings must be strings,
  and a lone UTF-16 surrogate in one becomes U+FFFD;
* a raw-JSON field becomes compact JSON bytes (``b"null"`` for ``null``), whatever
  numbers it holds: a number Python cannot hold as Go would pass it (over 4,300 digits,
  or beyond the float range, such as ``1e999999``) is kept as its text (``Number``);
* invalid UTF-8 in the text is U+FFFD (``loads``); ``NaN`` and ``Infinity`` are not JSON.

The result is a dict with canonical keys only and, as in proto3, no zero scalars: a
field absent from it holds its zero value. Nested messages stay even when empty (``{}``
and absent mean different things for, say, ``since``). ``finish`` hooks turn a decoded
message into its typed request (a ``PublishRequest``, for one).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from relay.errors import DecodeError
from relay.protocol.schema import Field

__all__ = [
    "DECODER",
    "Converter",
    "Finish",
    "Number",
    "Table",
    "build_tables",
    "decode_object",
    "loads",
    "to_raw",
]

Converter = Callable[[Any], Any]
#: Turns a decoded message dict into what callers receive for it.
Finish = Callable[[dict[str, Any]], Any]

# what ``null`` does to a field
_NULL_KEEPS, _NULL_CLEARS, _NULL_IS_LITERAL = 0, 1, 2

_INT_RANGES: dict[str, tuple[int, int]] = {
    "uint32": (0, 2**32 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint64": (0, 2**64 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "sint64": (-(2**63), 2**63 - 1),
}
_SURROGATE = re.compile("[\ud800-\udfff]")
_compact = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
).encode
_compact_ascii = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=True, allow_nan=False, check_circular=False
).encode


class Number(float):
    """A JSON number that Python holds only as text (its float value is infinite)."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> Number:
        number = super().__new__(cls, math.inf)
        number.text = text
        return number


def _parse_int(text: str) -> int | Number:
    try:
        return int(text)
    except ValueError:  # more digits than int() takes from text
        return Number(text)


def _parse_float(text: str) -> float:
    value = float(text)
    return value if math.isfinite(value) else Number(text)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: The JSON parser of every request: numbers never fail, ``NaN``/``Infinity`` do.
DECODER = json.JSONDecoder(
    parse_int=_parse_int, parse_float=_parse_float, parse_constant=_reject_constant
)
# The same without a Python call per integer; it fails only on an integer of over 4,300
# digits, and ``loads`` then parses again with ``DECODER``.
_decode_fast = json.JSONDecoder(parse_float=_parse_float, parse_constant=_reject_constant).decode


def loads(text: str) -> Any:
    """Parse one JSON text (``ValueError``/``RecursionError`` if it is not JSON)."""
    try:
        return _decode_fast(text)
    except ValueError:
        return DECODER.decode(text)


class Table(dict[str, tuple[Converter, bool, int]]):
    """One message: field name -> (converter, keeps zero values, what ``null`` does).

    ``folded`` maps lower-cased field names to field names (Go's case-insensitive keys).
    """

    __slots__ = ("folded",)

    def __init__(self) -> None:
        super().__init__()
        self.folded: dict[str, str] = {}


def decode_object(table: Table, value: Any) -> dict[str, Any]:
    """Check one JSON object against ``table``; ``DecodeError`` where a value does not fit."""
    if type(value) is not dict:
        raise DecodeError("expected an object")
    out: dict[str, Any] = {}
    for key, v in value.items():
        entry = table.get(key)
        if entry is None:
            name = table.folded.get(key.lower())
            if name is None:
                continue
            key, entry = name, table[name]
        convert, keep_zero, on_null = entry
        if v is None:
            if on_null == _NULL_CLEARS:
                out.pop(key, None)
            elif on_null == _NULL_IS_LITERAL:
                out[key] = b"null"
            continue
        converted = convert(v)
        if converted or keep_zero:
            out[key] = converted
        elif key in out:
            del out[key]
    return out


def to_raw(value: Any) -> bytes:
    """An embedded JSON value as compact UTF-8 JSON text (surrogates kept as escapes)."""
    try:
        return _compact(value).encode("utf-8")
    except RecursionError as exc:
        raise DecodeError("embedded JSON nested too deeply") from exc
    except ValueError:  # a Number, or a lone surrogate: the slow writer below
        pass
    try:
        return _slow_raw(value).encode("ascii")
    except (ValueError, RecursionError) as exc:
        raise DecodeError("invalid embedded JSON") from exc


def _slow_raw(value: Any) -> str:
    """ASCII compact JSON of a value that holds ``Number``s or lone surrogates."""
    if type(value) is Number:
        return value.text
    if type(value) is dict:
        items = (_compact_ascii(k) + ":" + _slow_raw(v) for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if type(value) is list:
        return "[" + ",".join(_slow_raw(v) for v in value) + "]"
    return _compact_ascii(value)


def _to_str(value: Any) -> str:
    if type(value) is not str:
        raise DecodeError("expected a string")
    if not value.isascii() and _SURROGATE.search(value):
        return _SURROGATE.sub("\ufffd", value)
    return value


def _to_bool(value: Any) -> bool:
    if type(value) is not bool:
        raise DecodeError("expected a boolean")
    return value


def _int_converter(kind: str) -> Converter:
    lo, hi = _INT_RANGES[kind]

    def convert(value: Any) -> int:
        if type(value) is not int:
            raise DecodeError(f"expected an integer ({kind})")
        if not lo <= value <= hi:
            raise DecodeError(f"integer out of range ({kind})")
        return value

    return convert


def _list_converter(item: Converter, null_item: Any) -> Converter:
    def convert(value: Any) -> list[Any]:
        if type(value) is not list:
            raise DecodeError("expected an array")
        return [null_item if v is None else item(v) for v in value]

    return convert


def _map_converter(item: Converter, null_item: Any) -> Converter:
    def convert(value: Any) -> dict[str, Any]:
        if type(value) is not dict:
            raise DecodeError("expected an object")
        return {_to_str(k): null_item if v is None else item(v) for k, v in value.items()}

    return convert


def _msg_converter(table: Table, finish: Finish | None) -> Converter:
    if finish is None:
        return lambda value: decode_object(table, value)
    return lambda value: finish(decode_object(table, value))


_ZERO: dict[str, Any] = {"string": "", "bool": False, "bytes": b"null"}


def _item(f: Field, tables: dict[str, Table], finish: Mapping[str, Finish]) -> Converter:
    """The converter of one value of ``f`` (an element, for lists and maps)."""
    if f.kind == "msg":
        return _msg_converter(tables[f.ref], finish.get(f.ref))
    if f.kind == "string":
        return _to_str
    if f.kind == "bool":
        return _to_bool
    if f.kind == "bytes":
        return to_raw
    return _int_converter(f.kind)


def _entry(
    f: Field, tables: dict[str, Table], finish: Mapping[str, Finish]
) -> tuple[Converter, bool, int]:
    item = _item(f, tables, finish)
    message = f.kind == "msg"
    if f.label == "repeated":
        return _list_converter(item, None if message else _ZERO.get(f.kind, 0)), False, _NULL_CLEARS
    if f.label == "map":
        return _map_converter(item, {} if message else _ZERO.get(f.kind, 0)), False, _NULL_CLEARS
    if message:
        return item, True, _NULL_CLEARS
    if f.kind == "bytes":
        return item, False, _NULL_IS_LITERAL
    return item, False, _NULL_KEEPS


def build_tables(
    messages: Mapping[str, tuple[Field, ...]], finish: Mapping[str, Finish] | None = None
) -> dict[str, Table]:
    """One table per message; nested tables are shared, so a walk never looks names up."""
    hooks = finish or {}
    tables = {name: Table() for name in messages}
    for name, fields in messages.items():
        table = tables[name]
        for f in fields:
            table[f.name] = _entry(f, tables, hooks)
        table.folded = {f.name.lower(): f.name for f in fields}
    return tables
