"""WebSocket close frames as Centrifugo (gorilla/websocket) writes and answers them."""

from __future__ import annotations

from relay.fastpath import build_close_frame, build_frame

__all__ = ["CLOSE_NO_STATUS", "close_frame", "close_reply"]

CLOSE_NO_STATUS = 1005
OP_CLOSE = 8


def close_frame(code: int, reason: str) -> bytes:
    """The close frame of a disconnect, as Centrifugo writes it.

    The code is a uint32 that goes on the wire as its low 16 bits (99999 -> 34463), and
    1005 ("no status", which RFC 6455 forbids on the wire) is an empty close frame.
    """
    if code == CLOSE_NO_STATUS:
        return build_frame(OP_CLOSE, b"")
    return build_close_frame(code & 0xFFFF, reason)


#: close codes a peer may send (gorilla/websocket's list, as Centrifugo checks them)
_VALID_PEER_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013})


def close_reply(payload: bytes) -> bytes:
    """Our answer to the peer's close frame, as Centrifugo 6.9.1 gives it.

    Under two bytes: an empty close frame. A code outside 1000-1003, 1007-1013 and
    3000-4999, or a reason that is not UTF-8: 1002 with the reason Centrifugo writes.
    Otherwise the peer's code, echoed without a reason.
    """
    if len(payload) < 2:
        return build_frame(OP_CLOSE, b"")
    code = int.from_bytes(payload[:2], "big")
    if code not in _VALID_PEER_CODES and not 3000 <= code <= 4999:
        return build_close_frame(1002, f"bad close code {code}")
    try:
        payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        return build_close_frame(1002, "invalid utf8 payload in close frame")
    return build_close_frame(code, "")
