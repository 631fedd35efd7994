"""Positioning: what a positioned subscription does with the next publication (pure).

Centrifugo tracks each positioned subscription's last offset (centrifuge ``client.go``,
``handleInsufficientState``; spec client-protocol §7.6): the next offset is delivered, an
older one is a duplicate, and a jump or another epoch means publications were missed,
which the client must hear about (unsubscribe 2500 / disconnect 3010), never silently.
"""

from __future__ import annotations

import enum

__all__ = ["Verdict", "DELIVER", "DUPLICATE", "GAP", "next_publication"]


class Verdict(enum.IntEnum):
    DELIVER = 0
    DUPLICATE = 1
    GAP = 2


DELIVER, DUPLICATE, GAP = Verdict


def next_publication(last_offset: int, last_epoch: str, offset: int, epoch: str) -> Verdict:
    """Judge publication ``offset`` of stream ``epoch`` after ``last_offset``/``last_epoch``.

    An empty epoch on either side (a publication from an engine that does not report it,
    or a subscription that never read the stream) compares offsets only.
    """
    if epoch and last_epoch and epoch != last_epoch:
        return GAP
    if offset <= last_offset:
        return DUPLICATE
    return DELIVER if offset == last_offset + 1 else GAP
