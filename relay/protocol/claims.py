"""Verified token claims: what a connection or subscription token grants (pure values).

``relay/auth/`` produces them from a JWT; the session logic (``protocol/commands.py``)
reads them. Spec: server-surface §6.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relay.protocol.channels import Override

__all__ = ["SubOptions", "ConnectTokenClaims", "SubscribeTokenClaims"]


@dataclass(frozen=True)
class SubOptions:
    """One entry of a connection token's ``subs`` map (server-side subscription options)."""

    info: bytes | None = None
    data: bytes | None = None
    override: Override | None = None


def _expires_at(expire_at: int | None, exp: int | None) -> int | None:
    if expire_at is not None:
        return expire_at if expire_at > 0 else None
    return exp


@dataclass(frozen=True)
class ConnectTokenClaims:
    """Verified connection-token claims.

    ``exp`` is the token expiry in whole seconds (truncated); ``expire_at`` is None when the
    claim is absent and ``0`` (or negative) when the connection never expires. ``info`` is the
    compact JSON of ``info`` or the decoded ``b64info`` (which wins). When ``subs`` is non-empty
    callers ignore ``channels``.
    """

    user: str
    exp: int | None = None
    expire_at: int | None = None
    info: bytes | None = None
    channels: tuple[str, ...] = ()
    subs: dict[str, SubOptions] = field(default_factory=dict)
    meta: bytes | None = None

    def expires_at(self) -> int | None:
        """Connection expiry (unix seconds) or None for never: ``expire_at`` wins over ``exp``."""
        return _expires_at(self.expire_at, self.exp)


@dataclass(frozen=True)
class SubscribeTokenClaims:
    """Verified subscription-token claims (``client`` is "" when absent)."""

    user: str
    channel: str
    client: str = ""
    exp: int | None = None
    expire_at: int | None = None
    info: bytes | None = None
    data: bytes | None = None
    override: Override | None = None

    def expires_at(self) -> int | None:
        """Subscription expiry (unix seconds) or None for never: ``expire_at`` wins over ``exp``."""
        return _expires_at(self.expire_at, self.exp)
