"""Quantiles that add up: a log-bucket sketch, and the age window of a Go summary.

Centrifugo's summaries report the 0.5, 0.99 and 0.999 quantiles over the last 10 minutes
(prometheus/client_golang: ``MaxAge`` 10 min in 5 age buckets). relay's workers each see
part of the traffic, so a quantile must come from observations that can be merged: each
value is counted in the bucket ``ceil(log(v) / log(GAMMA))``, and a quantile read from
the merged counts is within 1 % of the true one (relative error ``(GAMMA-1)/(GAMMA+1)``).
Counts are kept per age slot (2 minutes, ``slot_of``); a worker clears a slot when it
enters it again, so the five slots hold the last 8 to 10 minutes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = [
    "GAMMA",
    "OBJECTIVES",
    "SLOTS",
    "SLOT_SECONDS",
    "bucket_of",
    "quantiles",
    "slot_of",
    "value_of",
]

GAMMA = 1.02
OBJECTIVES = (0.5, 0.99, 0.999)
SLOTS = 5
SLOT_SECONDS = 120.0
ZERO_BUCKET = -(2**31)  # values <= 1e-12 (and negatives): reported as 0
_LOG_GAMMA = math.log(GAMMA)


def bucket_of(value: float) -> int:
    if value <= 1e-12:
        return ZERO_BUCKET
    return math.ceil(math.log(value) / _LOG_GAMMA)


def value_of(bucket: int) -> float:
    """The value that stands for a bucket: the middle of its range, in relative terms."""
    if bucket == ZERO_BUCKET:
        return 0.0
    return 2.0 * GAMMA**bucket / (GAMMA + 1.0)


def slot_of(now: float) -> int:
    """The absolute age slot of ``now`` (unix seconds)."""
    return int(now // SLOT_SECONDS)


def quantiles(
    counts: Mapping[int, float], objectives: Iterable[float] = OBJECTIVES
) -> dict[float, float]:
    """Each objective's quantile of the merged bucket counts (NaN when there are none)."""
    total = sum(counts.values())
    wanted = sorted(objectives)
    if total <= 0:
        return {q: math.nan for q in wanted}
    out: dict[float, float] = {}
    ordered = sorted((b, c) for b, c in counts.items() if c > 0)
    seen = 0.0
    it = iter(ordered)
    bucket, count = next(it)
    for q in wanted:
        rank = max(1.0, math.ceil(q * total))
        while seen + count < rank:
            seen += count
            bucket, count = next(it)
        out[q] = value_of(bucket)
    return out
