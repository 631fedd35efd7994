"""The retry pause of a consumer: from 10 ms doubling with jitter, at most 5 s
(centrifugo ``internal/consuming/backoff.go``)."""

from __future__ import annotations

import random

MIN_BACKOFF = 0.010
MAX_BACKOFF = 5.0


def next_backoff(current: float, retries: int) -> float:
    if current >= MAX_BACKOFF:
        return MAX_BACKOFF
    jitter = random.randrange(int(MIN_BACKOFF * 1000)) / 1000
    return min((MIN_BACKOFF + jitter) * (1 << min(retries, 16)), MAX_BACKOFF)
