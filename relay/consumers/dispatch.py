"""What a consumed message becomes: one server API command, run by the executor.

centrifugo ``internal/api/consuming.go``: a command is ``method`` + ``payload`` (the
method from the source, or a ``{"method", "payload"}`` envelope whose payload may be
raw JSON or a JSON string holding it). Only an internal error (100) is worth retrying:
it raises :class:`Retry` and the source keeps the message; any other failure (a
malformed message, a bad request, an unknown method) is logged and the message is done.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from relay.api.requests import decode_body
from relay.errors import ERROR_INTERNAL, DecodeError, ReplyError

if TYPE_CHECKING:
    from relay.api import Executor

__all__ = ["Retry", "Dispatcher", "METHODS"]

log = logging.getLogger("relay.consumers")

#: the API methods a consumed command may run (Centrifugo's list)
METHODS = frozenset(
    {"publish", "broadcast", "subscribe", "unsubscribe", "disconnect", "history_remove", "refresh"}
)


class Retry(Exception):
    """The command failed with an internal error: keep the message and try again."""


class Dispatcher:
    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    async def command(self, method: str, payload: bytes) -> None:
        """Run one consumed command; raises :class:`Retry` on error 100."""
        if not method:
            envelope = _envelope(payload)
            if envelope is None:
                log.error("skip malformed consumed message")
                return
            method, payload = envelope
        if method not in METHODS:
            log.info("skip unsupported API command method %r", method)
            return
        try:
            params = decode_body(method, payload)
        except (ValueError, RecursionError, DecodeError):
            log.error("skip consumed %s command: invalid data", method)
            return
        await self._run(method, params)

    async def publication(
        self, channels: Sequence[str], data: bytes, params: dict[str, Any]
    ) -> None:
        """Publication ``data`` (raw JSON, kept as is) for ``channels``: publish for one,
        broadcast for several; ``params``: the optional publish fields."""
        if not channels:
            return
        method, target = (
            ("publish", {"channel": channels[0]})
            if len(channels) == 1
            else ("broadcast", {"channels": list(channels)})
        )
        head = json.dumps({**target, **params}, separators=(",", ":")).encode()
        await self.command(method, head[:-1] + b',"data":' + data + b"}")

    async def _run(self, method: str, params: Any) -> None:
        try:
            result = await self.executor.call(method, params, protocol="consuming", decoded=True)
        except ReplyError as exc:
            if exc.error.code == ERROR_INTERNAL.code:
                raise Retry(f"{method}: {exc.error.message}") from exc
            log.error("non-retryable error of consumed %s command: %s", method, exc.error.message)
            return
        for response in result.get("responses", ()) if method == "broadcast" else ():
            error = response.get("error")
            if error is not None and error.get("code") == ERROR_INTERNAL.code:
                raise Retry(f"broadcast: {error.get('message', '')}")


def _envelope(payload: bytes) -> tuple[str, bytes] | None:
    """``{"method": ..., "payload": <JSON or a JSON string>}`` -> (method, payload)."""
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    method = obj.get("method", "")
    inner = obj.get("payload")
    if not isinstance(method, str):
        return None
    if isinstance(inner, str):
        return method, inner.encode()
    return method, json.dumps(inner, separators=(",", ":")).encode()
