"""What every connection of a node reads, frozen once per node: the client's view of it.

A ``Client`` gets its config sections, channel rules, token verifiers and clock from
here, never by reaching through the node.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from relay.auth import TokenExpired, TokenInvalid, TokenVerifier
from relay.protocol.claims import ConnectTokenClaims, SubscribeTokenClaims
from relay.protocol.commands import SessionContext
from relay.protocol.tokens import CONNECT, EXPIRED, INVALID, SUBSCRIBE, TokenUse, failure
from relay.timers import Clock

__all__ = ["ClientContext"]

log = logging.getLogger("relay.client")


@dataclass(frozen=True, slots=True)
class ClientContext:
    session: SessionContext
    conn_verifier: TokenVerifier
    sub_verifier: TokenVerifier
    clock: Clock = time.time

    def verify_connect(self, token: str, use: TokenUse = CONNECT) -> ConnectTokenClaims:
        """Connection-token claims; a failure raises as ``protocol/tokens.py`` says."""
        claims = _verified(self.conn_verifier.verify_connect_token, token, use)
        assert claims is not None  # the table accepts no expired connection token
        return claims

    def verify_subscribe(
        self, token: str, use: TokenUse = SUBSCRIBE
    ) -> SubscribeTokenClaims | None:
        """Subscription-token claims, or None: expired and accepted without expiry."""
        return _verified(self.sub_verifier.verify_subscribe_token, token, use)


T = TypeVar("T")


def _verified(verify: Callable[[str], T], token: str, use: TokenUse) -> T | None:
    """``verify(token)``, with its failures mapped by the table (None: accepted expired)."""
    try:
        return verify(token)
    except TokenExpired:
        outcome = failure(use, EXPIRED)
    except TokenInvalid as exc:
        log.info("invalid %s token: %s", use.value, exc)
        outcome = failure(use, INVALID)
    if outcome is None:
        return None
    raise outcome
