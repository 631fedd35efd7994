"""One function per fuzz target: it takes bytes and fails only on a real defect.

Each target feeds an input to one of relay's decoders and checks the contract that the
server relies on: the decoder either returns a value or raises its documented error
(``DecodeError``, ``FrameError``, ``ValueError``, ``ConfigError``), never anything else;
where two implementations exist, they agree.

* ``json_commands``: client JSON frames (``protocol/json_codec.py``); every decoded
  command encodes again.
* ``protobuf_commands``: client Protobuf frames (``protocol/protobuf_codec.py``).
* ``ws_frames``: the WebSocket frame parser, the Cython build against the pure twin,
  the input fed in two chunks.
* ``api_requests``: server API bodies (``api/requests.py``): the msgspec fast path and
  the exact decoder agree on every publish both accept.
* ``config``: the config loader and validator on a JSON, YAML or TOML file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

from relay import _fastpath_py
from relay.api.requests import METHODS, decode_body, decode_request, load_json
from relay.errors import ConfigError, DecodeError
from relay.protocol import json_codec, protobuf_codec
from relay.protocol.api_requests import decode_publish_fast, raw_data

__all__ = ["TARGETS"]


def json_commands(data: bytes) -> None:
    try:
        commands = list(json_codec.iter_commands(data))
    except DecodeError:
        return
    for command in commands:
        protobuf_codec.encode_message("Command", command)


def protobuf_commands(data: bytes) -> None:
    try:
        list(protobuf_codec.iter_commands(data))
    except DecodeError:
        return


def _parse(parser_type: type, error: type[Exception], data: bytes, cut: int) -> object:
    parser = parser_type(65536)
    out: list[object] = []
    try:
        out += parser.feed(data[:cut])
        out += parser.feed(data[cut:])
    except error as exc:
        return ("error", exc.code, out)  # type: ignore[attr-defined]
    return ("ok", out)


def ws_frames(data: bytes) -> None:
    from relay import _fastpath

    cut = data[0] % (len(data) + 1) if data else 0
    native = _parse(_fastpath.FrameParser, _fastpath.FrameError, data, cut)
    twin = _parse(_fastpath_py.FrameParser, _fastpath_py.FrameError, data, cut)
    assert native == twin, (native, twin)


def api_requests(data: bytes) -> None:
    if not data:
        return
    method = METHODS[data[0] % len(METHODS)] if data[0] % 4 else "publish"
    body = data[1:]
    try:
        decode_body(method, body)
    except (ValueError, RecursionError, DecodeError):
        pass
    if method != "publish":
        return
    fast = decode_publish_fast(body)
    if fast is None:
        return
    exact = decode_request("publish", load_json(body))  # what the fast path took, Go takes
    assert (fast.channel, fast.b64data, fast.tags or None) == (
        exact.channel,
        exact.b64data,
        exact.tags or None,
    )
    assert (fast.skip_history, fast.idempotency_key, fast.version) == (
        exact.skip_history,
        exact.idempotency_key,
        exact.version,
    )
    if bytes(fast.data):
        assert load_json(raw_data(fast)) == load_json(bytes(exact.data))


_EXTENSIONS = (".json", ".yaml", ".toml")


def config(data: bytes) -> None:
    from relay.config import load_config, validate

    ext = _EXTENSIONS[data[0] % 3] if data else ".json"
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(suffix=ext, dir=shm)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data[1:])
        try:
            validate(load_config(path, {}).config)
        except ConfigError:
            pass
    finally:
        os.unlink(path)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "json_commands": json_commands,
    "protobuf_commands": protobuf_commands,
    "ws_frames": ws_frames,
    "api_requests": api_requests,
    "config": config,
}
