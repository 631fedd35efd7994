"""Which worker owns which channel's history on disk, and moving it when the worker
count changes (relay extension; ``engines/store.py`` is the log itself).

``claim_layout(dir, workers)`` runs once per node start, before any worker: ``<dir>/layout``
names the worker count and a generation; a start with another count replays every
worker's log, writes each channel's state to its new owner under a new generation, and
only then moves ``layout`` (the commit point), so a crash at any moment leaves either
the old or the new layout whole.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

from relay.engines.store import (
    IDEM,
    SNAPSHOT_CHUNK,
    STATE,
    Loaded,
    StoreError,
    StreamStore,
    _fsync_dir,
    _write_snapshot,
    pub_entry,
)

__all__ = ["claim_layout"]

log = logging.getLogger("relay.store")


def _read_layout(directory: str) -> tuple[int, int] | None:
    """(workers, generation) from ``<dir>/layout``, or None when there is none yet."""
    try:
        with open(os.path.join(directory, "layout")) as fh:
            fields = dict(part.split("=", 1) for part in fh.read().split())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise StoreError(f"{directory}/layout is not readable: {exc}") from exc
    return int(fields["workers"]), int(fields.get("generation", "0"))


def _write_layout(directory: str, workers: int, generation: int) -> None:
    path = os.path.join(directory, "layout")
    with open(path + ".tmp", "w") as fh:
        fh.write(f"workers={workers} generation={generation}\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(path + ".tmp", path)
    _fsync_dir(directory)


def _root(directory: str, generation: int) -> str:
    return directory if generation == 0 else os.path.join(directory, f"g{generation}")


def claim_layout(directory: str, workers: int, now: float | None = None) -> str:
    """The folder that holds the ``worker-<id>`` directories for ``workers`` workers.

    ``<dir>/layout`` records how many workers wrote the history (channels are hashed over
    them) and its generation. Started with another number, the history is first
    repartitioned: every stream and idempotency result is read and written as a
    snapshot into the directory of its new owner, in a new generation folder
    ``<dir>/g<G>/``; replacing ``layout`` commits it, then the old folders are deleted. A
    start interrupted at any point finds either the old or the new generation whole.
    """
    os.makedirs(directory, exist_ok=True)
    found = _read_layout(directory)
    if found is None:
        _write_layout(directory, workers, 0)
        return directory
    old_workers, generation = found
    if old_workers != workers:
        generation = _repartition(directory, old_workers, generation, workers, now)
    for name in os.listdir(directory):  # an interrupted repartition's folder
        if name[:1] == "g" and name[1:].isdigit() and int(name[1:]) != generation:
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
    return _root(directory, generation)


def _repartition(
    directory: str, old_workers: int, generation: int, workers: int, now: float | None
) -> int:
    from relay.cluster.shards import ShardMap

    started = time.monotonic()
    now = time.time() if now is None else now
    old_root, new_gen = _root(directory, generation), generation + 1
    new_root = _root(directory, new_gen)
    shutil.rmtree(new_root, ignore_errors=True)
    shards = ShardMap(workers)
    parts = [Loaded() for _ in range(workers)]
    for worker in range(old_workers):
        path = os.path.join(old_root, f"worker-{worker}")
        if not os.path.isdir(path):
            continue
        store = StreamStore(path, "none")
        loaded = store.load(now)
        store.close()
        for channel, stream in loaded.streams.items():
            parts[shards.owner(channel)].streams[channel] = stream
        for key, value in loaded.idempotency.items():
            parts[shards.owner(key[0])].idempotency[key] = value
    channels = 0
    for worker, part in enumerate(parts):
        target = os.path.join(new_root, f"worker-{worker}")
        os.makedirs(target)
        _write_snapshot(os.path.join(target, "00000001.snap"), _loaded_chunks(part))
        _fsync_dir(target)
        channels += len(part.streams)
    _fsync_dir(new_root)
    _write_layout(directory, workers, new_gen)  # the commit point
    for worker in range(old_workers):
        shutil.rmtree(os.path.join(old_root, f"worker-{worker}"), ignore_errors=True)
    if old_root != directory:
        shutil.rmtree(old_root, ignore_errors=True)
    log.warning(
        "history in %s repartitioned from %d to %d workers: %d channels in %.2f s",
        directory, old_workers, workers, channels, time.monotonic() - started,
    )  # fmt: skip
    return new_gen


def _loaded_chunks(state: Loaded) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for channel, s in state.streams.items():
        chunk.extend(pub_entry(channel, pub) for pub in s.items)
        chunk.append(
            (STATE, channel, s.epoch, s.top, len(s.items), s.items_expire, s.meta_expire,
             s.version, s.version_epoch)
        )  # fmt: skip
        if len(chunk) >= SNAPSHOT_CHUNK:
            yield chunk
            chunk = []
    for (channel, key), (offset, epoch, expire) in state.idempotency.items():
        chunk.append((IDEM, channel, key, offset, epoch, expire))
    yield chunk
