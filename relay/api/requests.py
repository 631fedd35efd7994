"""Server API requests: the body of ``/api/<method>`` decoded once, into a typed request.

``decode_body`` tries the msgspec decoders of ``relay.protocol.api_requests`` first
(canonical publish and batch bodies, raw ``data`` kept byte for byte) and falls back to
``decode_request``: the API tables of ``protocol/schema.py`` walked by the one request
decoder, ``protocol/json_decode.py``, with Go ``encoding/json`` rules, the same walk
client commands get. The result is a dict with canonical keys (``api/params.py``), a
``PublishRequest`` for ``publish``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from relay.api.payloads import Request
from relay.errors import DecodeError
from relay.protocol.api_requests import (
    PublishRequest,
    decode_batch_envelope,
    decode_publish_batch_fast,
    decode_publish_command_fast,
    decode_publish_fast,
    publish_request,
)
from relay.protocol.json_decode import Table, build_tables, decode_object, loads
from relay.protocol.schema import API_MESSAGES, API_METHODS

__all__ = [
    "METHODS",
    "SCHEMAS",
    "BatchCommand",
    "decode_body",
    "decode_request",
    "load_json",
]

#: A decoded batch element: a publish, another command ``{method: params}``, or ``null``.
BatchCommand = PublishRequest | Request | None


def _command(command: dict[str, Any]) -> BatchCommand:
    """A batch element: its publish (first in Centrifugo's lookup order), or the dict."""
    publish: PublishRequest | None = command.get("publish")
    return publish if publish is not None else command


def _publish(params: dict[str, Any]) -> PublishRequest:
    return publish_request(params, params.get("data"))


_TABLES = build_tables(API_MESSAGES, {"PublishRequest": _publish, "Command": _command})
_FINISH: dict[str, Callable[[dict[str, Any]], Any]] = {"PublishRequest": _publish}

#: method -> the table of its request message (api.proto numbers, ``schema.API_METHODS``)
SCHEMAS: dict[str, Table] = {m: _TABLES[ref] for m, ref in API_METHODS.items()}
_REQUEST_OF: dict[str, str] = dict(API_METHODS)

#: Methods a batch command may name, in Centrifugo's lookup order (api.proto ``Command``).
METHODS: tuple[str, ...] = tuple(f.name for f in API_MESSAGES["Command"])
_COMMAND = _TABLES["Command"]


def load_json(body: bytes) -> Any:
    """Parse a request body (``json_decode.loads``); ``ValueError`` if it is not JSON."""
    return loads(body.decode("utf-8", errors="replace"))


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
        publishes = decode_publish_batch_fast(body)
        if publishes is not None:
            return {"commands": publishes[0], "parallel": publishes[1]}
        envelope = decode_batch_envelope(body)
        if envelope is not None:
            commands = [
                decode_publish_command_fast(item) or _to_command(load_json(bytes(item)))
                for item in envelope.commands
            ]
            return {"commands": commands, "parallel": envelope.parallel}
    return decode_request(method, load_json(body))


def decode_request(method: str, body: Any) -> Any:
    """Check ``body`` against the request of ``method``; ``DecodeError`` if it does not fit.

    A dict with canonical keys (``api/params.py``), or a ``PublishRequest`` for ``publish``.
    A ``null`` body is an empty request, as Go reads it.
    """
    table = SCHEMAS.get(method)
    if table is None:
        raise DecodeError(f"unknown method {method!r}")
    params = decode_object(table, {} if body is None else body)
    finish = _FINISH.get(_REQUEST_OF[method])
    return params if finish is None else finish(params)


def _to_command(value: Any) -> BatchCommand:
    return None if value is None else _command(decode_object(_COMMAND, value))
