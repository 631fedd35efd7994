"""The history log (engines/store.py) and the persistent memory engine, on real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from relay.engines.base import PublishOptions
from relay.engines.persistent import PersistentMemoryEngine
from relay.engines.store import (
    STATE,
    StreamStore,
    encode_record,
    pub_entry,
    replay,
    scan_records,
)
from relay.engines.store_layout import claim_layout
from relay.errors import ReplyError
from relay.protocol.messages import ClientInfo, HistoryFilter, Publication, StreamPosition

OPTS = PublishOptions(history_size=3, history_ttl=60.0, history_meta_ttl=3600.0)
ALL = HistoryFilter(limit=-1)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def engine(path: Path, clock: Clock, sync: str = "none") -> PersistentMemoryEngine:
    store = StreamStore(str(path), sync, 0.05)  # type: ignore[arg-type]
    return PersistentMemoryEngine(store, clock=clock, wall=lambda: clock.t + 1.7e9)


def pub(data: bytes, **kw: object) -> Publication:
    return Publication(data, **kw)  # type: ignore[arg-type]


def test_records_round_trip_and_a_torn_tail_is_cut_at_the_last_valid_record() -> None:
    a = encode_record([pub_entry("ch", pub(b"1", offset=1))])
    b = encode_record([(STATE, "ch", "E", 1, 1, 10.0, 20.0)])
    records, end = scan_records(a + b)
    assert end == len(a + b) and len(records) == 2
    for cut in range(1, len(b)):
        records, end = scan_records(a + b[:cut])
        assert end == len(a) and len(records) == 1
    flipped = bytearray(a + b)
    flipped[len(a) + 9] ^= 0x40  # one payload byte of the second record
    assert scan_records(bytes(flipped))[1] == len(a)


def test_replay_keeps_the_retained_tail_and_the_epoch() -> None:
    records = [
        [pub_entry("ch", pub(b"%d" % i, offset=i)) for i in (1, 2, 3)]
        + [(STATE, "ch", "E1", 3, 2, 10.0, 20.0)],
        [pub_entry("ch", pub(b"1", offset=1)), (STATE, "ch", "E2", 1, 1, 10.0, 20.0)],
    ]
    state = replay(records[:1])
    assert [p.offset for p in state.streams["ch"].items] == [2, 3]
    state = replay(records)
    assert state.streams["ch"].epoch == "E2" and state.streams["ch"].top == 1


async def test_restart_keeps_epoch_offsets_history_and_idempotency(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    info = ClientInfo("u", "c", b'{"a":1}', None)
    first = e.publish_sync("ch", pub(b'"a"', info=info, tags={"k": "v"}, time=5), OPTS)
    e.publish_sync("bin", pub(b"\x00\xff", data_json=False, delta=True), OPTS)
    batch = [("ch", pub(b'"%d"' % i), OPTS) for i in range(4)]
    batch.append(("other", pub(b'"x"'), OPTS))
    e.publish_many_sync(batch)
    idem = PublishOptions(3, 60.0, 3600.0, idempotency_key="key-1")
    sp, dup = e.publish_sync("idem", pub(b'"i"'), idem)
    empty = e.history_sync("empty", HistoryFilter())  # a read creates an epoch: persisted
    names = ("ch", "other", "idem", "empty", "bin")
    before = {ch: e.history_sync(ch, ALL) for ch in names}
    # no close(): what a kill leaves behind
    e2 = engine(tmp_path, clock)
    after = {ch: e2.history_sync(ch, ALL) for ch in names}
    assert after == before
    assert after["bin"].publications[0].delta and not after["bin"].publications[0].data_json
    assert after["ch"].position == StreamPosition(5, first[0].epoch)
    assert [p.data for p in after["ch"].publications] == [b'"1"', b'"2"', b'"3"']
    assert after["empty"].position == empty.position
    assert e2.publish_sync("idem", pub(b'"i"'), idem) == (sp, "idempotency")
    assert e2.publish_sync("ch", pub(b'"n"'), OPTS)[0] == StreamPosition(6, first[0].epoch)
    await e2.close()


async def test_publish_versions_survive_a_restart_and_a_compaction(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    versioned = PublishOptions(history_size=3, history_ttl=60.0, version=7, version_epoch="v")
    sp, why = e.publish_sync("ch", pub(b'"7"'), versioned)
    assert why == ""
    e2 = engine(tmp_path, clock)  # no close(): from the log
    assert e2.publish_sync("ch", pub(b'"x"'), versioned) == (sp, "version")
    assert e2.compact(wait=True)
    await e2.close()
    e3 = engine(tmp_path, clock)  # from the snapshot
    older = PublishOptions(history_size=3, history_ttl=60.0, version=6)
    assert e3.publish_sync("ch", pub(b'"6"'), older) == (sp, "version")
    assert [p.data for p in e3.history_sync("ch", ALL).publications] == [b'"7"']
    await e3.close()


async def test_retention_holds_across_restart_and_compaction_bounds_the_log(
    tmp_path: Path,
) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    for _ in range(200):
        e.publish_many_sync([(f"c{j}", pub(b"x" * 100), OPTS) for j in range(10)])
    grown = e.store.size
    assert e.compact(wait=True)
    snap = tmp_path / "00000002.snap"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000002.log", snap.name]
    assert snap.stat().st_size < grown / 20  # 10 channels x 3 kept of 2,000 written
    e.publish_sync("c0", pub(b"y"), OPTS)
    clock.t += 61  # history_ttl passed: items go, positions stay
    e2 = engine(tmp_path, clock)
    res = e2.history_sync("c0", ALL)
    assert res.publications == [] and res.position.offset == 201
    await e2.close()


async def test_publishes_during_a_compaction_and_a_restart_before_it_ends_are_kept(
    tmp_path: Path,
) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    for i in range(10):
        e.publish_sync("ch", pub(b"%d" % i), OPTS)
    assert e.compact()  # the child writes the snapshot; appends go to segment 2 meanwhile
    e.publish_sync("ch", pub(b"during"), OPTS)
    pid = e.store._compacting[0]  # type: ignore[index]
    os.waitpid(pid, 0)  # the child is done, but the snapshot was never renamed (a kill)
    before = e.history_sync("ch", ALL)
    e2 = engine(tmp_path, clock)
    assert e2.history_sync("ch", ALL) == before
    assert not list(tmp_path.glob("*.tmp"))
    assert e2.compact(wait=True)
    e2.publish_sync("ch", pub(b"after"), OPTS)
    e3 = engine(tmp_path, clock)
    res = e3.history_sync("ch", ALL)
    assert res.position == StreamPosition(12, before.position.epoch)
    assert [p.data for p in res.publications] == [b"9", b"during", b"after"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000003.log", "00000003.snap"]
    await e3.close()


async def test_corrupt_tail_is_cut_with_a_warning_and_the_rest_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    for i in range(5):
        e.publish_sync("ch", pub(b"%d" % i), OPTS)
    await e.close()
    seg = next(tmp_path.iterdir())
    size = seg.stat().st_size
    with open(seg, "ab") as fh:
        fh.write(b"\x20\x00\x00\x00garbage")
    e2 = engine(tmp_path, clock)
    assert "cut at byte" in caplog.text
    assert seg.stat().st_size == size
    assert e2.history_sync("ch", ALL).position.offset == 5
    await e2.close()


def test_a_failed_write_fails_the_publish_and_changes_nothing(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    e.publish_sync("ch", pub(b"1"), OPTS)
    before = e.history_sync("ch", ALL)
    os.close(e.store._fd)  # the descriptor goes bad: every write fails (EBADF)
    with pytest.raises(ReplyError) as err:
        e.publish_sync("ch", pub(b"2"), OPTS)
    assert err.value.error.code == 100
    out = e.publish_many_sync([("ch", pub(b"3"), OPTS), ("nohist", pub(b"4"), PublishOptions())])
    assert isinstance(out[0], ReplyError) and out[1] == (StreamPosition(0, ""), "")
    assert e.history_sync("ch", ALL) == before


async def test_another_worker_count_repartitions_the_history(tmp_path: Path) -> None:
    from relay.cluster.shards import ShardMap

    clock = Clock()
    now = clock.t + 1.7e9
    root = claim_layout(str(tmp_path), 2, now)
    assert root == str(tmp_path)
    channels = [f"ch{i}" for i in range(30)]
    old, new = ShardMap(2), ShardMap(3)
    engines = [engine(tmp_path / f"worker-{w}", clock) for w in range(2)]
    idem = PublishOptions(3, 60.0, 3600.0, idempotency_key="k")
    for ch in channels:
        for i in range(4):
            engines[old.owner(ch)].publish_sync(ch, pub(b"%d" % i), OPTS)
        engines[old.owner(ch)].publish_sync(ch, pub(b"i"), idem)
    before = {ch: engines[old.owner(ch)].history_sync(ch, ALL) for ch in channels}
    for e in engines:
        await e.close()
    root = claim_layout(str(tmp_path), 3, now)
    assert root == str(tmp_path / "g1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g1", "layout"]
    engines = [engine(Path(root) / f"worker-{w}", clock) for w in range(3)]
    assert {ch: engines[new.owner(ch)].history_sync(ch, ALL) for ch in channels} == before
    ch = channels[0]
    assert engines[new.owner(ch)].publish_sync(ch, pub(b"i"), idem) == (
        before[ch].position,
        "idempotency",
    )
    assert claim_layout(str(tmp_path), 3, now) == root  # claimed: nothing moves again
    for e in engines:
        await e.close()


def test_config_keys_load_from_env_and_bad_values_are_refused(tmp_path: Path) -> None:
    from relay.config import load_config, validate
    from relay.errors import ConfigError

    env = {
        "CENTRIFUGO_ENGINE_MEMORY_PERSISTENCE_DIR": str(tmp_path),
        "CENTRIFUGO_ENGINE_MEMORY_PERSISTENCE_SYNC": "always",
        "CENTRIFUGO_ENGINE_MEMORY_PERSISTENCE_SYNC_INTERVAL": "250ms",
    }
    persistence = load_config(None, env).config.engine.memory.persistence
    assert (persistence.dir, persistence.sync, persistence.sync_interval) == (
        str(tmp_path), "always", 0.25,
    )  # fmt: skip
    bad = load_config(None, {**env, "CENTRIFUGO_ENGINE_MEMORY_PERSISTENCE_SYNC": "never"})
    with pytest.raises(ConfigError):
        validate(bad.config)


def test_a_read_extends_the_meta_ttl_on_disk_too(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    opts = PublishOptions(history_size=3, history_ttl=60.0, history_meta_ttl=100.0)
    sp, _ = e.publish_sync("ch", pub(b"1"), opts)
    clock.t += 90
    e.history_sync("ch", HistoryFilter(), meta_ttl=100.0)  # the position lives 100 s more
    e.expire()
    clock.t += 90  # 180 s after the publish, 90 s after the read
    e2 = engine(tmp_path, clock)
    assert e2.history_sync("ch", HistoryFilter()).position == sp
