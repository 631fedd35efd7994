"""Proxies to the application backend: connect, refresh, subscribe, publish, sub_refresh, RPC,
subscribe_stream.

``messages`` (request and response bodies) and ``outcomes`` (what an answer means for
the client) are pure; ``http``, ``grpc`` and ``hook`` are the thin callers, ``stream`` the
gRPC subscribe streams; ``registry`` builds a worker's proxies from the config and makes
every call (metrics, logs).
"""

from __future__ import annotations

from relay.proxy.messages import ProxyFailure
from relay.proxy.registry import Proxies, Proxy, uses_proxies

__all__ = ["Proxies", "Proxy", "ProxyFailure", "uses_proxies"]
