"""Value types shared by the protocol core, the engines and the hub.

``to_dict`` gives the schema-shaped dict the codecs encode (``protocol/schema.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "ClientInfo",
    "Publication",
    "StreamPosition",
    "make_position",
    "HistoryFilter",
    "HistoryResult",
]


@dataclass(slots=True)
class ClientInfo:
    """Who published, joined or left: user id, client id and raw JSON infos."""

    user: str
    client: str
    conn_info: bytes | None = None
    chan_info: bytes | None = None

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"user": self.user, "client": self.client}
        if self.conn_info:
            d["conn_info"] = self.conn_info
        if self.chan_info:
            d["chan_info"] = self.chan_info
        return d


@dataclass(slots=True)
class Publication:
    """One message in a channel.

    ``data_json`` tells whether ``data`` holds valid compact JSON (so it can go to
    JSON-protocol clients); binary payloads from Protobuf clients or ``b64data`` may not.
    """

    data: bytes
    info: ClientInfo | None = None
    offset: int = 0
    tags: dict[str, str] | None = None
    time: int = 0
    data_json: bool = True
    #: published with ``delta: true`` (or in a ``delta_publish`` namespace): subscribers
    #: that negotiated fossil deltas may get it as a delta against the previous
    #: publication. Carried with the publication through the engines, as Centrifugo's
    #: Redis broker carries it in ``Publication.delta``; never written to clients as is.
    delta: bool = False
    #: the concrete channel of a publication delivered to a wildcard subscription (the
    #: NATS broker with ``allow_wildcards``); "" otherwise
    channel: str = ""

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"data": self.data}
        if self.info is not None:
            d["info"] = self.info.to_dict()
        if self.offset:
            d["offset"] = self.offset
        if self.tags:
            d["tags"] = self.tags
        if self.time:
            d["time"] = self.time
        if self.channel:
            d["channel"] = self.channel
        return d


class StreamPosition(NamedTuple):
    """A position in a channel's history stream: top offset and epoch (a tuple: one is
    made per publication, and a tuple is the cheapest immutable value to build)."""

    offset: int
    epoch: str


#: ``make_position(StreamPosition, (offset, epoch))`` builds one without the NamedTuple's
#: Python-level ``__new__`` (for hot loops)
make_position = tuple.__new__


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """What a history read returns: ``limit`` 0 = position only, -1 = everything."""

    since: StreamPosition | None = None
    limit: int = 0
    reverse: bool = False


@dataclass(slots=True)
class HistoryResult:
    publications: list[Publication] = field(default_factory=list)
    position: StreamPosition = StreamPosition(0, "")
