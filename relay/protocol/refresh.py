"""Planners of ``refresh`` and ``sub_refresh``: a new token -> a new expiry (pure).

The connection/subscription planners are in ``protocol/commands.py``; these two share
its session context and token checks.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from relay.errors import (
    DISCONNECT_BAD_REQUEST,
    ERROR_BAD_REQUEST,
    ERROR_PERMISSION_DENIED,
    DisconnectError,
    ReplyError,
)
from relay.protocol.commands import ConnectVerify, Request, Result, SessionContext, SubscribeVerify
from relay.protocol.tokens import check_connection_claims, check_subscription_claims

__all__ = ["RefreshPlan", "plan_refresh", "plan_sub_refresh"]


@dataclass(frozen=True, slots=True)
class RefreshPlan:
    """A new expiry for a connection or a subscription.

    ``info`` replaces the connection's/subscription's info when not None (also when the
    refresh then fails with ``expired``, as in Centrifugo). ``exp`` None: no expiry.
    """

    info: bytes | None
    exp: float | None
    result: Result
    expire_in: float | None
    expired: bool = False


def _expiry(
    exp: int | None, now: float, close_delay: float, info: bytes | None, ignore: bool = False
) -> RefreshPlan:
    if exp is None or ignore:
        return RefreshPlan(info, None, {}, None)
    if exp <= now:
        return RefreshPlan(info, None, {}, None, expired=True)
    ttl = max(1, int(exp) - int(now))
    return RefreshPlan(info, float(exp), {"expires": True, "ttl": ttl}, exp - now + close_delay)


def plan_refresh(
    req: Request, ctx: SessionContext, *, user: str, verify: ConnectVerify, now: float
) -> RefreshPlan:
    """A connection refresh with a new token (a token without ``exp`` ends the expiry)."""
    token = req.get("token", "")
    if not token:
        raise DisconnectError(DISCONNECT_BAD_REQUEST)
    claims = verify(token)
    check_connection_claims(claims.user, user)
    cfg = ctx.client
    return _expiry(claims.expires_at(), now, cfg.expired_close_delay, claims.info, cfg.insecure)


def plan_sub_refresh(
    req: Request,
    ctx: SessionContext,
    *,
    user: str,
    uid: str,
    subscribed: Container[str],
    verify: SubscribeVerify,
    now: float,
) -> tuple[str, RefreshPlan]:
    """A subscription refresh: the channel and its new expiry."""
    ch = req.get("channel", "")
    if not ch:
        raise DisconnectError(DISCONNECT_BAD_REQUEST)
    if ch not in subscribed:
        raise ReplyError(ERROR_PERMISSION_DENIED)
    token = req.get("token", "")
    if not token:
        raise ReplyError(ERROR_BAD_REQUEST)
    claims = verify(token)
    if claims is None:  # expired: accepted, and the subscription no longer expires
        return ch, RefreshPlan(None, None, {}, None)
    check_subscription_claims(claims, ch, user, uid)
    return ch, _expiry(claims.expires_at(), now, ctx.client.expired_sub_close_delay, claims.info)
