"""The engine interface: broker (pub/sub + history streams) and presence manager.

Modelled on centrifugal/centrifuge ``broker.go`` and ``presence.go``. Sibling
implementations live next to this file (``memory.py``; ``redis.py`` later) and one
contract suite runs against each.

Guarantees every engine gives:

1. Per channel, publications are delivered to the event handler in offset order;
   offsets start at 1 and grow by one within an epoch.
2. A history read and the position it reports are consistent: the publications
   returned all have offsets <= the reported top offset.
3. ``publish`` returns only after the publication is in the stream (when history is
   on); a failure raises, it never reports a false success.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from relay.errors import ReplyError
from relay.protocol.messages import (
    ClientInfo,
    HistoryFilter,
    HistoryResult,
    Publication,
    StreamPosition,
)

__all__ = ["stale_version", "PublishOptions", "EventHandler", "Broker", "PresenceManager", "Engine"]


@dataclass(frozen=True, slots=True)
class PublishOptions:
    """How one publication is kept: history retention and idempotency."""

    history_size: int = 0
    history_ttl: float = 0.0
    history_meta_ttl: float = 0.0
    idempotency_key: str = ""
    #: the publisher's version of the channel's state (``version``/``version_epoch`` of the
    #: API): with history, a version not above the stream's last one (same version epoch,
    #: or none given) is suppressed, as centrifuge's brokers do
    version: int = 0
    version_epoch: str = ""


def stale_version(opts: PublishOptions, version: int, version_epoch: str) -> bool:
    """Whether ``opts`` carries a version not above a stream's last one (``version``,
    ``version_epoch``): same version epoch, or none given (centrifuge's rule)."""
    if opts.version <= 0 or (opts.version_epoch and opts.version_epoch != version_epoch):
        return False
    return opts.version <= version


#: why an engine suppressed a publication (the second element of a publish outcome;
#: "" when it was not), as the ``reason`` label of centrifugo_broker_publish_suppressed_count
SUPPRESSED_IDEMPOTENCY = "idempotency"
SUPPRESSED_VERSION = "version"


class EventHandler(Protocol):
    """What an engine calls when something arrives for a channel (the node)."""

    def handle_publication(self, channel: str, pub: Publication, sp: StreamPosition) -> None:
        """A publication, delivered once per subscribed node, in offset order."""

    def handle_publications(self, batch: Sequence[tuple[str, Publication, StreamPosition]]) -> None:
        """A batch's publications in order: as ``handle_publication`` for each."""

    def handle_join(self, channel: str, info: ClientInfo) -> None:
        """A client joined ``channel``."""

    def handle_leave(self, channel: str, info: ClientInfo) -> None:
        """A client left ``channel``."""


class Broker(Protocol):
    def set_event_handler(self, handler: EventHandler) -> None:
        """Called once before anything else."""

    async def publish(
        self, channel: str, pub: Publication, opts: PublishOptions
    ) -> tuple[StreamPosition, str]:
        """Append to the stream (if history is on) and deliver.

        Returns the position of the publication and why it was suppressed ("" if it was
        not; ``SUPPRESSED_IDEMPOTENCY`` for a repeat, ``SUPPRESSED_VERSION`` for a stale
        version: then it was not delivered and the position is the stream's top).
        """

    async def publish_many(
        self, items: Sequence[tuple[str, Publication, PublishOptions]]
    ) -> list[tuple[StreamPosition, str] | ReplyError]:
        """Publish a batch in order; per-item failures are returned, not raised.

        The engine takes ownership of the ``Publication`` objects (it may store them).
        """

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        """Deliver a join event to the channel's subscribers."""

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        """Deliver a leave event to the channel's subscribers."""

    async def subscribe(self, channel: str) -> None:
        """This node has its first local subscriber of ``channel``."""

    async def unsubscribe(self, channel: str) -> None:
        """This node lost its last local subscriber of ``channel``."""

    async def history(
        self, channel: str, flt: HistoryFilter, meta_ttl: float = 0.0
    ) -> HistoryResult:
        """Read the stream; creates the epoch if the channel has none yet.

        Raises ``ReplyError(ERROR_UNRECOVERABLE_POSITION)`` when ``flt.since.epoch``
        is set and differs from the current epoch.
        """

    async def remove_history(self, channel: str) -> None:
        """Drop the stream's publications, keep its position."""


class PresenceManager(Protocol):
    async def add_presence(self, channel: str, client_id: str, info: ClientInfo) -> None:
        """Add or refresh one entry."""

    async def remove_presence(self, channel: str, client_id: str, user: str) -> None:
        """Remove one entry."""

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        """All entries of ``channel``: client id -> info."""

    async def presence_stats(self, channel: str) -> tuple[int, int]:
        """(number of clients, number of distinct users)."""


class Engine(Broker, PresenceManager, Protocol):
    """A broker and a presence manager in one object, plus lifecycle."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...
