"""Server API request schemas and the exact request decoder.

A request is a JSON object as ``json.loads`` returns it. ``decode_request`` checks its
fields against ``SCHEMAS`` the way Go's ``encoding/json`` would: unknown keys are
skipped, key names match case-insensitively, ``null`` stands for the zero value and a
value of the wrong type is an error. The result is a dict holding canonical keys only
(a ``PublishRequest`` for ``publish``). ``decode_body`` tries the msgspec decoders of
``relay.protocol.api_requests`` first and falls back to this decoder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from relay.api.payloads import Request, raw
from relay.errors import DecodeError
from relay.protocol.api_requests import (
    PublishRequest,
    decode_batch_envelope,
    decode_publish_command_fast,
    decode_publish_fast,
    publish_request,
)
from relay.protocol.schema import API_MESSAGES, API_METHODS

__all__ = [
    "METHODS",
    "SCHEMAS",
    "BatchCommand",
    "Spec",
    "decode_body",
    "decode_request",
    "load_json",
    "reject_constant",
]

#: A field type: a kind name (see ``_CONVERTERS``) or a nested object schema.
Spec = str | dict[str, Any]

# ---- request schemas: derived from the API tables of protocol/schema.py ----------------
#: protocol scalar kind -> this decoder's converter kind (``bytes`` are raw JSON here)
_KINDS = {
    "string": "str",
    "bool": "bool",
    "bytes": "json",
    "int32": "int32",
    "int64": "int64",
    "uint32": "uint32",
    "uint64": "uint64",
}


def _spec(message: str) -> dict[str, Spec]:
    """The decoder's view of one ``API_MESSAGES`` table."""
    out: dict[str, Spec] = {}
    for f in API_MESSAGES[message]:
        if f.label == "repeated":
            out[f.name] = "commands" if f.ref == "Command" else "list_" + _KINDS[f.kind]
        elif f.label == "map":
            out[f.name] = "map_" + _KINDS[f.ref]
        elif f.kind == "msg":
            # A batch command's field names its method, whose converter decodes it.
            out[f.name] = f.name if message == "Command" else _spec(f.ref)
        else:
            out[f.name] = _KINDS[f.kind]
    return out


SCHEMAS: dict[str, dict[str, Spec]] = {m: _spec(ref) for m, ref in API_METHODS.items()}

#: Methods a batch command may name, in Centrifugo's lookup order (api.proto ``Command``).
METHODS: tuple[str, ...] = tuple(f.name for f in API_MESSAGES["Command"])
_COMMAND_SCHEMA: dict[str, Spec] = {m: m for m in METHODS}
_INT_BOUNDS = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}
_ABSENT = object()


def load_json(body: bytes) -> Any:
    """Parse a request body strictly (no NaN/Infinity); ``ValueError`` if it is not JSON."""
    return json.loads(body.decode("utf-8", errors="replace"), parse_constant=reject_constant)


def reject_constant(name: str) -> Any:
    """``parse_constant`` hook: NaN and Infinity are not JSON (Go refuses them)."""
    raise ValueError(f"invalid JSON constant {name}")


def decode_body(method: str, body: bytes) -> Any:
    """The request of ``method`` from its HTTP body: ``ValueError``/``DecodeError`` -> 400.

    Canonical publish and batch bodies are decoded by msgspec (``api_requests``); the rest,
    and any batch element that is not a canonical publish, by the exact decoder below.
    """
    if method == "publish":
        fast = decode_publish_fast(body)
        if fast is not None:
            return fast
    elif method == "batch":
        envelope = decode_batch_envelope(body)
        if envelope is not None:
            commands = [
                decode_publish_command_fast(item) or _to_command(load_json(bytes(item)))
                for item in envelope.commands
            ]
            return {"commands": commands, "parallel": envelope.parallel}
    return decode_request(method, load_json(body))


def decode_request(method: str, body: Any) -> Any:
    """Check ``body`` against the schema of ``method``; raise ``DecodeError`` if it fails.

    A normalized dict with canonical keys, or a ``PublishRequest`` for ``publish``.
    """
    schema = SCHEMAS.get(method)
    if schema is None:
        raise DecodeError(f"unknown method {method!r}")
    params = _decode_object(schema, body)
    if method == "publish":
        return publish_request(params, raw(params["data"]) if "data" in params else None)
    return params


def _decode_object(schema: dict[str, Spec], value: Any) -> Request:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DecodeError("object expected")
    out: Request = {}
    for key, item in value.items():
        name = key if key in schema else _lowered(schema).get(key.lower())
        if name is None:
            continue
        converted = _convert(schema[name], item)
        if converted is _ABSENT:
            out.pop(name, None)
        else:
            out[name] = converted
    return out


_LOWERED: dict[int, dict[str, str]] = {}


def _lowered(schema: dict[str, Spec]) -> dict[str, str]:
    """lower-cased field name -> field name (Go's case-insensitive JSON keys), per schema."""
    table = _LOWERED.get(id(schema))
    if table is None:
        table = _LOWERED[id(schema)] = {name.lower(): name for name in schema}
    return table


def _convert(spec: Spec, value: Any) -> Any:
    if isinstance(spec, dict):
        return _ABSENT if value is None else _decode_object(spec, value)
    if spec == "json":
        return value
    if value is None:
        return _ABSENT
    return _CONVERTERS[spec](value)


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise DecodeError(f"{what} expected")


def _to_str(value: Any) -> str:
    _check(isinstance(value, str), "string")
    return str(value)


def _to_bool(value: Any) -> bool:
    _check(isinstance(value, bool), "bool")
    return bool(value)


def _int_converter(kind: str) -> Callable[[Any], int]:
    low, high = _INT_BOUNDS[kind]

    def convert(value: Any) -> int:
        _check(isinstance(value, int) and not isinstance(value, bool), kind)
        _check(low <= value <= high, kind)
        return int(value)

    return convert


def _to_list_str(value: Any) -> list[str]:
    _check(isinstance(value, list), "list")
    return ["" if v is None else _to_str(v) for v in value]


def _to_map_str(value: Any) -> dict[str, str]:
    _check(isinstance(value, dict), "object")
    return {k: "" if v is None else _to_str(v) for k, v in value.items()}


#: A decoded batch element: a publish, another command ``{method: params}``, or ``null``.
BatchCommand = PublishRequest | Request | None


def _to_commands(value: Any) -> list[BatchCommand]:
    _check(isinstance(value, list), "list")
    return [_to_command(v) for v in value]


def _to_command(value: Any) -> BatchCommand:
    """One batch element; ``publish`` comes first in Centrifugo's lookup order."""
    if value is None:
        return None
    command = _decode_object(_COMMAND_SCHEMA, value)
    publish: PublishRequest | None = command.get("publish")
    return publish if publish is not None else command


def _method_converter(method: str) -> Callable[[Any], Request]:
    return lambda value: decode_request(method, value)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "str": _to_str,
    "bool": _to_bool,
    "list_str": _to_list_str,
    "map_str": _to_map_str,
    "commands": _to_commands,
    **{kind: _int_converter(kind) for kind in _INT_BOUNDS},
    **{m: _method_converter(m) for m in METHODS},
}
