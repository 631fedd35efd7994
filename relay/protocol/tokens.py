"""What a token failure means, by the command that carried the token: one table.

Source: centrifugal/centrifuge ``client.go`` (connect, refresh, subscribe, sub_refresh
token handling) and centrifugo ``internal/jwtverify``; checked against Centrifugo 6.9.1.

| command | token expired | token invalid | claims of another channel/user/client |
|---|---|---|---|
| connect | error 109 | disconnect 3500 | - |
| subscribe | error 109 | error 103 | disconnect 3500 |
| refresh | disconnect 3005 | disconnect 3500 | (other user) disconnect 3500 |
| sub_refresh | accepted, no expiry | disconnect 3500 | disconnect 3500 |
"""

from __future__ import annotations

import enum

from relay.errors import (
    DISCONNECT_EXPIRED,
    DISCONNECT_INVALID_TOKEN,
    ERROR_PERMISSION_DENIED,
    ERROR_TOKEN_EXPIRED,
    Disconnect,
    DisconnectError,
    Error,
    ReplyError,
)
from relay.protocol.claims import SubscribeTokenClaims

__all__ = [
    "TokenUse",
    "CONNECT",
    "SUBSCRIBE",
    "REFRESH",
    "SUB_REFRESH",
    "EXPIRED",
    "INVALID",
    "FAILURES",
    "failure",
    "check_subscription_claims",
    "check_connection_claims",
]


class TokenUse(enum.Enum):
    CONNECT = "connect"
    SUBSCRIBE = "subscribe"
    REFRESH = "refresh"
    SUB_REFRESH = "sub_refresh"


CONNECT, SUBSCRIBE, REFRESH, SUB_REFRESH = TokenUse
EXPIRED, INVALID = "expired", "invalid"

#: (command, failure) -> reply error, disconnect, or None for "accepted without expiry"
FAILURES: dict[tuple[TokenUse, str], Error | Disconnect | None] = {
    (CONNECT, EXPIRED): ERROR_TOKEN_EXPIRED,
    (CONNECT, INVALID): DISCONNECT_INVALID_TOKEN,
    (SUBSCRIBE, EXPIRED): ERROR_TOKEN_EXPIRED,
    (SUBSCRIBE, INVALID): ERROR_PERMISSION_DENIED,
    (REFRESH, EXPIRED): DISCONNECT_EXPIRED,
    (REFRESH, INVALID): DISCONNECT_INVALID_TOKEN,
    # Centrifugo answers a sub_refresh with an expired token with an empty success and
    # the subscription goes on without expiry; SDKs rely on it.
    (SUB_REFRESH, EXPIRED): None,
    (SUB_REFRESH, INVALID): DISCONNECT_INVALID_TOKEN,
}


def failure(use: TokenUse, kind: str) -> ReplyError | DisconnectError | None:
    """The exception to raise for a token of ``use`` that failed with ``kind``
    (``EXPIRED`` or ``INVALID``); ``None``: the command succeeds without an expiry."""
    outcome = FAILURES[(use, kind)]
    if outcome is None:
        return None
    if isinstance(outcome, Error):
        return ReplyError(outcome)
    return DisconnectError(outcome)


def check_subscription_claims(
    claims: SubscribeTokenClaims, channel: str, user: str, client: str
) -> None:
    """A subscription token must name this channel, this user and (if set) this client."""
    if (
        claims.channel != channel
        or claims.user != user
        or (claims.client and claims.client != client)
    ):
        raise DisconnectError(DISCONNECT_INVALID_TOKEN)


def check_connection_claims(claims_user: str, user: str) -> None:
    """A refresh token must belong to the connection's user."""
    if claims_user != user:
        raise DisconnectError(DISCONNECT_INVALID_TOKEN)
