"""What a proxy's answer means for the client (pure): Centrifugo's proxy handlers' rules.

Each function takes a decoded response (``relay/proxy/messages.py``) and returns what
the command handler applies, or raises the reply error / disconnect the client gets:
``disconnect`` first, then ``error``, then ``result``. A ``b64*`` field that is not
base64 is error 100. The refresh answers never fail: Centrifugo reads only their
``result`` (no result: expired).

Source: centrifugo ``internal/proxy/*_handler.go`` (6.9.1), checked against the binary.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from typing import Any

from relay.errors import (
    ERROR_INTERNAL,
    Disconnect,
    DisconnectError,
    Error,
    ReplyError,
)
from relay.protocol.channels import Override
from relay.protocol.claims import ConnectTokenClaims, SubOptions

__all__ = [
    "ProxiedConnect",
    "ProxiedSubscribe",
    "ProxiedRefresh",
    "ProxiedPublish",
    "check_answer",
    "connect_outcome",
    "subscribe_outcome",
    "stream_subscribe_outcome",
    "publish_outcome",
    "rpc_outcome",
    "refresh_outcome",
    "b64",
]

log = logging.getLogger("relay.proxy")

Response = dict[str, Any]


def check_answer(resp: Response) -> dict[str, Any] | None:
    """Raise the answer's disconnect or error; else its result (None when absent)."""
    disconnect = resp.get("disconnect")
    if disconnect is not None:
        raise DisconnectError(Disconnect(disconnect.get("code", 0), disconnect.get("reason", "")))
    error = resp.get("error")
    if error is not None:
        raise ReplyError(
            Error(error.get("code", 0), error.get("message", ""), error.get("temporary", False))
        )
    result: dict[str, Any] | None = resp.get("result")
    return result


def b64(text: str, what: str) -> bytes:
    """A ``b64*`` field decoded (standard alphabet, padded); error 100 if it is not."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        log.error("error decoding base64 %s from proxy", what)
        raise ReplyError(ERROR_INTERNAL) from None


def _bytes(result: dict[str, Any], name: str) -> bytes | None:
    """``b64<name>`` (which wins when non-empty) or raw ``<name>``."""
    encoded = result.get("b64" + name, "")
    if encoded:
        return b64(encoded, name)
    value: bytes | None = result.get(name)
    return value


def _override(raw: dict[str, Any] | None) -> Override | None:
    if not raw:
        return None
    values = {k: v.get("value", False) for k, v in raw.items()}
    return Override(**values)


@dataclass(frozen=True, slots=True)
class ProxiedConnect:
    """A connect proxy's answer: claims as a token would give them (None: no result) and
    the connect reply's ``data``."""

    claims: ConnectTokenClaims | None
    data: bytes | None = None


def connect_outcome(resp: Response) -> ProxiedConnect:
    result = check_answer(resp)
    if result is None:
        return ProxiedConnect(None)
    info = _bytes(result, "info")
    data = _bytes(result, "data")
    subs: dict[str, SubOptions] = dict.fromkeys(result.get("channels", ()), SubOptions())
    for ch, opts in (result.get("subs") or {}).items():
        subs[ch] = SubOptions(
            info=_bytes(opts, "info"),
            data=_bytes(opts, "data"),
            override=_override(opts.get("override")),
        )
    claims = ConnectTokenClaims(
        user=result.get("user", ""),
        expire_at=result.get("expire_at", 0),
        info=info,
        subs=subs,
        meta=result.get("meta"),
    )
    return ProxiedConnect(claims, data or None)


@dataclass(frozen=True, slots=True)
class ProxiedSubscribe:
    info: bytes | None
    data: bytes | None
    override: Override | None
    expire_at: int


def subscribe_outcome(resp: Response) -> ProxiedSubscribe:
    result = check_answer(resp) or {}
    return ProxiedSubscribe(
        info=_bytes(result, "info"),
        data=_bytes(result, "data"),
        override=_override(result.get("override")),
        expire_at=result.get("expire_at", 0),
    )


#: the overrides a subscribe_stream answer may set (no recovery, no positioning there)
_STREAM_OVERRIDES = ("presence", "join_leave", "force_push_join_leave")


def stream_subscribe_outcome(resp: Response) -> ProxiedSubscribe:
    """The first message of a subscribe stream: as a subscribe answer, except that its
    error reaches the client without ``temporary`` and only the presence / join_leave /
    force_push_join_leave overrides count (centrifugo ``subscribe_stream_handler.go``)."""
    error = resp.get("error")
    if error is not None and resp.get("disconnect") is None:
        raise ReplyError(Error(error.get("code", 0), error.get("message", "")))
    result = check_answer(resp) or {}
    override = {k: v for k, v in (result.get("override") or {}).items() if k in _STREAM_OVERRIDES}
    return ProxiedSubscribe(
        info=_bytes(result, "info"),
        data=_bytes(result, "data"),
        override=_override(override),
        expire_at=result.get("expire_at", 0),
    )


@dataclass(frozen=True, slots=True)
class ProxiedPublish:
    """What to publish: the backend's rewrite (else the client's data), whether to keep
    it out of history, and the idempotency key the backend set ("" for none)."""

    data: bytes
    skip_history: bool = False
    idempotency_key: str = ""


def publish_outcome(resp: Response, data: bytes) -> ProxiedPublish:
    result = check_answer(resp)
    if result is None:
        return ProxiedPublish(data)
    if result.get("data") is not None:
        data = result["data"]
    elif result.get("b64data"):
        data = b64(result["b64data"], "data")
    return ProxiedPublish(data, bool(result.get("skip_history")), result.get("idempotency_key", ""))


def rpc_outcome(resp: Response) -> bytes | None:
    result = check_answer(resp)
    return None if result is None else _bytes(result, "data")


@dataclass(frozen=True, slots=True)
class ProxiedRefresh:
    """A refresh or sub_refresh answer: expired, or the new expiry (0: unchanged) and info."""

    expired: bool
    expire_at: int = 0
    info: bytes | None = None
    meta: bytes | None = None


def refresh_outcome(resp: Response) -> ProxiedRefresh:
    result = resp.get("result")
    if result is None:
        log.error("no refresh result found")
        return ProxiedRefresh(True)
    if result.get("expired"):
        return ProxiedRefresh(True)
    return ProxiedRefresh(
        False, result.get("expire_at", 0), _bytes(result, "info"), result.get("meta")
    )
