"""Whether a subscription recovered, from what the stream returned (pure).

Centrifugo never reports a partial recovery (centrifuge ``client.go``,
``isStreamRecovered``; spec client-protocol §7.5): either every publication after the
client's position comes back, in order, up to the stream top, or ``recovered`` is false
and none is returned.
"""

from __future__ import annotations

from relay.protocol.messages import Publication, StreamPosition

__all__ = ["recovered_publications"]


def recovered_publications(
    since: StreamPosition, pubs: list[Publication], top: StreamPosition, cache_mode: bool = False
) -> tuple[list[Publication], bool]:
    """The publications to send and whether the recovery succeeded.

    ``pubs`` is the stream read after ``since`` (oldest first, possibly cut by the
    recovery limit); in cache mode it is the latest publication alone.
    """
    if since.epoch and since.epoch != top.epoch:
        return [], False
    if cache_mode:
        if top.offset == since.offset:
            return [], True
        return pubs, bool(pubs)
    if not pubs:
        return [], top.offset == since.offset
    complete = pubs[0].offset == since.offset + 1 and pubs[-1].offset == top.offset
    return (pubs, True) if complete else ([], False)
