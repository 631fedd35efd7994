"""In-process proxies (relay's own): ``"endpoint": "python://package.module:function"``.

The function is imported once (at the worker's start) and awaited in the worker that
holds the connection, with the request an HTTP backend would receive (the JSON body,
decoded: ``data`` is the client's JSON value, or ``b64data`` with ``binary_encoding``),
and returns what an HTTP backend would answer, as a dict. It may be a plain function or a
coroutine function. An exception or a wrong answer is a failed call, exactly as an HTTP
500 or a malformed body is; ``timeout`` applies as for HTTP. The request dict carries
one more key, ``"kind"`` (``connect``, ``rpc``...), so one function can serve several
proxies; it also gets the listed upgrade headers under ``"headers"``. Example:
``examples/hooks.py``.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
from collections.abc import Callable
from typing import Any

from relay.config.proxy_tree import ProxyConfig
from relay.proxy.messages import ProxyFailure, decode_response, request_view

__all__ = ["HookCaller", "load_hook"]


def load_hook(endpoint: str) -> Callable[[dict[str, Any]], Any]:
    """Import ``python://module:function`` (``ValueError`` when it cannot)."""
    target = endpoint.removeprefix("python://")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load proxy hook {endpoint}: {exc}") from None
    if not callable(fn):
        raise ValueError(f"proxy hook {endpoint} is not callable")
    return fn  # type: ignore[no-any-return]


class HookCaller:
    protocol = "python"

    def __init__(self, cfg: ProxyConfig) -> None:
        self.fn = load_hook(cfg.endpoint)
        self.timeout = cfg.timeout

    async def __call__(
        self, kind: str, request: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        view = request_view(kind, request)
        view["kind"] = kind
        if headers:
            view["headers"] = headers
        try:
            answer = self.fn(view)
            if inspect.isawaitable(answer):
                answer = await asyncio.wait_for(answer, self.timeout)
            body = json.dumps(answer if answer is not None else {}).encode()
        except TimeoutError:
            raise ProxyFailure(f"timeout after {self.timeout}s") from None
        except Exception as exc:  # the hook's own bug: a failed call, never a dead worker
            raise ProxyFailure(f"hook raised {type(exc).__name__}: {exc}") from None
        return decode_response(kind, body)

    async def close(self) -> None:
        pass
