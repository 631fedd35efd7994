"""The sharded engine's wire tuples round-trip, and the bus keeps order per link.

The bus test runs two real ``Bus`` ends over ZeroMQ ``ipc://`` in one event loop.
"""

from __future__ import annotations

import asyncio
import pickle
import tempfile
from typing import Any

from relay.cluster.bus import Bus
from relay.engines.base import PublishOptions
from relay.engines.wire import (
    items_from_wire,
    items_to_wire,
    outcomes_from_wire,
    outcomes_to_wire,
    pub_from_wire,
    pub_to_wire,
)
from relay.errors import ERROR_INTERNAL, ReplyError
from relay.protocol.messages import ClientInfo, Publication, StreamPosition

PUBS = [
    Publication(b'{"a":1}'),
    Publication(b"\x00bin", ClientInfo("u", "c", b'{"x":1}', None), 7, {"t": "v"}, 123, False),
]


def test_publications_round_trip_through_pickle() -> None:
    for pub in PUBS:
        assert pub_from_wire(pickle.loads(pickle.dumps(pub_to_wire(pub)))) == pub


def test_items_share_their_options_table() -> None:
    a, b = PublishOptions(history_size=10, history_ttl=60.0), PublishOptions()
    items = [("x", PUBS[0], a), ("y", PUBS[1], b), ("x", PUBS[0], a)]
    wire = items_to_wire(items)
    assert wire[2] == [a, b] and wire[3] == [0, 1, 0]
    assert items_from_wire(pickle.loads(pickle.dumps(wire))) == items


def test_outcomes_round_trip_with_errors() -> None:
    outcomes = [(StreamPosition(3, "ep"), False), ReplyError(ERROR_INTERNAL)]
    back = outcomes_from_wire(pickle.loads(pickle.dumps(outcomes_to_wire(outcomes))))
    assert back[0] == (StreamPosition(3, "ep"), False)
    assert isinstance(back[1], ReplyError) and back[1].error.code == 100


async def test_queued_items_leave_as_one_message_before_later_casts() -> None:
    with tempfile.TemporaryDirectory() as ipc:
        a, b = Bus(0, 2, ipc), Bus(1, 2, ipc)
        got: list[Any] = []
        done = asyncio.Event()
        b.on("events", lambda sender, items: got.append(("events", sender, items)))
        b.on("other", lambda sender, n: got.append(("other", sender, n)))
        b.on("end", lambda sender: done.set())
        a.start()
        b.start()
        try:
            a.queue(1, "events", 1)
            a.queue(1, "events", 2)
            a.cast(1, "other", 3)  # flushes the queued items first
            a.queue(1, "events", 4)
            await asyncio.sleep(0)  # end of turn: the second message leaves
            a.cast(1, "end")
            await asyncio.wait_for(done.wait(), 5)
        finally:
            a.close()
            b.close()
    assert got == [("events", 0, [1, 2]), ("other", 0, 3), ("events", 0, [4])]
    assert b.counters["gaps"] == 0
