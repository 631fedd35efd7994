"""Admin web UI and the admin endpoints Centrifugo's own SPA calls.

Spec: spec/server-surface.md §2.7 (``admin.*`` keys), §4.5 (legacy stream format of
``/admin/api``), §7 (admin endpoints); spec/reliability.md §2 F. Source: centrifugo
``internal/admin/handlers.go``.

Routes, all under ``admin.handler_prefix`` (default ``""``):

* ``POST /admin/auth``: form field ``password`` -> 200 ``{"token": ...}``; 400 on a
  mismatch or when ``admin.password`` / ``admin.secret`` is empty; 429 once one peer
  address failed ``MAX_FAILURES`` times within ``FAILURE_WINDOW`` seconds.
* ``/admin/init`` and ``/admin/settings`` (any method): UI bootstrap flags.
* ``POST /admin/api``: the legacy ``{"id","method","params"}`` stream, behind
  ``Authorization: token <t>``.
* ``GET /admin/stats``: relay's own live numbers for its status page (token required).
* everything else: the static UI (``relay/web`` or ``admin.web_path``), 404 if missing.

Tokens are ``<payload>.<signature>`` (base64url, no padding): the payload is
``{"sub": "admin", "exp": <unix seconds>}`` and the signature HMAC-SHA256 keyed with
``admin.secret`` over a domain-separated message. They travel only in the
``Authorization`` header (never a cookie), so cross-site requests cannot carry them.
The API key never leaves the server: ``/admin/api`` calls the executor directly.

``admin.setup`` must be the last route registration: its static catch-all answers
every path nobody else claimed (as Centrifugo's admin handler does when it shares a port).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import mimetypes
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from relay.api import Executor
from relay.config import AdminConfig
from relay.node import Node
from relay.protocol import json_codec
from relay.transports.http_api import JSON_TYPE, legacy_stream, plain

__all__ = [
    "setup",
    "issue_token",
    "verify_token",
    "LoginThrottle",
    "TOKEN_LIFETIME",
    "MAX_FAILURES",
    "FAILURE_WINDOW",
    "EDITION",
]

log = logging.getLogger("relay.admin")

#: Seconds an admin session token stays valid.
TOKEN_LIFETIME = 24 * 3600
#: Failed logins from one peer address tolerated within ``FAILURE_WINDOW`` seconds.
MAX_FAILURES = 5
FAILURE_WINDOW = 60.0
#: Peer addresses remembered by the throttle (oldest forgotten first).
MAX_TRACKED_ADDRESSES = 10_000
#: Largest ``/admin/auth`` body accepted (Centrifugo 6.8+ caps it at 1 MiB).
MAX_AUTH_BODY = 1 << 20
EDITION = "oss"
#: The UI shipped with relay (``admin.web_path`` replaces it).
WEB_ROOT = Path(__file__).resolve().parent.parent / "web"

_TOKEN_CONTEXT = b"relay-admin-token.v1|"
_NO_STORE = {"Cache-Control": "no-store"}
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
#: Content-Security-Policy for relay's own UI (no inline script or style, same origin only).
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


# ---- tokens ------------------------------------------------------------------------------
def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict base64url without padding; ``ValueError`` on anything else."""
    if not text or "=" in text:
        raise ValueError("bad base64")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("bad base64") from exc


def _sign(secret: str, payload: str) -> str:
    mac = hmac.new(secret.encode(), _TOKEN_CONTEXT + payload.encode("ascii"), hashlib.sha256)
    return _b64encode(mac.digest())


def issue_token(secret: str, lifetime: float = TOKEN_LIFETIME, now: float | None = None) -> str:
    """A session token valid for ``lifetime`` seconds from ``now`` (tests pass the past)."""
    issued = time.time() if now is None else now
    body = {"sub": "admin", "exp": int(issued + lifetime)}
    payload = _b64encode(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_sign(secret, payload)}"


def verify_token(secret: str, token: str, now: float | None = None) -> bool:
    """True for an untampered, unexpired token signed with ``secret`` (never raises)."""
    if not secret:
        return False
    payload, sep, signature = token.partition(".")
    if not sep or not payload.isascii() or not signature.isascii():
        return False
    if not hmac.compare_digest(_sign(secret, payload), signature):
        return False
    try:
        body = json.loads(_b64decode(payload))
    except ValueError:
        return False
    exp = body.get("exp") if isinstance(body, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int):
        return False
    return (time.time() if now is None else now) < exp


def _header_token(request: web.Request) -> str:
    """The ``<t>`` of ``Authorization: token <t>`` (scheme case-insensitive), else ``""``."""
    parts = request.headers.get("Authorization", "").split()
    if len(parts) == 2 and parts[0].lower() == "token":
        return parts[1]
    return ""


# ---- login throttling ----------------------------------------------------------------------
class LoginThrottle:
    """Failed logins per peer address in a sliding window; bounded memory."""

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window: float = FAILURE_WINDOW,
        max_tracked: int = MAX_TRACKED_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_tracked = max_tracked
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str) -> deque[float] | None:
        """The address's failures still inside the window (forgets it when none are)."""
        times = self._failures.get(address)
        if times is None:
            return None
        horizon = self.clock() - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        return times

    def retry_after(self, address: str) -> float:
        """Seconds ``address`` must wait before trying again; 0 when it may try now."""
        times = self._recent(address)
        if times is None or len(times) < self.max_failures:
            return 0.0
        return max(times[0] + self.window - self.clock(), 0.0)

    def failure(self, address: str) -> None:
        """Record one failed login from ``address``."""
        times = self._recent(address)
        if times is None:
            times = self._failures[address] = deque(maxlen=self.max_failures)
        self._failures.move_to_end(address)
        times.append(self.clock())
        while len(self._failures) > self.max_tracked:
            self._failures.popitem(last=False)

    def success(self, address: str) -> None:
        """A successful login clears the address's record."""
        self._failures.pop(address, None)


# ---- live statistics -------------------------------------------------------------------------
def _total(items: dict[str, float], prefix: str) -> float:
    """Sum of the flattened series starting with ``prefix`` (all label values)."""
    return sum(v for k, v in items.items() if k == prefix or k.startswith(prefix + "."))


async def collect_stats(node: Node, executor: Executor) -> dict[str, Any]:
    """The status page's snapshot: nodes, totals over them, message counters, uptime."""
    nodes = (await executor.info({}))["nodes"]
    items = node.metrics.snapshot()  # summed over this node's workers in multiprocess mode
    return {
        "node": {"uid": node.uid, "name": node.name, "version": node.version},
        "nodes": nodes,
        "workers": len(nodes),
        "clients": sum(n.get("num_clients", 0) for n in nodes),
        "users": sum(n.get("num_users", 0) for n in nodes),
        "subscriptions": sum(n.get("num_subs", 0) for n in nodes),
        "channels": sum(n.get("num_channels", 0) for n in nodes),
        "messages_sent": _total(items, "centrifugo.node.messages_sent_count"),
        "messages_received": _total(items, "centrifugo.node.messages_received_count"),
        "api_commands": _total(items, "centrifugo.api.command_duration_seconds.count"),
        "uptime": int(time.time() - node.started_at),
        "time": time.time(),
    }


# ---- handlers -------------------------------------------------------------------------------
def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json_codec.dumps(value), status=status, content_type=JSON_TYPE, headers=_NO_STORE
    )


def _password_matches(expected: str, candidate: str) -> bool:
    """Constant-time compare that leaks neither content nor length."""
    want = hashlib.sha256(expected.encode()).digest()
    got = hashlib.sha256(candidate.encode("utf-8", "surrogateescape")).digest()
    return hmac.compare_digest(want, got)


class _Admin:
    """The admin routes of one node."""

    def __init__(self, node: Node, executor: Executor, cfg: AdminConfig) -> None:
        self.node = node
        self.executor = executor
        self.cfg = cfg
        self.throttle = LoginThrottle()
        self.web_root = Path(cfg.web_path).resolve() if cfg.web_path else WEB_ROOT
        self.own_ui = not cfg.web_path

    def authenticated(self, request: web.Request) -> bool:
        """Insecure mode, or a valid ``Authorization: token <t>`` header.

        Fails closed: without ``admin.password`` no token is accepted either.
        """
        if self.cfg.insecure:
            return True
        if not self.cfg.password:
            return False
        token = _header_token(request)
        return bool(token) and verify_token(self.cfg.secret, token)

    # ---- /admin/auth ----------------------------------------------------------------------
    async def auth(self, request: web.Request) -> web.Response:
        """Exchange the admin password for a session token."""
        if request.method != "POST":
            return web.Response(status=405)
        if not self.cfg.password or not self.cfg.secret:
            return plain(400, "Bad Request\n")
        address = request.remote or ""
        wait = self.throttle.retry_after(address)
        if wait > 0:
            log.warning("admin login throttled", extra={"fields": {"remote": address}})
            resp = plain(429, "Too Many Requests\n")
            resp.headers["Retry-After"] = str(math.ceil(wait))
            return resp
        password = await self._form_password(request)
        if password is None:
            return plain(400, "Bad Request\n")
        if not _password_matches(self.cfg.password, password):
            self.throttle.failure(address)
            log.info("admin login failed", extra={"fields": {"remote": address}})
            return plain(400, "Bad Request\n")
        self.throttle.success(address)
        return _json({"token": issue_token(self.cfg.secret)})

    @staticmethod
    async def _form_password(request: web.Request) -> str | None:
        """The ``password`` form field (urlencoded or multipart); ``None`` if unreadable."""
        if (request.content_length or 0) > MAX_AUTH_BODY:
            return None
        try:
            form = await request.post()
        except (ValueError, web.HTTPException):
            return None
        value = form.get("password", "")
        return value if isinstance(value, str) else None

    # ---- /admin/init, /admin/settings ---------------------------------------------------------
    async def init(self, request: web.Request) -> web.Response:
        """UI bootstrap (v6.5.2+): insecure flag, edition, whether the token is valid."""
        return _json(
            {
                "insecure": self.cfg.insecure,
                "edition": EDITION,
                "authenticated": self.authenticated(request),
            }
        )

    async def settings(self, request: web.Request) -> web.Response:
        """UI bootstrap of v6.0.0-v6.5.1."""
        return _json({"insecure": self.cfg.insecure, "edition": EDITION})

    # ---- /admin/api, /admin/stats ---------------------------------------------------------
    async def api_stream(self, request: web.Request) -> web.Response:
        """The legacy command stream (§4.5) on behalf of a logged-in admin."""
        if request.method != "POST":
            return web.Response(status=405)
        if not self.authenticated(request):
            return web.Response(status=401)
        return await legacy_stream(self.node, self.executor, request, "admin")

    async def stats(self, request: web.Request) -> web.Response:
        """Live numbers for relay's status page."""
        if request.method != "GET":
            return web.Response(status=405)
        if not self.authenticated(request):
            return web.Response(status=401)
        return _json(await collect_stats(self.node, self.executor))

    # ---- static UI ------------------------------------------------------------------------
    async def static(self, request: web.Request) -> web.StreamResponse:
        """A file of the UI (``index.html`` for a directory); 404 when there is none."""
        path = self._resolve(request.match_info.get("tail", ""))
        if path is None:
            return plain(404, "404 page not found\n")
        # Any method gets the file, as from Go's http.FileServer (checked with 6.9.1).
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        headers = dict(_SECURITY_HEADERS)
        headers["Cache-Control"] = "no-cache"
        if self.own_ui:
            headers["Content-Security-Policy"] = _CSP
        body = b"" if request.method == "HEAD" else path.read_bytes()
        resp = web.Response(body=body, headers=headers)
        resp.content_type = ctype
        return resp

    def _resolve(self, tail: str) -> Path | None:
        """The file ``tail`` names inside the web root (no escaping it), else ``None``."""
        if "\x00" in tail:
            return None
        root = self.web_root
        path = (root / tail.lstrip("/")).resolve()
        if path != root and root not in path.parents:
            return None
        if path.is_dir():
            path = path / "index.html"
        return path if path.is_file() else None


def _redirect_to_slash(location: str) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(location)

    return handler


def setup(app: web.Application, node: Node, executor: Executor) -> None:
    """Register the admin endpoints and the UI when ``admin.enabled`` (call it last)."""
    cfg = node.config.admin
    if not cfg.enabled:
        return
    if cfg.insecure:
        log.warning(
            "INSECURE admin mode enabled: the admin UI and /admin/api are open to anyone "
            "who can reach this port, without a password"
        )
    elif not cfg.password or not cfg.secret:
        log.warning("admin.password or admin.secret is empty: admin login is refused")
    admin = _Admin(node, executor, cfg)
    prefix = cfg.handler_prefix.rstrip("/")
    add = app.router.add_route
    add("*", prefix + "/admin/auth", admin.auth)
    add("*", prefix + "/admin/init", admin.init)
    add("*", prefix + "/admin/settings", admin.settings)
    add("*", prefix + "/admin/api", admin.api_stream)
    add("*", prefix + "/admin/stats", admin.stats)
    if prefix:
        add("GET", prefix, _redirect_to_slash(prefix + "/"))
    add("*", prefix + "/{tail:.*}", admin.static)
