"""Recovery and positioning under arbitrary interleavings (hypothesis state machine).

One subscriber of one channel of a real ``MemoryEngine`` lives through any sequence of
publishes, lost live deliveries, disconnects, recoveries and engine restarts (a new
epoch). Live publications go through ``positions.next_publication``, recoveries through
``recovery.recovered_publications`` with a publication limit, as the client does.

The property is Centrifugo's promise: a subscriber never misses a publication silently.
Between two moments where it was told "not recovered" (or "insufficient state"), what it
received is exactly the stream, every offset once and in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from relay.engines.base import PublishOptions
from relay.engines.memory import MemoryEngine
from relay.protocol.messages import HistoryFilter, Publication, StreamPosition
from relay.protocol.positions import DELIVER, DUPLICATE, GAP, next_publication
from relay.protocol.recovery import recovered_publications

CHANNEL = "chat:1"
HISTORY = PublishOptions(history_size=6, history_ttl=3600.0)
RECOVERY_LIMIT = 4


@dataclass
class Subscriber:
    position: StreamPosition = StreamPosition(0, "")
    #: one list per stretch of consistent state: (epoch, offset, data), each beginning
    #: right after the position in ``starts`` at the same index
    segments: list[list[tuple[str, int, bytes]]] = field(default_factory=lambda: [[]])
    starts: list[StreamPosition] = field(default_factory=lambda: [StreamPosition(0, "")])
    subscribed: bool = False

    def told_state_lost(self, top: StreamPosition) -> None:
        """Not recovered / insufficient state: the app knows; a new stretch starts."""
        self.position = top
        self.segments.append([])
        self.starts.append(top)


class Interleavings(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = MemoryEngine()
        self.sub = Subscriber()
        #: every publication the engine accepted: (epoch, offset) -> data
        self.published: dict[tuple[str, int], bytes] = {}
        self.counter = 0

    # ---- the engine ---------------------------------------------------------------
    def _publish(self) -> tuple[Publication, StreamPosition]:
        self.counter += 1
        data = b"%d" % self.counter
        pub = Publication(data)
        sp, _ = self.engine.publish_sync(CHANNEL, pub, HISTORY)
        self.published[(sp.epoch, sp.offset)] = data
        return Publication(data, None, sp.offset), sp

    def _top(self) -> StreamPosition:
        return self.engine.history_sync(CHANNEL, HistoryFilter(limit=0)).position

    @rule()
    def publish_delivered(self) -> None:
        pub, sp = self._publish()
        if self.sub.subscribed:
            self._live(pub, sp.epoch)

    @rule()
    def publish_lost_in_transit(self) -> None:
        self._publish()

    @rule()
    def engine_restarts(self) -> None:
        """A new engine: every stream starts again in a new epoch."""
        self.engine = MemoryEngine()

    # ---- the subscriber -----------------------------------------------------------
    def _live(self, pub: Publication, epoch: str) -> None:
        position = self.sub.position
        verdict = next_publication(position.offset, position.epoch, pub.offset, epoch)
        if verdict == DELIVER:
            self.sub.segments[-1].append((epoch, pub.offset, pub.data))
            self.sub.position = StreamPosition(pub.offset, epoch)
        elif verdict == GAP:  # insufficient state: unsubscribed with 2500, resubscribes
            self.sub.subscribed = False
            self.sub.told_state_lost(self._top())
        else:
            assert verdict == DUPLICATE

    @precondition(lambda self: not self.sub.subscribed)
    @rule()
    def subscribe_fresh(self) -> None:
        """Subscribe without recovery: the stream's top is the starting position."""
        self.sub.told_state_lost(self._top())
        self.sub.subscribed = True

    @precondition(lambda self: self.sub.subscribed)
    @rule()
    def disconnect(self) -> None:
        self.sub.subscribed = False

    @precondition(lambda self: not self.sub.subscribed and self.sub.position.epoch != "")
    @rule(limit=st.sampled_from([RECOVERY_LIMIT, 100]))
    def resubscribe_recovering(self, limit: int) -> None:
        since = self.sub.position
        top = self._top()
        if since.epoch != top.epoch:
            pubs: list[Publication] = []
        else:
            read = self.engine.history_sync(CHANNEL, HistoryFilter(since=since, limit=limit))
            pubs = read.publications
        sent, recovered = recovered_publications(since, pubs, top)
        if recovered:
            for pub in sent:
                self.sub.segments[-1].append((top.epoch, pub.offset, pub.data))
            self.sub.position = top
        else:
            assert not sent  # never a partial recovery
            self.sub.told_state_lost(top)
        self.sub.subscribed = True

    # ---- the property -------------------------------------------------------------
    @invariant()
    def every_stretch_is_the_stream(self) -> None:
        for start, segment in zip(self.sub.starts, self.sub.segments, strict=True):
            for epoch, offset, data in segment:
                assert self.published[(epoch, offset)] == data
            expected = (start.epoch, start.offset + 1)
            for epoch, offset, _ in segment:  # no gap, no duplicate, from where it began
                assert (epoch, offset) == expected, (start, segment)
                expected = (epoch, offset + 1)

    @invariant()
    def a_subscribed_position_is_exact(self) -> None:
        segment = self.sub.segments[-1]
        if self.sub.subscribed and segment:
            assert segment[-1][:2] == (self.sub.position.epoch, self.sub.position.offset)


def test_no_publication_is_ever_missed_silently() -> None:
    run_state_machine_as_test(
        Interleavings, settings=settings(max_examples=300, stateful_step_count=40, deadline=None)
    )
