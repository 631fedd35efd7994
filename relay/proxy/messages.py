"""Centrifugo's proxy protocol messages: request bodies out, response bodies in (pure).

A request is a ``dict`` keyed by the protocol's field names (``relay/proxy/proxy.proto``);
``bytes`` fields (``data``, ``meta``) hold raw JSON for the JSON encoding and the
application's bytes for gRPC. :func:`encode_request` writes it as Centrifugo's HTTP proxy
does (Go ``encoding/json``: fields in proto order, zero values omitted, raw JSON
embedded compactly; a raw field that is not JSON fails the call, as in Go).

A response (``{"result": ..., "error": ..., "disconnect": ...}``) is decoded with Go's
rules too (:func:`decode_response`): keys match exactly or case-insensitively, unknown
keys are skipped, ``null`` leaves a field unset, raw JSON fields keep the bytes the
backend wrote (spaces included: Centrifugo passes them on unchanged), a value of the
wrong JSON type fails the whole response. The same dict shape comes out of gRPC
(``relay/proxy/grpc.py``) and in-process hooks (``relay/proxy/hook.py``), so the outcome
rules (``relay/proxy/outcomes.py``) are written once.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from relay.protocol.json_codec import compact_json, is_json

__all__ = [
    "REQUEST_FIELDS",
    "RESPONSE_SPECS",
    "ProxyFailure",
    "decode_response",
    "encode_request",
    "request_view",
]


class ProxyFailure(Exception):
    """A call that got no usable answer: timeout, connection error, HTTP status, bad body.

    ``status`` is the HTTP status when that was the cause (``status_to_code_transforms``)."""

    def __init__(self, cause: str, status: int = 0) -> None:
        super().__init__(cause)
        self.status = status


_BASE = ("client", "transport", "protocol", "encoding")
#: request type -> its fields in proto order: (name, kind); kind "raw" is a bytes field
REQUEST_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "connect": (
        *((f, "str") for f in _BASE),
        ("data", "raw"),
        ("b64data", "str"),
        ("name", "str"),
        ("version", "str"),
        ("channels", "strs"),
    ),
    "refresh": (*((f, "str") for f in _BASE), ("user", "str"), ("meta", "raw")),
    "subscribe": (
        *((f, "str") for f in _BASE),
        ("user", "str"),
        ("channel", "str"),
        ("token", "str"),
        ("meta", "raw"),
        ("data", "raw"),
        ("b64data", "str"),
    ),
    "publish": (
        *((f, "str") for f in _BASE),
        ("user", "str"),
        ("channel", "str"),
        ("data", "raw"),
        ("b64data", "str"),
        ("meta", "raw"),
    ),
    "rpc": (
        *((f, "str") for f in _BASE),
        ("user", "str"),
        ("method", "str"),
        ("data", "raw"),
        ("b64data", "str"),
        ("meta", "raw"),
    ),
    "sub_refresh": (
        *((f, "str") for f in _BASE),
        ("user", "str"),
        ("channel", "str"),
        ("meta", "raw"),
    ),
}

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _raw_json(value: bytes, field: str) -> bytes:
    if not is_json(value):
        raise ProxyFailure(f"json: error calling MarshalJSON for {field}: not JSON")
    return compact_json(value)


def encode_request(kind: str, request: dict[str, Any]) -> bytes:
    """The JSON body of an HTTP proxy request (``ProxyFailure`` if a raw field is not JSON)."""
    parts: list[str] = []
    for name, ftype in REQUEST_FIELDS[kind]:
        value = request.get(name)
        if not value:
            continue
        if ftype == "raw":
            text = _raw_json(value, name).decode("utf-8")
        else:
            text = _dumps(value)
        parts.append(f'"{name}":{text}')
    return ("{" + ",".join(parts) + "}").encode("utf-8")


def request_view(kind: str, request: dict[str, Any]) -> dict[str, Any]:
    """The request as an HTTP backend reads it after ``json.loads`` (for in-process hooks)."""
    parsed: dict[str, Any] = json.loads(encode_request(kind, request))
    return parsed


# ---- responses -----------------------------------------------------------------------------
# A spec maps field name -> kind: "str", "int", "bool", "raw", "strs", a nested spec (dict),
# or ("map", spec) for a map of messages.
_ERROR = {"code": "int", "message": "str", "temporary": "bool"}
_DISCONNECT = {"code": "int", "reason": "str"}
_BOOL_VALUE = {"value": "bool"}
_OVERRIDE = {
    "presence": _BOOL_VALUE,
    "join_leave": _BOOL_VALUE,
    "force_recovery": _BOOL_VALUE,
    "force_positioning": _BOOL_VALUE,
    "force_push_join_leave": _BOOL_VALUE,
}
_SUB_OPTIONS = {
    "expire_at": "int",
    "info": "raw",
    "b64info": "str",
    "data": "raw",
    "b64data": "str",
    "override": _OVERRIDE,
    "cache_recover": "bool",
}
_RESULTS: dict[str, dict[str, Any]] = {
    "connect": {
        "user": "str",
        "expire_at": "int",
        "info": "raw",
        "b64info": "str",
        "data": "raw",
        "b64data": "str",
        "channels": "strs",
        "subs": ("map", _SUB_OPTIONS),
        "meta": "raw",
    },
    "refresh": {
        "expired": "bool",
        "expire_at": "int",
        "info": "raw",
        "b64info": "str",
        "meta": "raw",
    },
    "subscribe": {
        "expire_at": "int",
        "info": "raw",
        "b64info": "str",
        "data": "raw",
        "b64data": "str",
        "override": _OVERRIDE,
    },
    "publish": {"data": "raw", "b64data": "str", "skip_history": "bool", "idempotency_key": "str"},
    "rpc": {"data": "raw", "b64data": "str"},
    "sub_refresh": {"expired": "bool", "expire_at": "int", "info": "raw", "b64info": "str"},
}
#: request type -> the spec of its response
RESPONSE_SPECS: dict[str, dict[str, Any]] = {
    kind: {"result": spec, "error": _ERROR, "disconnect": _DISCONNECT}
    for kind, spec in _RESULTS.items()
}

_ObjectOfRaw = dict[str, msgspec.Raw]
_decode_object = msgspec.json.Decoder(_ObjectOfRaw | None).decode
_SCALARS: dict[str, Any] = {
    "str": msgspec.json.Decoder(str | None).decode,
    "int": msgspec.json.Decoder(int | None).decode,
    "bool": msgspec.json.Decoder(bool | None).decode,
    "strs": msgspec.json.Decoder(list[str] | None).decode,
}
_INT64 = (-(2**63), 2**63 - 1)


def _decode(raw: bytes | msgspec.Raw, spec: Any) -> Any:
    if isinstance(spec, dict):
        return _decode_message(raw, spec)
    if isinstance(spec, tuple):  # ("map", message spec)
        entries = _decode_object(raw)
        if entries is None:
            return None
        return {key: _decode_message(value, spec[1]) or {} for key, value in entries.items()}
    if spec == "raw":
        return bytes(raw)
    value = _SCALARS[spec](raw)
    if spec == "int" and value is not None and not _INT64[0] <= value <= _INT64[1]:
        raise msgspec.ValidationError("integer out of range")
    return value


def _decode_message(raw: bytes | msgspec.Raw, spec: dict[str, Any]) -> dict[str, Any] | None:
    entries = _decode_object(raw)
    if entries is None:
        return None
    out: dict[str, Any] = {}
    for key, value in entries.items():
        name = key if key in spec else _fold(spec).get(key.lower())
        if name is None:
            continue
        decoded = _decode(value, spec[name])
        if decoded is not None:
            out[name] = decoded
    return out


_FOLDED: dict[int, dict[str, str]] = {}


def _fold(spec: dict[str, Any]) -> dict[str, str]:
    folded = _FOLDED.get(id(spec))
    if folded is None:
        folded = _FOLDED[id(spec)] = {name.lower(): name for name in spec}
    return folded


def decode_response(kind: str, body: bytes) -> dict[str, Any]:
    """Decode an HTTP proxy response body (``ProxyFailure`` if Go would refuse it)."""
    try:
        return _decode_message(body, RESPONSE_SPECS[kind]) or {}
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise ProxyFailure(f"invalid response body: {exc}") from None
