"""Exceptions raised when a connection or subscription token is rejected."""

from __future__ import annotations


class TokenError(Exception):
    """Base of token failures; ``reason`` is a short text for logs (never sent to clients)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenExpired(TokenError):
    """``exp`` passed or ``nbf`` not reached: connect error 109, sub refresh ``expired``."""


class TokenInvalid(TokenError):
    """Any other failure: disconnect 3500 on connect/refresh, error 103 on subscribe."""
