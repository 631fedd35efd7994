"""In-process proxy hooks for relay: ``"endpoint": "python://examples.proxy_hooks:<name>"``.

Each hook gets the request an HTTP proxy backend would get (the JSON body, decoded, plus
``"kind"`` and the forwarded ``"headers"``) and returns what it would answer. It runs in
the worker that holds the connection, so it must not block: await I/O, keep it short.
The module must be importable by the worker (on ``PYTHONPATH``, or installed).

    {
      "client": {"proxy": {"connect": {"enabled": true,
                 "endpoint": "python://examples.proxy_hooks:connect"}}},
      "rpc": {"proxy": {"endpoint": "python://examples.proxy_hooks:rpc"},
              "without_namespace": {"proxy_enabled": true}}
    }
"""

from __future__ import annotations

from typing import Any

USERS = {"secret-token-of-alice": "alice"}


async def connect(request: dict[str, Any]) -> dict[str, Any]:
    """Authenticate by the ``token`` field of the connect data (``{"token": "..."}``)."""
    data = request.get("data") or {}
    user = USERS.get(data.get("token", "")) if isinstance(data, dict) else None
    if user is None:
        return {"disconnect": {"code": 4501, "reason": "unauthorized"}}
    return {"result": {"user": user, "info": {"name": user.title()}, "channels": []}}


async def rpc(request: dict[str, Any]) -> dict[str, Any]:
    """``echo`` returns its data; any other method is an application error."""
    if request["method"] == "echo":
        return {"result": {"data": request.get("data")}}
    return {"error": {"code": 4004, "message": f"unknown method {request['method']}"}}


def subscribe(request: dict[str, Any]) -> dict[str, Any]:
    """A plain function works too: allow ``news:*`` for everyone."""
    if request["channel"].startswith("news:"):
        return {"result": {}}
    return {"error": {"code": 4003, "message": "permission denied"}}
