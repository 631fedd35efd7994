"""A shard owner's history on local disk: an append-only segment log (relay extension).

Used by ``engines/persistent.py`` when ``engine.memory.persistence.dir`` is set. The
in-memory streams stay the index every read is served from; this log only has to
rebuild them after a restart.

Layout of one owner's directory (``<dir>/worker-<id>/``):

* ``NNNNNNNN.log`` segments, appended to in order; only the newest is written.
* ``NNNNNNNN.snap``: the retained state as it was when segment ``NNNNNNNN`` began
  (written by a compaction); a start replays the newest snapshot, then the segments
  numbered from it up.
* A segment or snapshot is a sequence of records ``[u32 length][u32 crc32(payload)]
  [payload]`` (little endian), ``payload`` one msgpack array of entries: one record per
  commit (a publish, a batch, a snapshot chunk), so the CRC and the write are paid per
  group, not per publication.

Entries and their replay: ``engines/store_records.py``.

Guarantees:

1. A record is applied whole or not at all (CRC over the payload, length first).
2. Reading stops at the first record that is short, fails its CRC or does not decode;
   the file is cut there (a warning says how many bytes were dropped), so a torn tail
   after a power loss or kill costs only the unfinished record and never stops a start.
3. A compaction moves appends to a new segment, and a forked child writes the state of
   that instant (its copy-on-write memory) to a temporary file and fsyncs it; only then
   is it renamed into place and are older files deleted. At every instant the directory
   replays to the state of the last completed commit, and the event loop never waits
   for a snapshot to be written.
4. ``append`` either writes the whole record or leaves the file as it was (a short
   write is cut back) and raises ``StoreError``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, Literal

from relay.engines.store_records import (
    IDEM,
    PUB,
    SNAPSHOT,
    STATE,
    Loaded,
    LoadedStream,
    encode_record,
    prune,
    pub_entry,
    replay,
    scan_records,
)

__all__ = [
    "PUB",
    "STATE",
    "IDEM",
    "SNAPSHOT",
    "SyncPolicy",
    "StoreError",
    "LoadedStream",
    "Loaded",
    "StreamStore",
    "encode_record",
    "scan_records",
    "pub_entry",
    "replay",
]

log = logging.getLogger("relay.store")

SyncPolicy = Literal["interval", "always", "none"]

#: Compact once the log holds this much more than the last snapshot (and twice it).
COMPACT_MIN_BYTES = 16 * 1024 * 1024
#: Snapshot records carry at most this many entries each.
SNAPSHOT_CHUNK = 20_000


class StoreError(Exception):
    """The log could not be written (disk full, quota, I/O error)."""


def _files(directory: str, suffix: str) -> list[tuple[int, str]]:
    """``(number, path)`` of the files ``NNNNNNNN<suffix>``, in order."""
    out = []
    for name in os.listdir(directory):
        stem = name[: -len(suffix)]
        if name.endswith(suffix) and stem.isdigit():
            out.append((int(stem), os.path.join(directory, name)))
    return sorted(out)


def _write_snapshot(path: str, chunks: Iterator[list[Any]]) -> None:
    """Write ``chunks`` as records (the first one led by ``SNAPSHOT``) and fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        first = [(SNAPSHOT,)]
        for chunk in chunks:
            view = memoryview(encode_record(first + chunk))
            first = []
            while view:
                view = view[os.write(fd, view) :]
        if first:
            os.write(fd, encode_record(first))
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StreamStore:
    """One owner's log: load once, then append records; compaction and fsync policy.

    ``sync``: ``always`` fdatasyncs before ``append`` returns; ``interval`` (default) from
    a background thread at most ``sync_interval`` seconds after a write; ``none`` leaves it
    to the OS. Every policy has written the record to the OS before ``append`` returns, so a
    killed process loses nothing that was acknowledged; the policy bounds what a power
    loss or kernel crash can take.
    """

    def __init__(
        self, directory: str, sync: SyncPolicy = "interval", sync_interval: float = 1.0
    ) -> None:
        self.directory = directory
        self.sync = sync
        self.sync_interval = sync_interval
        self._fd = -1
        self._seq = 0
        self._size = 0  # bytes in the active segment
        self._grown = 0  # bytes appended since the point of the last snapshot
        self._compacting: tuple[int, int] | None = None  # (child pid, segment number)
        self._snapshot_bytes = 0  # bytes of the snapshot that began the active segment
        self._unsynced = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failed = False  # the last append failed (logged once until one succeeds)

    # ---- load ----------------------------------------------------------------------
    def load(self, now: float) -> Loaded:
        """Replay the directory (cutting a bad tail), open the newest segment for append.

        Replays the newest snapshot ``S.snap`` and then the segments numbered ``S`` and
        up, in order; older files are what a finished compaction left to delete.

        Also ignores SIGXFSZ (when called on the main thread): a file-size limit
        (``RLIMIT_FSIZE``, a quota) then makes a write fail with EFBIG, which fails the
        publish, instead of killing the process.
        """
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        except ValueError:
            pass
        os.makedirs(self.directory, exist_ok=True)
        for name in os.listdir(self.directory):
            if name.endswith(".tmp"):
                os.unlink(os.path.join(self.directory, name))  # an unfinished compaction
        snaps = _files(self.directory, ".snap")
        base = snaps[-1][0] if snaps else 0
        state = Loaded()
        if snaps:
            replay(self._read(snaps[-1][1]), state)
            self._snapshot_bytes = os.path.getsize(snaps[-1][1])
        self._remove_before(base)
        segments = [(seq, path) for seq, path in _files(self.directory, ".log") if seq >= base]
        for seq, path in segments:
            replay(self._read(path), state)
            self._seq, self._size = seq, os.path.getsize(path)
            self._grown += self._size
        if not segments:
            self._seq, self._size = max(base, 1), 0
        path = os.path.join(self.directory, f"{self._seq:08d}.log")
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if not segments:
            _fsync_dir(self.directory)
        return prune(state, now)

    def _read(self, path: str) -> list[list[list[Any]]]:
        with open(path, "rb") as fh:
            buf = fh.read()
        records, end = scan_records(buf)
        if end < len(buf):
            log.warning(
                "history log %s: cut at byte %d (%d bytes of a torn or corrupt record "
                "dropped)", path, end, len(buf) - end,
            )  # fmt: skip
            with open(path, "r+b") as fh:
                fh.truncate(end)
                os.fsync(fh.fileno())
        return records

    def _remove_before(self, seq: int) -> None:
        """Delete the segments and snapshots that the snapshot ``seq`` supersedes."""
        for suffix in (".log", ".snap"):
            for old, path in _files(self.directory, suffix):
                if old < seq:
                    os.unlink(path)

    def start_sync_thread(self) -> None:
        if self.sync == "interval" and self._thread is None:
            self._thread = threading.Thread(
                target=self._sync_loop, name="relay-store-sync", daemon=True
            )
            self._thread.start()

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.sync_interval):
            self.flush()

    def flush(self) -> None:
        """fdatasync the active segment if anything was written since the last one."""
        with self._lock:
            if self._unsynced and self._fd >= 0:
                self._unsynced = False
                try:
                    os.fdatasync(self._fd)
                except OSError as exc:
                    log.error("history log fsync failed: %s", exc)

    # ---- append --------------------------------------------------------------------
    def append(self, entries: list[Any]) -> None:
        """Write one record; on failure the file is left as it was and StoreError raised."""
        record = encode_record(entries)
        fd = self._fd
        try:
            written = os.write(fd, record)
            while written < len(record):
                written += os.write(fd, record[written:])
        except OSError as exc:
            try:
                os.ftruncate(fd, self._size)
            except OSError:
                pass
            if not self.failed:
                self.failed = True
                log.error("history log write failed, publishes get error 100: %s", exc)
            raise StoreError(str(exc)) from exc
        if self.failed:
            self.failed = False
            log.warning("history log writable again")
        self._size += len(record)
        self._grown += len(record)
        if self.sync == "always":
            os.fdatasync(fd)
        else:
            self._unsynced = True

    @property
    def size(self) -> int:
        """Bytes in the active segment."""
        return self._size

    @property
    def grown(self) -> int:
        """Bytes appended since the last snapshot's point (all segments replayed after it)."""
        return self._grown

    def should_compact(self) -> bool:
        grown = self._grown
        return (
            self._compacting is None
            and grown > COMPACT_MIN_BYTES
            and grown > 2 * self._snapshot_bytes
        )

    # ---- compaction ----------------------------------------------------------------
    def compact(self, chunks: Callable[[], Iterator[list[Any]]], wait: bool = False) -> bool:
        """Start a compaction: appends move to a new segment ``N``, and a forked child
        writes ``chunks()`` (the state as of now, read from its copy-on-write memory) to
        ``N.snap.tmp`` and fsyncs it; ``poll_compaction`` renames it into place and
        deletes what it supersedes. The event loop never waits for the snapshot.

        Returns False if one is running already or the new segment cannot be made.
        """
        if self._compacting is not None:
            return False
        seq = self._seq + 1
        try:
            fd = os.open(
                os.path.join(self.directory, f"{seq:08d}.log"),
                os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600,
            )  # fmt: skip
            _fsync_dir(self.directory)
        except OSError as exc:
            log.error("history log compaction not started: %s", exc)
            return False
        with self._lock:
            old, self._fd = self._fd, fd
            if self._unsynced and old >= 0:
                os.fdatasync(old)  # what the old segment holds is durable before it ends
            self._unsynced = False
        if old >= 0:
            os.close(old)
        self._seq, self._size, self._grown = seq, 0, 0
        tmp = os.path.join(self.directory, f"{seq:08d}.snap.tmp")
        pid = os.fork()
        if pid == 0:  # the child: write, fsync, exit; never returns
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                _write_snapshot(tmp, chunks())
                code = 0
            finally:
                os._exit(code)
        self._compacting = (pid, seq)
        if wait:
            while self._compacting is not None:
                self.poll_compaction(block=True)
        return True

    def poll_compaction(self, block: bool = False) -> None:
        """Finish a compaction whose child exited: rename the snapshot, drop old files."""
        if self._compacting is None:
            return
        pid, seq = self._compacting
        done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        if not done:
            return
        self._compacting = None
        tmp = os.path.join(self.directory, f"{seq:08d}.snap.tmp")
        if os.waitstatus_to_exitcode(status) != 0:
            log.error("history log compaction failed (snapshot child exited with %s)", status)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return
        final = tmp[: -len(".tmp")]
        try:
            os.rename(tmp, final)
            _fsync_dir(self.directory)
        except OSError as exc:
            log.error("history log compaction not finished: %s", exc)
            return
        self._remove_before(seq)
        self._snapshot_bytes = os.path.getsize(final)
        log.info("history log compacted: snapshot %s, %d bytes", final, self._snapshot_bytes)

    def close(self) -> None:
        """Stop the sync thread, fsync and close (after this, appends fail)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            if self._fd >= 0:
                try:
                    os.fdatasync(self._fd)
                except OSError as exc:
                    log.error("history log fsync at close failed: %s", exc)
                finally:
                    os.close(self._fd)
                    self._fd = -1
