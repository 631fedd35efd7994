"""The typed contract of the byte-level hot path (both ``_fastpath`` twins honour it)."""

__all__ = [
    "FrameError",
    "FrameParser",
    "build_frame",
    "build_close_frame",
    "frame_messages",
    "encode_varint",
    "join_delimited",
    "split_delimited",
    "FossilError",
    "fossil_create",
    "fossil_apply",
]

class FrameError(Exception):
    """A WebSocket protocol violation; the connection is closed with ``code``."""

    code: int
    reason: str
    def __init__(self, code: int, reason: str) -> None: ...

class FrameParser:
    """Incremental parser of masked client frames; reassembles fragmented messages."""

    @property
    def max_message_size(self) -> int: ...
    deflate: bool
    """permessage-deflate negotiated: RSV1 is allowed on a message's first frame and
    such a message comes out with 0x40 added to its opcode."""
    def __init__(self, max_message_size: int) -> None: ...
    def feed(self, data: bytes) -> list[tuple[int, bytes]]: ...

def build_frame(opcode: int, payload: bytes) -> bytes: ...
def build_close_frame(code: int, reason: str) -> bytes: ...
def frame_messages(opcode: int, messages: list[bytes], delimited: bool) -> bytes: ...
def encode_varint(n: int) -> bytes: ...
def join_delimited(messages: list[bytes]) -> bytes: ...
def split_delimited(data: bytes) -> list[bytes]: ...

class FossilError(ValueError):
    """A fossil delta that does not apply to the given source."""

def fossil_create(source: bytes, target: bytes) -> bytes: ...
def fossil_apply(source: bytes, delta: bytes) -> bytes: ...
