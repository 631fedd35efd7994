"""Payload and result helpers of the server API.

Raw-JSON request fields (``data``, ``info``) arrive as the bytes the decoder made of
them (``b"null"`` for JSON ``null``, which still counts as given). Raw JSON bytes read
back from storage (publication data, client info) are parsed into JSON values for the
reply.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from relay.errors import ERROR_BAD_REQUEST, ERROR_INTERNAL, Error, ReplyError
from relay.protocol import json_codec
from relay.protocol.api_requests import PublishRequest, raw_data
from relay.protocol.channels import Override
from relay.protocol.json_decode import loads
from relay.protocol.messages import ClientInfo, Publication, StreamPosition

__all__ = [
    "Params",
    "Request",
    "Result",
    "client_info",
    "error_dict",
    "override",
    "payload",
    "position_result",
    "publication",
    "publish_payload",
    "raw_or_none",
    "require_channel",
    "stream_position",
]

Request = dict[str, Any]
#: What the helpers read: a decoded request (a dict, or one of ``api/params.py``'s).
Params = Mapping[str, Any]
Result = dict[str, Any]


def error_dict(error: Error) -> Result:
    """The API's error object: ``{"code": N, "message": "..."}`` (no ``temporary``)."""
    return {"code": error.code, "message": error.message}


def raw_or_none(req: Params, key: str) -> bytes | None:
    """A raw-JSON field's bytes, ``None`` when the request did not carry it."""
    value: bytes | None = req.get(key)
    return value


def _json_value(data: bytes) -> Any:
    """Stored raw JSON back to a value (binary payloads cannot travel over JSON: 100)."""
    try:
        return loads(data.decode("utf-8"))  # json_decode: numbers of any size come back
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ReplyError(ERROR_INTERNAL) from exc


def b64_payload(b64: str) -> tuple[bytes, bool]:
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ReplyError(ERROR_BAD_REQUEST) from exc
    return data, json_codec.is_json(data)


def payload(req: Params) -> tuple[bytes, bool]:
    """Publication data and whether it is JSON: ``b64data`` wins when non-empty (107 if bad)."""
    b64 = req.get("b64data", "")
    if b64:
        return b64_payload(b64)
    data: bytes = req.get("data", b"")
    return data, True


def publish_payload(req: PublishRequest) -> tuple[bytes, bool]:
    """As ``payload``, for a typed publish request (raw ``data`` kept as sent)."""
    if req.b64data:
        return b64_payload(req.b64data)
    return raw_data(req), True


def client_info(info: ClientInfo) -> Result:
    out: Result = {"user": info.user, "client": info.client}
    if info.conn_info:
        out["conn_info"] = _json_value(info.conn_info)
    if info.chan_info:
        out["chan_info"] = _json_value(info.chan_info)
    return out


def publication(pub: Publication) -> Result:
    out: Result = {}
    if pub.data:
        out["data"] = _json_value(pub.data)
    if pub.info is not None:
        out["info"] = client_info(pub.info)
    if pub.offset:
        out["offset"] = pub.offset
    if pub.tags:
        out["tags"] = dict(pub.tags)
    return out


def position_result(sp: StreamPosition) -> Result:
    out: Result = {}
    if sp.offset:
        out["offset"] = sp.offset
    if sp.epoch:
        out["epoch"] = sp.epoch
    return out


def stream_position(value: Params | None) -> StreamPosition | None:
    if value is None:
        return None
    return StreamPosition(int(value.get("offset", 0)), str(value.get("epoch", "")))


def override(value: Params | None) -> Override | None:
    if value is None:
        return None
    flags = {k: bool(v.get("value", False)) for k, v in value.items() if v is not None}
    return Override(**flags)


def require_channel(req: Params) -> str:
    channel = req.get("channel", "")
    if not channel:
        raise ReplyError(ERROR_BAD_REQUEST)
    return str(channel)
