"""Shared config and process management for the two servers under comparison."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SECRET = "test-secret"
API_KEY = "test-api-key"
REPO = Path(__file__).resolve().parents[2]


def default_centrifugo_bin() -> str:
    return os.environ.get("CENTRIFUGO_BIN") or str(Path("~/go/bin/centrifugo").expanduser())


def make_config() -> dict[str, object]:
    """One v6 ``config.json`` that both servers accept (mirrors tests/conftest.py)."""
    return {
        "client": {"token": {"hmac_secret_key": SECRET}},
        "http_api": {"key": API_KEY},
        "health": {"enabled": True},
        "channel": {
            "without_namespace": {
                "allow_subscribe_for_client": True,
                "allow_publish_for_client": True,
                "allow_presence_for_client": True,
                "allow_history_for_client": True,
                "presence": True,
            },
            "namespaces": [
                {
                    "name": "chat",
                    "presence": True,
                    "join_leave": True,
                    "force_push_join_leave": True,
                    "history_size": 100,
                    "history_ttl": "300s",
                    "force_recovery": True,
                    "allow_subscribe_for_client": True,
                    "allow_publish_for_subscriber": True,
                    "allow_presence_for_subscriber": True,
                    "allow_history_for_subscriber": True,
                },
                {
                    "name": "hist",
                    "history_size": 3,
                    "history_ttl": "300s",
                    "allow_subscribe_for_client": True,
                    "allow_history_for_client": True,
                    "allow_recovery": True,
                    "allow_positioning": True,
                    "allow_publish_for_client": True,
                },
                {"name": "closed"},
            ],
        },
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    ws_url: str
    http_url: str
    proc: subprocess.Popen[bytes] | None = None
    log_path: str = ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def from_urls(name: str, spec: str) -> Server:
    """``ws://h:p/connection/websocket,http://h:p`` or just ``http://h:p``."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    ws = next((p for p in parts if p.startswith("ws")), "")
    http = next((p for p in parts if p.startswith("http")), "")
    if not http and ws:
        http = "http" + ws[2:].split("/connection")[0]
    if not ws and http:
        ws = "ws" + http[4:].rstrip("/") + "/connection/websocket"
    return Server(name, ws, http.rstrip("/"))


def _wait_ready(server: Server, timeout: float = 20.0) -> None:
    host, port = server.http_url.split("//", 1)[1].split(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc is not None and server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited early; see {server.log_path}")
        try:
            with socket.create_connection((host, int(port)), 0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not start in {timeout}s; see {server.log_path}")


def start_servers(centrifugo_bin: str, workdir: str | None = None) -> tuple[Server, Server, str]:
    """Start relay and Centrifugo from one config; return (relay, centrifugo, cfg_path)."""
    work = workdir or tempfile.mkdtemp(prefix="relay-compat-")
    cfg_path = os.path.join(work, "config.json")
    with open(cfg_path, "w") as f:
        json.dump(make_config(), f, indent=2)
    rport, cport = free_port(), free_port()
    python = REPO / ".venv" / "bin" / "python"
    relay_cmd = [
        str(python) if python.exists() else sys.executable,
        "-m",
        "relay",
        "--config",
        cfg_path,
        "-p",
        str(rport),
        "-a",
        "127.0.0.1",
    ]
    cent_cmd = [
        centrifugo_bin,
        "--config",
        cfg_path,
        "--http_server.port",
        str(cport),
        "--http_server.address",
        "127.0.0.1",
    ]
    servers = []
    for name, cmd, port, cwd in (
        ("relay", relay_cmd, rport, str(REPO)),
        ("centrifugo", cent_cmd, cport, work),
    ):
        log_path = os.path.join(work, f"{name}.log")
        log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        srv = Server(
            name,
            f"ws://127.0.0.1:{port}/connection/websocket",
            f"http://127.0.0.1:{port}",
            proc,
            log_path,
        )
        servers.append(srv)
    try:
        for srv in servers:
            _wait_ready(srv)
    except Exception:
        for srv in servers:
            srv.stop()
        raise
    return servers[0], servers[1], cfg_path
