"""Positioned delivery: next offset delivered, older dropped, jumps and new epochs flagged."""

from __future__ import annotations

import pytest

from relay.protocol.positions import DELIVER, DUPLICATE, GAP, Verdict, next_publication


@pytest.mark.parametrize(
    ("last", "pub", "verdict"),
    [
        ((4, "e"), (5, "e"), DELIVER),
        ((0, "e"), (1, "e"), DELIVER),
        ((4, "e"), (4, "e"), DUPLICATE),
        ((4, "e"), (2, "e"), DUPLICATE),
        ((4, "e"), (6, "e"), GAP),
        ((4, "e"), (5, "other"), GAP),  # the stream was reset under the subscriber
        ((4, "e"), (1, "other"), GAP),  # even when the new offset looks old
        ((4, ""), (5, "e"), DELIVER),  # no epoch known: offsets decide
        ((4, "e"), (5, ""), DELIVER),
    ],
)
def test_next_publication(last: tuple[int, str], pub: tuple[int, str], verdict: Verdict) -> None:
    assert next_publication(last[0], last[1], pub[0], pub[1]) is verdict
