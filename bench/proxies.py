"""Connect and RPC round trips through a proxy: an HTTP backend on loopback vs an in-process
hook (``python://``), side by side, against one managed relay.

``python -m bench proxies [--connects N] [--rpcs N] [--workers W]``. The HTTP backend is
an aiohttp app in its own process (``--serve-backend PORT`` runs it); the hooks are the
two functions below, which answer exactly what the backend answers. A connect round trip
is the ``connect`` command on a fresh WebSocket (reply received); an RPC round trip is one
``rpc`` command on an open connection, sent one after another.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.common import free_port, percentile, start_server

CONNECT_ANSWER = {"result": {"user": "bench", "info": {"n": 1}}}


async def hook_connect(request: dict[str, Any]) -> dict[str, Any]:
    return CONNECT_ANSWER


async def hook_rpc(request: dict[str, Any]) -> dict[str, Any]:
    return {"result": {"data": request.get("data")}}


def serve_backend(port: int) -> None:
    from aiohttp import web

    async def connect(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(CONNECT_ANSWER)

    async def rpc(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"result": {"data": body.get("data")}})

    app = web.Application()
    app.router.add_post("/connect", connect)
    app.router.add_post("/rpc", rpc)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _config(connect: str, rpc: str) -> dict[str, Any]:
    return {
        "client": {"proxy": {"connect": {"enabled": True, "endpoint": connect}}},
        "rpc": {"proxy": {"endpoint": rpc}, "without_namespace": {"proxy_enabled": True}},
        "http_api": {"key": "k"},
        "log": {"level": "warn"},
        "health": {"enabled": True},
    }


async def _measure(ws_url: str, connects: int, rpcs: int) -> dict[str, list[float]]:
    import websockets

    connect_us: list[float] = []
    for _ in range(connects):
        async with websockets.connect(ws_url) as ws:
            started = time.perf_counter()
            await ws.send('{"id":1,"connect":{}}')
            reply = await ws.recv()
            connect_us.append((time.perf_counter() - started) * 1e6)
            assert '"connect"' in str(reply), reply
    rpc_us: list[float] = []
    async with websockets.connect(ws_url) as ws:
        await ws.send('{"id":1,"connect":{}}')
        await ws.recv()
        for i in range(rpcs):
            started = time.perf_counter()
            await ws.send(json.dumps({"id": i + 2, "rpc": {"method": "m", "data": {"i": i}}}))
            reply = await ws.recv()
            rpc_us.append((time.perf_counter() - started) * 1e6)
            assert '"rpc"' in str(reply), reply
    return {"connect": connect_us, "rpc": rpc_us}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench proxies")
    parser.add_argument("--connects", type=int, default=300)
    parser.add_argument("--rpcs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--serve-backend", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_backend:
        serve_backend(args.serve_backend)
        return 0
    port = free_port()
    backend = subprocess.Popen(
        [sys.executable, "-m", "bench", "proxies", "--serve-backend", str(port)]
    )
    rows: list[tuple[str, str, list[float]]] = []
    try:
        time.sleep(1.0)
        cases = {
            "http": _config(f"http://127.0.0.1:{port}/connect", f"http://127.0.0.1:{port}/rpc"),
            "hook": _config(
                "python://bench.proxies:hook_connect", "python://bench.proxies:hook_rpc"
            ),
        }
        for name, cfg in cases.items():
            with tempfile.TemporaryDirectory(prefix="bench-proxies-") as tmp:
                path = os.path.join(tmp, "config.json")
                with open(path, "w") as f:
                    json.dump(cfg, f)
                target = start_server("relay", args.workers, path, tmp)
                try:
                    asyncio.run(_measure(target.ws_url, 20, 200))  # warm-up
                    measured = asyncio.run(_measure(target.ws_url, args.connects, args.rpcs))
                finally:
                    target.stop()
            for kind, values in measured.items():
                rows.append((kind, name, values))
    finally:
        backend.terminate()
        backend.wait()
    print(f"proxies: relay --workers {args.workers}, {args.connects} connects, {args.rpcs} rpcs")
    print("| round trip | proxy | p50 µs | p90 µs | p99 µs | mean µs |")
    print("|---|---|---:|---:|---:|---:|")
    for kind, name, values in sorted(rows):
        mean = sum(values) / len(values)
        p50, p90, p99 = (percentile(values, q) for q in (50, 90, 99))
        print(f"| {kind} | {name} | {p50:.0f} | {p90:.0f} | {p99:.0f} | {mean:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
