"""The HTTP proxy caller: one POST of JSON per call, aiohttp imported on first use.

As Centrifugo's ``internal/proxy/http.go``: static headers first, then the listed
headers of the client's upgrade request over them, ``Content-Type: application/json``;
a status other than 200 fails the call (``status_to_code_transforms`` may turn it into an
error or disconnect for the client); ``timeout`` bounds connect, send and the whole body.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from relay.config.proxy_tree import ProxyConfig
from relay.proxy.messages import ProxyFailure, decode_response, encode_request

if TYPE_CHECKING:
    import aiohttp

__all__ = ["HTTPCaller", "MAX_BODY"]

#: largest response body read (relay's limit; Centrifugo reads any size)
MAX_BODY = 16 * 1024 * 1024


class HTTPCaller:
    protocol = "http"

    def __init__(self, cfg: ProxyConfig, tls: ssl.SSLContext | None) -> None:
        self.endpoint = cfg.endpoint
        self.timeout = cfg.timeout
        self.static = dict(cfg.http.static_headers)
        self.tls = tls
        self.transforms = {t.status_code: t for t in reversed(cfg.http.status_to_code_transforms)}
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=0, ssl=self.tls if self.tls else True)
            session = self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, skip_auto_headers=("User-Agent",)
            )
        return session

    async def __call__(
        self, kind: str, request: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        import aiohttp

        body = encode_request(kind, request)
        out = {**self.static, **headers, "Content-Type": "application/json"}
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with self._client().post(
                self.endpoint, data=body, headers=out, timeout=timeout
            ) as resp:
                if resp.status != 200:
                    return self._status_answer(resp.status)
                chunks = []
                size = 0
                async for chunk in resp.content.iter_chunked(65536):
                    size += len(chunk)
                    if size > MAX_BODY:
                        raise ProxyFailure(f"response body over {MAX_BODY} bytes")
                    chunks.append(chunk)
        except TimeoutError:
            raise ProxyFailure(f"timeout after {self.timeout}s") from None
        except aiohttp.ClientError as exc:
            raise ProxyFailure(f"HTTP request error: {type(exc).__name__}: {exc}") from None
        return decode_response(kind, b"".join(chunks))

    def _status_answer(self, status: int) -> dict[str, Any]:
        t = self.transforms.get(status)
        if t is not None and t.to_error.code > 0:
            e = t.to_error
            return {"error": {"code": e.code, "message": e.message, "temporary": e.temporary}}
        if t is not None and t.to_disconnect.code > 0:
            d = t.to_disconnect
            return {"disconnect": {"code": d.code, "reason": d.reason}}
        raise ProxyFailure(f"unexpected HTTP status code: {status}", status)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
