"""The one channel -> owning worker function, used by every process.

A channel's owner is ``jump_hash(fnv1a_64(channel), workers)``: stable across
processes and runs (no ``hash()`` randomisation), and it moves few channels when the
worker count changes. The same hash pair picks a Redis shard (centrifuge
``redis_shard.go`` uses Jump consistent hash over FNV-1a-64 as well).
"""

from __future__ import annotations

__all__ = ["fnv1a_64", "jump_hash", "ShardMap"]

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF


def fnv1a_64(data: bytes) -> int:
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return h


def jump_hash(key: int, buckets: int) -> int:
    """Lamping & Veach's jump consistent hash: a bucket in ``[0, buckets)``."""
    if buckets <= 1:
        return 0
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & _MASK
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


class ShardMap:
    """channel -> owner index for ``workers`` workers, with a bounded memo."""

    __slots__ = ("workers", "_memo", "_limit")

    def __init__(self, workers: int, memo_limit: int = 65536) -> None:
        self.workers = max(1, workers)
        self._memo: dict[str, int] = {}
        self._limit = memo_limit

    def owner(self, channel: str) -> int:
        owner = self._memo.get(channel)
        if owner is None:
            if len(self._memo) >= self._limit:
                self._memo.clear()
            owner = self._memo[channel] = jump_hash(
                fnv1a_64(channel.encode("utf-8", "surrogatepass")), self.workers
            )
        return owner
