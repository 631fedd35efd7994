"""Typed server API publish requests, decoded by msgspec without a Python object per value.

The common case of the HTTP API's hot path is a ``publish`` or a ``batch`` of publishes
whose keys are spelled exactly as Centrifugo's ``api.proto`` names them. For those,
``decode_batch`` and ``decode_publish`` decode the body in C (msgspec): ``data`` stays
the raw bytes of the request (``msgspec.Raw``), as Go's ``json.RawMessage`` keeps them,
so a publication carries exactly what the backend sent.

Anything else (case variants of keys, ``null`` where Go reads a zero value, lone
surrogates, invalid UTF-8, other methods inside a batch) goes to the exact Go
``encoding/json`` decoder in ``relay/api.py``, item by item, and its publishes are
turned into the same ``PublishRequest``. Both paths give one type to the executor.

Raw data rules, checked against Centrifugo 6.9.1: the value's bytes pass through as
sent (number spellings, escapes, spaces, tabs and carriage returns kept) except that
newline bytes are removed (they can only be whitespace between tokens, and the JSON
client protocol separates messages by newlines).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Annotated, Any

import msgspec

__all__ = [
    "PublishRequest",
    "BatchEnvelope",
    "decode_publish_fast",
    "decode_batch_envelope",
    "decode_publish_command_fast",
    "decode_publish_batch_fast",
    "raw_data",
    "publish_request",
]

_UINT64 = Annotated[int, msgspec.Meta(ge=0)]  # msgspec cannot bound at 2**64 - 1: see _checked
_UINT64_MAX = 2**64 - 1
_NO_DATA = msgspec.Raw(b"")


class PublishRequest(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """``PublishRequest`` of Centrifugo's ``api.proto`` (the keys a publish may carry)."""

    channel: str = ""
    data: msgspec.Raw = _NO_DATA
    b64data: str = ""
    skip_history: bool = False
    tags: dict[str, str] | None = None
    idempotency_key: str = ""
    delta: bool = False
    version: _UINT64 = 0
    version_epoch: str = ""


class _PublishCommand(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A batch element that is exactly ``{"publish": {...}}``."""

    publish: PublishRequest


class BatchEnvelope(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """``BatchRequest`` with its commands left undecoded."""

    commands: list[msgspec.Raw] = []
    parallel: bool = False


class _PublishBatch(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A ``BatchRequest`` whose every command is exactly ``{"publish": {...}}``."""

    commands: list[_PublishCommand] = []
    parallel: bool = False


_publish_decoder = msgspec.json.Decoder(PublishRequest)
_publish_batch_decoder = msgspec.json.Decoder(_PublishBatch)
_publish_of = attrgetter("publish")
_version_of = attrgetter("version")
_command_decoder = msgspec.json.Decoder(_PublishCommand)
_envelope_decoder = msgspec.json.Decoder(BatchEnvelope)
_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)


def _utf8(body: bytes) -> bool:
    """Whether the body is UTF-8 (msgspec skips a raw value's strings without checking)."""
    if body.isascii():
        return True
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _checked(req: PublishRequest) -> PublishRequest | None:
    return req if req.version <= _UINT64_MAX else None


def decode_publish_fast(body: bytes) -> PublishRequest | None:
    """A publish request in canonical form, else ``None`` (use the exact decoder)."""
    if not _utf8(body):
        return None
    try:
        return _checked(_publish_decoder.decode(body))
    except _ERRORS:
        return None


def decode_batch_envelope(body: bytes) -> BatchEnvelope | None:
    """``{"commands": [...], "parallel": b}`` with exact keys in a UTF-8 body, else ``None``."""
    if not _utf8(body):
        return None
    try:
        return _envelope_decoder.decode(body)
    except _ERRORS:
        return None


def decode_publish_batch_fast(body: bytes) -> tuple[list[PublishRequest], bool] | None:
    """A batch of canonical publishes only, in one decoder call: its requests and
    ``parallel``; else ``None`` (decode the envelope, then element by element)."""
    if not _utf8(body):
        return None
    try:
        batch = _publish_batch_decoder.decode(body)
    except _ERRORS:
        return None
    reqs: list[PublishRequest] = list(map(_publish_of, batch.commands))
    if reqs and max(map(_version_of, reqs)) > _UINT64_MAX:
        return None
    return reqs, batch.parallel


def decode_publish_command_fast(item: msgspec.Raw) -> PublishRequest | None:
    """An element of a decoded envelope that is exactly ``{"publish": {...}}``, else ``None``."""
    try:
        return _checked(_command_decoder.decode(item).publish)
    except _ERRORS:
        return None


def raw_data(req: PublishRequest) -> bytes:
    """The request's ``data`` as it travels (newlines removed); ``b""`` when absent."""
    data = bytes(req.data)
    if b"\n" in data:
        data = data.replace(b"\n", b"")
    return data


def publish_request(params: dict[str, Any], data: bytes | None) -> PublishRequest:
    """A ``PublishRequest`` from the exact decoder's normalized dict (``data`` encoded)."""
    return PublishRequest(
        channel=params.get("channel", ""),
        data=msgspec.Raw(data) if data is not None else _NO_DATA,
        b64data=params.get("b64data", ""),
        skip_history=params.get("skip_history", False),
        tags=params.get("tags"),
        idempotency_key=params.get("idempotency_key", ""),
        delta=params.get("delta", False),
        version=params.get("version", 0),
        version_epoch=params.get("version_epoch", ""),
    )
