"""Centrifugo's reply-error, disconnect and unsubscribe codes, as values.

Sources: centrifugal/centrifuge ``errors.go``, ``disconnect.go``, ``unsubscribe.go``;
centrifugo ``internal/apiproto/errors.go`` for the server-API variants.

Code ranges, written once:

* reply errors 100-113 travel in ``Reply.error``; the connection stays open;
* disconnects 3000-3499 (and 4000-4499, >= 5000) tell the client to reconnect;
  3500-3999 (and 4500-4999) are terminal;
* unsubscribe pushes 2000-2499 are terminal, >= 2500 make the client resubscribe.

Exception tree::

    RelayError
     +-- ReplyError          a reply error (``Error``) raised out of a handler
     +-- DisconnectError     a disconnect (``Disconnect``) raised out of a handler
     +-- ConfigError         invalid configuration (exit 1)
     +-- DecodeError         bytes from a peer that are not a valid frame/command (3501)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Error",
    "Disconnect",
    "Unsubscribe",
    "RelayError",
    "ReplyError",
    "DisconnectError",
    "ConfigError",
    "DecodeError",
    "ERROR_INTERNAL",
    "ERROR_UNAUTHORIZED",
    "ERROR_UNKNOWN_CHANNEL",
    "ERROR_PERMISSION_DENIED",
    "ERROR_METHOD_NOT_FOUND",
    "ERROR_ALREADY_SUBSCRIBED",
    "ERROR_LIMIT_EXCEEDED",
    "ERROR_BAD_REQUEST",
    "ERROR_NOT_AVAILABLE",
    "ERROR_TOKEN_EXPIRED",
    "ERROR_EXPIRED",
    "ERROR_TOO_MANY_REQUESTS",
    "ERROR_UNRECOVERABLE_POSITION",
    "API_ERROR_NOT_FOUND",
    "API_ERROR_CONFLICT",
    "DISCONNECT_CONNECTION_CLOSED",
    "DISCONNECT_SHUTDOWN",
    "DISCONNECT_SERVER_ERROR",
    "DISCONNECT_EXPIRED",
    "DISCONNECT_SUB_EXPIRED",
    "DISCONNECT_SLOW",
    "DISCONNECT_WRITE_ERROR",
    "DISCONNECT_INSUFFICIENT_STATE",
    "DISCONNECT_FORCE_RECONNECT",
    "DISCONNECT_NO_PONG",
    "DISCONNECT_TOO_MANY_REQUESTS",
    "DISCONNECT_INVALID_TOKEN",
    "DISCONNECT_BAD_REQUEST",
    "DISCONNECT_STALE",
    "DISCONNECT_FORCE_NO_RECONNECT",
    "DISCONNECT_CONNECTION_LIMIT",
    "DISCONNECT_CHANNEL_LIMIT",
    "DISCONNECT_INAPPROPRIATE_PROTOCOL",
    "DISCONNECT_PERMISSION_DENIED",
    "DISCONNECT_NOT_AVAILABLE",
    "UNSUBSCRIBE_SERVER",
    "UNSUBSCRIBE_INSUFFICIENT_STATE",
    "UNSUBSCRIBE_EXPIRED",
]


@dataclass(frozen=True, slots=True)
class Error:
    """A reply error: ``{"code": N, "message": "...", "temporary": bool}``."""

    code: int
    message: str
    temporary: bool = False

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"code": self.code, "message": self.message}
        if self.temporary:
            d["temporary"] = True
        return d


@dataclass(frozen=True, slots=True)
class Disconnect:
    """A disconnect: close-frame code and reason (reason fits the 123-byte limit)."""

    code: int
    reason: str

    @property
    def reconnect(self) -> bool:
        c = self.code
        return not (3500 <= c < 4000 or 4500 <= c < 5000)


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """An unsubscribe push: ``{"code": N, "reason": "..."}``."""

    code: int
    reason: str

    @property
    def resubscribe(self) -> bool:
        return self.code >= 2500


class RelayError(Exception):
    """Root of relay's exceptions."""


class ReplyError(RelayError):
    """A handler's failure that becomes a reply error."""

    def __init__(self, error: Error) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error

    def __reduce__(self) -> tuple[type[ReplyError], tuple[Error]]:
        return (type(self), (self.error,))


class DisconnectError(RelayError):
    """A handler's failure that closes the connection."""

    def __init__(self, disconnect: Disconnect) -> None:
        super().__init__(f"{disconnect.code}: {disconnect.reason}")
        self.disconnect = disconnect

    def __reduce__(self) -> tuple[type[DisconnectError], tuple[Disconnect]]:
        return (type(self), (self.disconnect,))


class ConfigError(RelayError):
    """Invalid configuration; the message is printed as is."""


class DecodeError(RelayError):
    """Malformed input from a peer (frame, command, request body)."""


# ---- reply errors (centrifuge errors.go) --------------------------------------------
ERROR_INTERNAL = Error(100, "internal server error", temporary=True)
ERROR_UNAUTHORIZED = Error(101, "unauthorized")
ERROR_UNKNOWN_CHANNEL = Error(102, "unknown channel")
ERROR_PERMISSION_DENIED = Error(103, "permission denied")
ERROR_METHOD_NOT_FOUND = Error(104, "method not found")
ERROR_ALREADY_SUBSCRIBED = Error(105, "already subscribed")
ERROR_LIMIT_EXCEEDED = Error(106, "limit exceeded")
ERROR_BAD_REQUEST = Error(107, "bad request")
ERROR_NOT_AVAILABLE = Error(108, "not available")
ERROR_TOKEN_EXPIRED = Error(109, "token expired")
ERROR_EXPIRED = Error(110, "expired")
ERROR_TOO_MANY_REQUESTS = Error(111, "too many requests", temporary=True)
ERROR_UNRECOVERABLE_POSITION = Error(112, "unrecoverable position")

# ---- server API variants (centrifugo internal/apiproto/errors.go) --------------------
API_ERROR_NOT_FOUND = Error(104, "not found")
API_ERROR_CONFLICT = Error(113, "conflict")

# ---- disconnects (centrifuge disconnect.go) ------------------------------------------
DISCONNECT_CONNECTION_CLOSED = Disconnect(3000, "connection closed")
DISCONNECT_SHUTDOWN = Disconnect(3001, "shutdown")
DISCONNECT_SERVER_ERROR = Disconnect(3004, "internal server error")
DISCONNECT_EXPIRED = Disconnect(3005, "connection expired")
DISCONNECT_SUB_EXPIRED = Disconnect(3006, "subscription expired")
DISCONNECT_SLOW = Disconnect(3008, "slow")
DISCONNECT_WRITE_ERROR = Disconnect(3009, "write error")
DISCONNECT_INSUFFICIENT_STATE = Disconnect(3010, "insufficient state")
DISCONNECT_FORCE_RECONNECT = Disconnect(3011, "force reconnect")
DISCONNECT_NO_PONG = Disconnect(3012, "no pong")
DISCONNECT_TOO_MANY_REQUESTS = Disconnect(3013, "too many requests")
DISCONNECT_INVALID_TOKEN = Disconnect(3500, "invalid token")
DISCONNECT_BAD_REQUEST = Disconnect(3501, "bad request")
DISCONNECT_STALE = Disconnect(3502, "stale")
DISCONNECT_FORCE_NO_RECONNECT = Disconnect(3503, "force disconnect")
DISCONNECT_CONNECTION_LIMIT = Disconnect(3504, "connection limit")
DISCONNECT_CHANNEL_LIMIT = Disconnect(3505, "channel limit")
DISCONNECT_INAPPROPRIATE_PROTOCOL = Disconnect(3506, "inappropriate protocol")
DISCONNECT_PERMISSION_DENIED = Disconnect(3507, "permission denied")
DISCONNECT_NOT_AVAILABLE = Disconnect(3508, "not available")

# ---- unsubscribe pushes (centrifuge unsubscribe.go) ----------------------------------
UNSUBSCRIBE_SERVER = Unsubscribe(2000, "server unsubscribe")
UNSUBSCRIBE_INSUFFICIENT_STATE = Unsubscribe(2500, "insufficient state")
UNSUBSCRIBE_EXPIRED = Unsubscribe(2501, "subscription expired")
