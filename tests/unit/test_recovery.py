"""The recovery decision: all missed publications up to the top, or none."""

from __future__ import annotations

import pytest

from relay.protocol.messages import Publication, StreamPosition
from relay.protocol.recovery import recovered_publications


def pubs(*offsets: int) -> list[Publication]:
    return [Publication(b"1", offset=o) for o in offsets]


@pytest.mark.parametrize(
    ("since", "stream", "top", "expected"),
    [
        ((5, "e"), (), (5, "e"), ((), True)),  # nothing missed
        ((0, ""), (), (0, "e"), ((), True)),  # empty stream, no epoch yet on the client
        ((3, "e"), (4, 5), (5, "e"), ((4, 5), True)),  # every missed one comes back
        ((3, ""), (4, 5), (5, "e"), ((4, 5), True)),  # client without epoch: offsets decide
        ((3, "old"), (4, 5), (5, "e"), ((), False)),  # the stream was reset
        ((1, "e"), (4, 5), (5, "e"), ((), False)),  # 2 and 3 fell out of retention
        ((3, "e"), (4,), (5, "e"), ((), False)),  # cut by the recovery limit: never partial
        ((7, "e"), (), (5, "e"), ((), False)),  # client ahead of the stream
        ((3, "e"), (), (5, "e"), ((), False)),  # publications expired (history TTL)
    ],
)
def test_stream_recovery(
    since: tuple[int, str], stream: tuple[int, ...], top: tuple[int, str], expected: tuple
) -> None:
    got, ok = recovered_publications(StreamPosition(*since), pubs(*stream), StreamPosition(*top))
    assert ([p.offset for p in got], ok) == (list(expected[0]), expected[1])


def test_cache_mode_returns_the_latest_publication() -> None:
    latest = pubs(9)
    assert recovered_publications(StreamPosition(9, "e"), latest, StreamPosition(9, "e"), True) == (
        [],
        True,
    )
    got, ok = recovered_publications(StreamPosition(3, "e"), latest, StreamPosition(9, "e"), True)
    assert ok and [p.offset for p in got] == [9]
    assert recovered_publications(StreamPosition(3, "e"), [], StreamPosition(9, "e"), True) == (
        [],
        False,
    )
