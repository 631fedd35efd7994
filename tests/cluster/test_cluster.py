"""The real front + worker processes: hand-over, sharding, supervision, shutdown, metrics."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from centrifuge import Client, SubscribedContext, SubscriptionEventHandler

from relay.auth import encode_hmac_token
from relay.cluster.shards import ShardMap
from tests.procutil import (
    OPEN_CHANNELS,
    RelayEndpoints,
    free_port,
    scrape_until,
    spawn_relay,
    wait_port,
)

SECRET = "cluster-secret"
KEY = "cluster-key"
CONFIG = {
    "client": {"token": {"hmac_secret_key": SECRET}},
    "http_api": {"key": KEY},
    "prometheus": {"enabled": True},
    "health": {"enabled": True},
    "channel": {"without_namespace": OPEN_CHANNELS},
}


def children(pid: int) -> dict[int, int]:
    """worker id -> pid of the front's live worker processes."""
    out: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/comm", "rb") as fh:
                name = fh.read().strip()
        except OSError:
            continue
        if ppid == pid and name.startswith(b"relay-worker-"):
            out[int(name.removeprefix(b"relay-worker-"))] = int(entry)
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class Cluster(RelayEndpoints):
    proc: subprocess.Popen[bytes]
    port: int
    api_key = KEY
    secret = SECRET

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{self.port}/metrics") as resp:
                return await resp.text()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(CONFIG))
    port = free_port()
    proc = spawn_relay(cfg, port, workers=2)
    try:
        await wait_port(port)
        deadline = time.monotonic() + 10
        while len(children(proc.pid)) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # both workers bound their bus inboxes
        yield Cluster(proc, port)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def test_cross_worker_delivery_presence_history(cluster: Cluster) -> None:
    clients = [await cluster.client(f"u{i}") for i in range(4)]  # alternate over 2 workers
    for c in clients:
        await c.call("subscribe", {"channel": "room"})
    for i, c in enumerate(clients):
        assert "publish" in await c.call("publish", {"channel": "room", "data": {"from": i}})
    for c in clients:
        got = [(await c.push("pub", "room"))["pub"] for _ in range(4)]
        assert [p["offset"] for p in got] == [1, 2, 3, 4]
        assert sorted(p["data"]["from"] for p in got) == [0, 1, 2, 3]
    answers = [await c.call("presence_stats", {"channel": "room"}) for c in clients]
    assert {json.dumps(a["presence_stats"]) for a in answers} == {
        json.dumps({"num_clients": 4, "num_users": 4})
    }
    hist = [await c.call("history", {"channel": "room", "limit": -1}) for c in clients]
    assert len({h["history"]["epoch"] for h in hist}) == 1
    res = await cluster.api("publish", {"channel": "room", "data": "api"})
    assert res["result"]["offset"] == 5
    for c in clients:
        assert (await c.push("pub", "room"))["pub"]["data"] == "api"
    info = (await cluster.api("info", {}))["result"]["nodes"]
    assert len(info) == 1 and info[0]["num_clients"] == 4 and info[0]["num_subs"] == 4
    chans = (await cluster.api("channels", {}))["result"]["channels"]
    assert chans == {"room": {"num_clients": 4}}
    # a batch crosses the bus as one message per owner; results stay in order
    cmds = [{"publish": {"channel": f"b{i}", "data": i}} for i in range(50)]
    replies = (await cluster.api("batch", {"commands": cmds}))["replies"]
    assert all(r["publish"]["offset"] == 1 for r in replies)
    # server-side disconnect reaches a user wherever its connection lives
    await cluster.api("disconnect", {"user": "u3"})
    assert await clients[3].closed() == (3503, "force disconnect")
    for c in clients[:3]:
        await c.close()


async def test_metrics_aggregate_over_workers(cluster: Cluster) -> None:
    clients = [await cluster.client(f"m{i}") for i in range(3)]
    labels = 'accept_protocol="",client_name="unnamed",client_version="unversioned"'
    inflight = f'centrifugo_client_connections_inflight{{{labels},transport="websocket"}} 3\n'
    for _ in range(40):  # each worker hands its counts on once a second
        text = await cluster.metrics()
        if "centrifugo_node_num_clients 3\n" in text and inflight in text:
            break
        await asyncio.sleep(0.1)
    assert "centrifugo_node_num_clients 3\n" in text
    assert 'relay_bus_messages_total{event="gaps"} 0\n' in text
    # summed over the workers, Centrifugo's names; quantiles from the merged sketches
    assert inflight in text
    quantile = 'centrifugo_client_command_duration_seconds{channel_namespace="",method="connect",'
    line = next(ln for ln in text.splitlines() if ln.startswith(quantile + 'quantile="0.5"}'))
    assert 0 < float(line.rsplit(" ", 1)[1]) < 1
    # process_* over the front and both workers: more than any one process holds
    rss = next(ln for ln in text.splitlines() if ln.startswith("process_resident_memory_bytes "))
    one = int(open(f"/proc/{cluster.proc.pid}/statm").read().split()[1]) * os.sysconf(
        "SC_PAGE_SIZE"
    )
    assert float(rss.split()[1]) > 2 * one
    workers = [ln for ln in text.splitlines() if ln.startswith("relay_worker_connections{")]
    assert sorted(ln.split('worker="')[1][0] for ln in workers) == ["0", "1"], workers
    for c in clients:
        await c.close()


async def test_worker_killed_restarts_and_clients_recover(cluster: Cluster) -> None:
    workers = children(cluster.proc.pid)
    shards = ShardMap(2)
    channel = next(f"k{i}" for i in range(100) if shards.owner(f"k{i}") == 1)
    events: list[SubscribedContext] = []

    class Events(SubscriptionEventHandler):
        async def on_subscribed(self, ctx: SubscribedContext) -> None:
            events.append(ctx)

    sdk_clients = []
    for i in range(2):  # one SDK client per worker
        c = Client(cluster.ws_url, token=encode_hmac_token({"sub": f"s{i}"}, SECRET),
                   proxy=None, min_reconnect_delay=0.05, max_reconnect_delay=0.5)  # fmt: skip
        sub = c.new_subscription(channel, events=Events())
        await c.connect()
        await sub.subscribe()
        sdk_clients.append(c)
    deadline = time.monotonic() + 5
    while len(events) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert len(events) == 2
    await cluster.api("publish", {"channel": channel, "data": 1})
    events.clear()
    os.kill(workers[1], signal.SIGKILL)
    started = time.monotonic()
    while children(cluster.proc.pid).get(1) in (None, workers[1]):
        await asyncio.sleep(0.02)
        assert time.monotonic() - started < 2.0, "worker not restarted"
    assert time.monotonic() - started < 1.5
    # every subscription comes back, and none of them claims a recovery it cannot have
    deadline = time.monotonic() + 10
    while len(events) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert len(events) >= 2, events
    assert all(e.was_recovering and not e.recovered for e in events)
    res = await cluster.api("publish", {"channel": channel, "data": 2})
    assert res["result"]["offset"] == 1  # the restarted owner began a new epoch
    for c in sdk_clients:
        await c.disconnect()


async def test_sigterm_closes_clients_with_3001_and_exits(cluster: Cluster) -> None:
    clients = [await cluster.client(f"t{i}") for i in range(4)]
    workers = children(cluster.proc.pid)
    closing = [asyncio.ensure_future(c.closed(timeout=6)) for c in clients]
    started = time.monotonic()
    cluster.proc.send_signal(signal.SIGTERM)
    assert [await f for f in closing] == [(3001, "shutdown")] * 4
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, cluster.proc.wait, 6) == 0
    assert time.monotonic() - started < 5
    assert not any(alive(pid) for pid in workers.values())


async def test_workers_exit_when_front_is_killed(cluster: Cluster) -> None:
    workers = children(cluster.proc.pid)
    assert len(workers) == 2
    cluster.proc.kill()
    cluster.proc.wait()
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in workers.values()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not any(alive(pid) for pid in workers.values()), "orphan workers"


@pytest.mark.slow
async def test_stopped_worker_is_stalled_then_replaced(cluster: Cluster) -> None:
    """SIGSTOP: after 2 s no new connections go to it and requests to it fail at once
    (100); after 6 s it is killed and restarted, and its channels work again."""
    from relay.process.front import KILL_AFTER, STALL_AFTER

    workers = children(cluster.proc.pid)
    shards = ShardMap(2)
    theirs = next(f"k{i}" for i in range(100) if shards.owner(f"k{i}") == 1)
    ours = next(f"k{i}" for i in range(100) if shards.owner(f"k{i}") == 0)
    stopped_at = time.monotonic()
    os.kill(workers[1], signal.SIGSTOP)
    try:
        await asyncio.sleep(STALL_AFTER + 0.8)
        # every new connection is answered (none is handed to the stopped worker)
        clients = [await cluster.client(f"n{i}") for i in range(6)]
        for c in clients:
            started = time.monotonic()
            reply = await c.call("subscribe", {"channel": theirs}, timeout=2.0)
            assert reply["error"]["code"] == 100, reply
            assert time.monotonic() - started < 0.5  # failed at once, not after a timeout
            assert "subscribe" in await c.call("subscribe", {"channel": ours})
        assert (await cluster.api("publish", {"channel": theirs, "data": 1}))["error"][
            "code"
        ] == 100
        assert "error" not in await cluster.api("publish", {"channel": ours, "data": 1})
        # then it is killed and replaced
        while children(cluster.proc.pid).get(1) in (None, workers[1]):
            await asyncio.sleep(0.05)
            assert time.monotonic() - stopped_at < KILL_AFTER + 3, "stalled worker not replaced"
        assert time.monotonic() - stopped_at >= KILL_AFTER - 0.5
        deadline = time.monotonic() + 5
        while True:
            res = await cluster.api("publish", {"channel": theirs, "data": 2})
            if "error" not in res or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert "error" not in res, res
        for c in clients:
            await c.close()
    finally:
        if alive(workers[1]):
            os.kill(workers[1], signal.SIGCONT)


async def test_internal_port_and_tls_with_workers(tmp_path: Path) -> None:
    """Both listeners of the front hand their connections to the workers, which serve the
    right endpoints on each: wss on the external port, plain API + metrics on the
    internal one (``tls_external``)."""
    from tests.integration.wsutil import RawClient
    from tests.tlsutil import make_certs

    certs = make_certs(tmp_path)
    internal = free_port()
    tls = {"enabled": True, "cert_pem": str(certs.cert), "key_pem": str(certs.key)}
    http_server = {"internal_port": str(internal), "tls": tls, "tls_external": True}
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({**CONFIG, "http_server": http_server}))
    port = free_port()
    proc = spawn_relay(cfg, port, workers=2)
    try:
        await wait_port(port)
        await wait_port(internal)
        ws_url = f"wss://127.0.0.1:{port}/connection/websocket"
        clients = []
        for i in range(4):  # alternate over the two workers
            c = await RawClient.open(ws_url, ssl=certs.client_context())
            await c.connect(token=encode_hmac_token({"sub": f"u{i}"}, SECRET))
            await c.call("subscribe", {"channel": "room"})
            clients.append(c)
        async with aiohttp.ClientSession() as http:
            hdrs = {"X-API-Key": KEY}
            body = {"channel": "room", "data": "hi"}
            url = f"http://127.0.0.1:{internal}/api/publish"
            async with http.post(url, json=body, headers=hdrs) as r:
                assert r.status == 200 and "result" in await r.json()
            needle = "centrifugo_node_num_clients 4"  # summed once both workers flushed
            text = await scrape_until(http, f"http://127.0.0.1:{internal}/metrics", needle)
            assert needle in text
            async with http.get(
                f"https://127.0.0.1:{port}/health", ssl=certs.client_context()
            ) as r:
                assert r.status == 404
        for c in clients:
            assert (await c.push("pub", "room"))["pub"]["data"] == "hi"
            await c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


async def test_pid_file_written_and_removed(tmp_path: Path) -> None:
    pid_file = tmp_path / "relay.pid"
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({**CONFIG, "pid_file": str(pid_file)}))
    port = free_port()
    proc = spawn_relay(cfg, port, workers=1)
    try:
        await wait_port(port)
        deadline = time.monotonic() + 10
        while not children(proc.pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the front's signal handlers are set once workers run
        assert pid_file.read_text() == f"{proc.pid}\n"
        assert pid_file.stat().st_mode & 0o777 == 0o600
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert not pid_file.exists()


async def test_grpc_api_served_by_every_worker_process(tmp_path: Path) -> None:
    """The forked workers (grpc never loaded in the front) serve ``grpc_api`` on one port:
    publishes over gRPC reach clients on both workers, ``info`` sees the node's clients."""
    import grpc.aio

    from relay.api.grpc import centrifugo_api_pb2 as pb

    grpc_port = free_port()
    cfg = tmp_path / "config.json"
    grpc_api = {"enabled": True, "address": "127.0.0.1", "port": grpc_port, "key": "gk"}
    cfg.write_text(json.dumps({**CONFIG, "grpc_api": grpc_api}))
    port = free_port()
    proc = spawn_relay(cfg, port, workers=2)
    try:
        await wait_port(port)
        await wait_port(grpc_port)
        await asyncio.sleep(0.5)  # both workers bound it
        cluster = Cluster(proc, port)
        clients = [await cluster.client(f"g{i}") for i in range(4)]
        for c in clients:
            await c.call("subscribe", {"channel": "room"})
        meta = (("authorization", "apikey gk"),)
        service = "/centrifugal.centrifugo.api.CentrifugoApi/"
        for _ in range(4):  # new channels: the kernel may pick either worker
            async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                publish = channel.unary_unary(
                    service + "Publish",
                    request_serializer=pb.PublishRequest.SerializeToString,
                    response_deserializer=pb.PublishResponse.FromString,
                )
                reply = await publish(pb.PublishRequest(channel="room", data=b'"g"'), metadata=meta)
                assert reply.result.offset > 0 and not reply.HasField("error")
                info = channel.unary_unary(
                    service + "Info",
                    request_serializer=pb.InfoRequest.SerializeToString,
                    response_deserializer=pb.InfoResponse.FromString,
                )
                nodes = (await info(pb.InfoRequest(), metadata=meta)).result.nodes
                assert [n.num_clients for n in nodes] == [4]
        for c in clients:
            for _ in range(4):
                assert (await c.push("pub", "room"))["pub"]["data"] == "g"
            await c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


async def test_proxies_from_worker_processes(tmp_path: Path) -> None:
    """Connect and RPC proxies called by the forked workers (each opens its own HTTP
    client after the fork): clients on both workers get the backend's user and answers."""
    from tests.integration.proxy_backend import Backend
    from tests.integration.wsutil import RawClient

    backend = await Backend().start()
    backend.script("connect", lambda body: {"result": {"user": f"u-{body['data']['n']}"}})
    backend.script("rpc", lambda body: {"result": {"data": {"user": body["user"]}}})
    try:
        proxy = {"endpoint": f"{backend.url}/connect", "timeout": "1s"}
        cfg = tmp_path / "config.json"
        cfg.write_text(json.dumps({
            **CONFIG,
            "client": {**CONFIG["client"], "proxy": {"connect": {"enabled": True, **proxy}}},
            "rpc": {"proxy": {"endpoint": f"{backend.url}/rpc", "timeout": "1s"},
                    "without_namespace": {"proxy_enabled": True}},
        }))  # fmt: skip
        port = free_port()
        proc = spawn_relay(cfg, port, workers=2)
        try:
            await wait_port(port)
            await asyncio.sleep(0.5)
            url = f"ws://127.0.0.1:{port}/connection/websocket"
            clients = [await RawClient.open(url) for _ in range(4)]  # spread over both
            for n, c in enumerate(clients):
                reply = await c.connect(data={"n": n})
                assert reply["connect"]["client"], reply
                rpc = await c.call("rpc", {"method": "who"})
                assert rpc["rpc"]["data"] == {"user": f"u-{n}"}
            assert len(backend.requests("connect")) == 4 and len(backend.requests("rpc")) == 4
            await asyncio.sleep(1.2)  # the per-worker gauge is set once a second
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    workers = [
                        ln for ln in (await r.text()).splitlines()
                        if ln.startswith("relay_worker_connections{")
                    ]  # fmt: skip
            for c in clients:
                await c.close()
            # each worker held some of them, so each made its own proxy calls
            assert len(workers) == 2 and all(float(ln.split()[-1]) >= 1 for ln in workers)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    finally:
        await backend.stop()
