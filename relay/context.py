"""What every connection of a node reads, frozen once per node: the client's view of it.

A ``Client`` gets its config sections, channel rules, token verifiers and clock from
here, never by reaching through the node.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

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
        try:
            return self.conn_verifier.verify_connect_token(token)
        except TokenExpired:
            outcome = failure(use, EXPIRED)
        except TokenInvalid as exc:
            log.info("invalid connection token (%s): %s", use.value, exc)
            outcome = failure(use, INVALID)
        assert outcome is not None  # the table accepts no expired connection token
        raise outcome

    def verify_subscribe(
        self, token: str, use: TokenUse = SUBSCRIBE
    ) -> SubscribeTokenClaims | None:
        """Subscription-token claims, or None: expired and accepted without expiry."""
        try:
            return self.sub_verifier.verify_subscribe_token(token)
        except TokenExpired:
            outcome = failure(use, EXPIRED)
        except TokenInvalid as exc:
            log.info("invalid subscription token (%s): %s", use.value, exc)
            outcome = failure(use, INVALID)
        if outcome is None:
            return None
        raise outcome
