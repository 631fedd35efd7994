"""Write the seed corpus of every target: ``python -m fuzz.seeds`` (files are committed).

The seeds are inputs the test suite uses: a JS SDK connect frame, the Python SDK's
spellings, Protobuf commands, masked WebSocket frames of each kind, API bodies of every
method and small configs in each file format.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from typing import Any

from fuzz import CORPUS
from relay.api.requests import METHODS
from relay.protocol import protobuf_codec

COMMANDS: list[dict[str, Any]] = [
    {"id": 1, "connect": {"token": "t", "name": "js", "subs": {"a": {"recover": True}}}},
    {"id": 2, "subscribe": {"channel": "chat:1", "recover": True, "offset": 5, "epoch": "e"}},
    {"id": 3, "publish": {"channel": "chat:1", "data": {"text": "hi", "n": [1, 2.5]}}},
    {"id": 4, "history": {"channel": "c", "limit": 10, "since": {"offset": 1, "epoch": "x"}}},
    {"id": 5, "presence": {"channel": "c"}},
    {"id": 6, "rpc": {"method": "m", "data": None}},
    {"id": 7, "refresh": {"token": "t"}},
    {"id": 8, "sub_refresh": {"channel": "c", "token": "t"}},
    {"id": 9, "unsubscribe": {"channel": "c"}},
    {"send": {"data": "x"}},
    {},
]


def _mask(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    mask = b"\x01\x02\x03\x04"
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _seeds() -> dict[str, list[bytes]]:
    frames = [json.dumps(c).encode() for c in COMMANDS]
    pb = [protobuf_codec.encode_message("Command", _pb(c)) for c in COMMANDS]
    ws = [
        _mask(1, frames[0]),
        _mask(2, pb[1]),
        _mask(9, b"ping") + _mask(10, b""),
        _mask(8, struct.pack("!H", 1000) + b"bye"),
        _mask(1, b"he", fin=False) + _mask(0, b"llo"),
        _mask(1, b"x" * 300),
        _mask(2, b"y" * 70000),
    ]
    api = [bytes([i]) + json.dumps(_api_body(m)).encode() for i, m in enumerate(METHODS)]
    api.append(b"\x00" + b'{"channel":"c","data":{"a":  1.50},"tags":{"k":"v"}}')
    configs = [b"\x00" + json.dumps({"client": {"token": {"hmac_secret_key": "s"}}}).encode()]
    configs.append(b"\x01" + b"client:\n  allowed_origins: ['*']\nchannel:\n  namespaces: []\n")
    configs.append(b"\x02" + b'[http_server]\nport = 8000\n[engine]\ntype = "memory"\n')
    return {
        "json_commands": [b"\n".join(frames), *frames],
        "protobuf_commands": pb,
        "ws_frames": ws,
        "api_requests": api,
        "config": configs,
    }


def _pb(command: dict[str, Any]) -> dict[str, Any]:
    """A command as the Protobuf codec takes it (raw JSON data as bytes)."""
    out: dict[str, Any] = json.loads(json.dumps(command))
    for body in out.values():
        if isinstance(body, dict) and "data" in body:
            body["data"] = json.dumps(body["data"]).encode()
    return out


def _api_body(method: str) -> dict[str, object]:
    return {
        "channel": "c",
        "channels": ["a", "b"],
        "user": "u",
        "data": {"x": 1},
        "commands": [{"publish": {"channel": "c", "data": 1}}, {"info": {}}],
        "disconnect": {"code": 4000, "reason": "r"},
        "limit": 5,
        "since": {"offset": 1, "epoch": "e"},
    }


def main() -> None:
    for target, inputs in _seeds().items():
        folder = os.path.join(CORPUS, target)
        os.makedirs(folder, exist_ok=True)
        for data in inputs:
            name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
            with open(os.path.join(folder, name), "wb") as fh:
                fh.write(data)


if __name__ == "__main__":
    main()
