"""`make run` helper: write a dev config on first run and print how to connect.

The config is `relay genconfig` output (fresh secrets) plus the seed deployment's three
namespaces, admin on the main port, /metrics and /health, and localhost origins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from relay.auth import encode_hmac_token

SEED = Path(__file__).resolve().parent.parent / "examples" / "seed-config.json"


def create(path: Path) -> None:
    subprocess.run([sys.executable, "-m", "relay", "genconfig", "-c", str(path)], check=True)
    cfg = json.loads(path.read_text())
    seed = json.loads(SEED.read_text())
    cfg["channel"] = seed["channel"]
    cfg["client"]["allow_anonymous_connect_without_token"] = True
    cfg["client"]["allowed_origins"] = ["http://localhost:*", "http://127.0.0.1:*"]
    cfg["admin"].update({"enabled": True, "external": True})
    cfg["prometheus"] = {"enabled": True}
    cfg["health"] = {"enabled": True}
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    os.chmod(path, 0o600)


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "dev-config.json")
    if not path.exists():
        create(path)
        print(f"created {path}")
    cfg = json.loads(path.read_text())
    port = cfg.get("http_server", {}).get("port", 8000)
    secret = cfg["client"]["token"]["hmac_secret_key"]
    token = encode_hmac_token({"sub": "demo", "exp": int(time.time()) + 86400}, secret)
    print(
        f"""
relay dev server (memory engine), config {path}
  WebSocket   ws://localhost:{port}/connection/websocket
  HTTP API    http://localhost:{port}/api/<method>   header  X-API-Key: {cfg["http_api"]["key"]}
  Metrics     http://localhost:{port}/metrics      Health  http://localhost:{port}/health
  Admin       http://localhost:{port}/   password: {cfg["admin"]["password"]}
  Token for user "demo" (24 h):
    {token}
  Try:  curl -s -X POST -H 'X-API-Key: {cfg["http_api"]["key"]}' \\
          -d '{{"channel":"public:demo","data":{{"hello":"world"}}}}' http://localhost:{port}/api/publish
""",
        flush=True,
    )


if __name__ == "__main__":
    main()
