"""What every connection of a node reads, frozen once per node: the client's view of it.

A ``Client`` gets its config sections, channel rules, token verifiers and clock from
here, never by reaching through the node. :class:`JwksFetcher` is the one piece of I/O:
the HTTP fetch of a JSON Web Key Set that a token verifier (pure) cannot do itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from relay.auth import TokenExpired, TokenInvalid, TokenVerifier
from relay.protocol.claims import ConnectTokenClaims, SubscribeTokenClaims
from relay.protocol.commands import SessionContext
from relay.protocol.tokens import CONNECT, EXPIRED, INVALID, SUBSCRIBE, TokenUse, failure
from relay.timers import Clock

if TYPE_CHECKING:
    import aiohttp

__all__ = ["ClientContext", "JwksFetcher"]

log = logging.getLogger("relay.client")


class _FetchFailed(Exception):
    pass


def _redacted(url: str) -> str:
    """``url`` without its user and password, for logs (like ``tools.RedactedLogURLs``)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        return urllib.parse.urlunsplit(parts._replace(netloc=host))
    except ValueError:
        return "<unparsable URL>"


async def _join(task: asyncio.Task[None]) -> None:
    """Wait for a shared fetch: a waiter cancelled does not cancel it, and a fetch
    cancelled (shutdown) does not raise in its waiters."""
    await asyncio.wait((task,))


class JwksFetcher:
    """Fetches JWKS documents for token verifiers (``internal/jwks/manager.go``).

    One GET per miss, at most 2 attempts of 1 s each (connect, status and body together,
    as Go's ``http.Client.Timeout``); a transport error or a status other than 200 is
    retried at once. Concurrent misses for one (verifier, URL, kid) share a fetch
    (``singleflight``). No proxy from the environment, redirects followed, as Go's client
    here. A failure is logged; the token then fails verification as invalid.
    """

    def __init__(self, attempts: int = 2, timeout: float = 1.0) -> None:
        self.attempts = attempts
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._inflight: dict[tuple[int, str, str], asyncio.Task[None]] = {}

    def key_for(self, verifier: TokenVerifier, token: object) -> Awaitable[None] | None:
        """What to await before ``verifier`` checks ``token``: the fetch of its missing
        JWKS key, or None when nothing is to be fetched (no JWKS, key cached, token
        refused before the signature check) -- the common path never awaits."""
        if not verifier.fetches_jwks or not isinstance(token, str) or not token:
            return None
        request = verifier.jwks_key_request(token)
        if request is None:
            return None
        flight = (id(verifier), *request)
        task = self._inflight.get(flight)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(verifier, *request))
            self._inflight[flight] = task
            task.add_done_callback(lambda _done: self._inflight.pop(flight, None))
        return _join(task)

    async def _fetch(self, verifier: TokenVerifier, url: str, kid: str) -> None:
        try:
            body = await self._download(url)
            count = verifier.store_jwks(url, body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never a traceback: the token is just invalid
            log.info("JWKS fetch from %s (kid %r) failed: %s", _redacted(url), kid, exc)
            return
        log.debug("JWKS fetched from %s: %d signing key(s)", _redacted(url), count)

    async def _download(self, url: str) -> bytes:
        import aiohttp

        session = self._session
        if session is None or session.closed:
            session = self._session = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        last = "no attempt made"
        for _ in range(self.attempts):
            try:
                async with session.get(url, timeout=timeout) as resp:
                    if resp.status != 200:
                        last = f"unexpected status code: {resp.status}"
                        continue
                    return await resp.read()
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise _FetchFailed(last)

    async def close(self) -> None:
        """Cancel fetches in flight and close the HTTP session (node shutdown)."""
        for task in list(self._inflight.values()):
            task.cancel()
        self._inflight.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None


@dataclass(frozen=True, slots=True)
class ClientContext:
    session: SessionContext
    conn_verifier: TokenVerifier
    sub_verifier: TokenVerifier
    clock: Clock = time.time
    jwks: JwksFetcher = field(default_factory=JwksFetcher)

    def connect_key(self, token: object) -> Awaitable[None] | None:
        """The JWKS fetch to await before :meth:`verify_connect`, or None (see
        :meth:`JwksFetcher.key_for`)."""
        return self.jwks.key_for(self.conn_verifier, token)

    def subscribe_key(self, token: object) -> Awaitable[None] | None:
        """The JWKS fetch to await before :meth:`verify_subscribe`, or None."""
        return self.jwks.key_for(self.sub_verifier, token)

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
