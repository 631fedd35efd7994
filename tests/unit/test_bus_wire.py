"""The sharded engine's wire tuples round-trip, and the bus keeps order per link.

The bus tests run two real ``Bus`` ends over a socket pair in one event loop.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
from typing import Any

import pytest

from relay.cluster.bus import Bus, BusError
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
    # options travel as plain tuples, one per distinct options object
    assert wire[2] == [(10, 60.0, 0.0, "", 0, ""), (0, 0.0, 0.0, "", 0, "")] and wire[3] == [
        0,
        1,
        0,
    ]
    assert items_from_wire(pickle.loads(pickle.dumps(wire))) == items
    assert type(outcomes_from_wire(outcomes_to_wire([(StreamPosition(1, "e"), False)]))[0][0]) is (
        StreamPosition
    )


def test_outcomes_round_trip_with_errors() -> None:
    outcomes = [(StreamPosition(3, "ep"), False), ReplyError(ERROR_INTERNAL)]
    back = outcomes_from_wire(pickle.loads(pickle.dumps(outcomes_to_wire(outcomes))))
    assert back[0] == (StreamPosition(3, "ep"), False)
    assert isinstance(back[1], ReplyError) and back[1].error.code == 100


def _pair() -> tuple[Bus, Bus]:
    a_end, b_end = socket.socketpair()
    return Bus(0, 2, {1: a_end}), Bus(1, 2, {0: b_end})


async def test_queued_items_leave_as_one_message_before_later_casts() -> None:
    a, b = _pair()
    got: list[Any] = []
    done = asyncio.Event()
    b.on("events", lambda sender, items: got.append(("events", sender, items)))
    b.on("other", lambda sender, n: got.append(("other", sender, n)))
    b.on("end", lambda sender: done.set())
    await a.start()
    await b.start()
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


async def test_requests_large_messages_and_remote_errors() -> None:
    a, b = _pair()
    b.serve("echo", lambda sender, blob: (sender, len(blob), blob[-3:]))
    b.serve("fail", lambda sender: 1 / 0)
    await a.start()
    await b.start()
    try:
        blob = b"x" * 5_000_000 + b"end"  # many socket reads for one message
        assert await a.request(1, "echo", blob) == (0, len(blob), b"end")
        with pytest.raises(ZeroDivisionError):  # the remote exception comes back
            await a.request(1, "fail")
    finally:
        a.close()
        b.close()


async def test_a_restarted_peer_gets_what_was_sent_before_its_link_arrived() -> None:
    a, b = _pair()
    await a.start()
    await b.start()
    b.close()  # b "dies"; a learns of b's new life before it has the new link
    a.peer_restarted(1, 1)
    a_end, b_end = socket.socketpair()
    got: list[Any] = []
    done = asyncio.Event()
    b2 = Bus(1, 2, {0: b_end}, generation=1)
    b2.on("hello", lambda sender, n: (got.append(n), done.set()))
    a.cast(1, "hello", 7)  # waits in a's queue for the link
    await b2.start()
    await a.attach(1, a_end)
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        a.close()
        b2.close()
    assert got == [7]
    with pytest.raises(BusError):  # a closed bus answers nothing
        await a.request(1, "nothing", timeout=0.01)
