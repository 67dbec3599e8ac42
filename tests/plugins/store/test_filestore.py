"""The seed FileStore contract: create/append/read, limit, eviction, handles, reopening."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p2pkit.plugins.store import (
    FileStore,
    InvalidSid,
    StoreError,
    StoreFullError,
    UnknownItem,
    _db,
)

from tests.fulldisk import FullDisk


class FakeWallClock:
    """Wall-clock ms only label items; tests step it to show mtime is recorded."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[FileStore]:
    with FileStore(tmp_path / "fs") as s:
        yield s


def test_create_append_read(fs: FileStore) -> None:
    fs.create("movie/seg-1")
    fs.append("movie/seg-1", b"abc")
    fs.append("movie/seg-1", bytearray(b"def"))
    fs.append("movie/seg-1", memoryview(b"ghi"))
    assert fs.read("movie/seg-1", 0, 9) == b"abcdefghi"
    assert fs.read("movie/seg-1", 2, 5) == b"cde"
    assert fs.read("movie/seg-1", 7, 100) == b"hi"  # end clipped to the size
    assert fs.size("movie/seg-1") == 9
    assert fs.used_bytes == 9


@pytest.mark.parametrize("begin,end", [(-1, 3), (5, 2), (9, 20), (100, 200), (0, 0)])
def test_read_out_of_range_is_empty(fs: FileStore, begin: int, end: int) -> None:
    fs.create("s")
    fs.append("s", b"123456789")
    assert fs.read("s", begin, end) == b""


def test_read_unknown_or_malformed_is_empty(fs: FileStore) -> None:
    assert fs.read("nope", 0, 10) == b""
    assert fs.read(None, 0, 10) == b""  # type: ignore[arg-type]
    assert fs.read("s", "0", 10) == b""  # type: ignore[arg-type]
    for not_a_sid in ([1], {"s": 1}, None, 5):  # a list raised TypeError (unhashable)
        assert fs.read(not_a_sid, 0, 10) == b""  # type: ignore[arg-type]
        assert fs.size(not_a_sid) is None  # type: ignore[arg-type]
        assert not fs.exists(not_a_sid)  # type: ignore[arg-type]
        assert not fs.delete(not_a_sid)  # type: ignore[arg-type]
        with pytest.raises(UnknownItem):
            fs.pin(not_a_sid)  # type: ignore[arg-type]


def test_append_requires_create(fs: FileStore) -> None:
    with pytest.raises(UnknownItem):
        fs.append("missing", b"x")


def test_create_again_empties(fs: FileStore) -> None:
    fs.create("s")
    fs.append("s", b"12345")
    fs.create("s")
    assert fs.size("s") == 0
    assert fs.used_bytes == 0
    assert fs.read("s", 0, 5) == b""


@pytest.mark.parametrize("sid", ["", "a\x00b", "x" * 1025, 42, None, "\ud800"])
def test_malformed_sids_are_refused(fs: FileStore, sid: object) -> None:
    with pytest.raises(InvalidSid):
        fs.create(sid)  # type: ignore[arg-type]


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(sid=st.text(min_size=1, max_size=200).filter(lambda s: "\x00" not in s))
def test_hostile_sids_stay_inside_the_store(tmp_path: Path, sid: str) -> None:
    base = Path(tempfile.mkdtemp(dir=tmp_path))
    root = base / "hostile"
    with FileStore(root) as fs:
        fs.create(sid)
        fs.append(sid, b"payload")
        assert fs.read(sid, 0, 7) == b"payload"
        assert fs.delete(sid)
    # nothing outside the store directory was created
    assert sorted(p.name for p in base.iterdir()) == ["hostile"]


@pytest.mark.parametrize("sid", ["../../escape", "/etc/passwd", "..", "a/../../b", "C:\\x", "~root"])
def test_path_like_sids_are_just_names(tmp_path: Path, sid: str) -> None:
    root = tmp_path / "fs"
    with FileStore(root) as fs:
        fs.create(sid)
        fs.append(sid, b"x")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(root in p.parents for p in files)
    assert not (tmp_path / "escape").exists()


def test_eviction_by_least_recent_modification(tmp_path: Path) -> None:
    clock = FakeWallClock()
    with FileStore(tmp_path / "fs", limit_bytes=300, clock=clock) as fs:
        for sid in ("a", "b", "c"):
            fs.create(sid)
            fs.append(sid, b"x" * 100)
        fs.append("a", b"")  # an empty append is not a modification
        # touching b makes a the oldest modification, then c
        fs.create("d")
        fs.append("b", b"")
        assert fs.used_bytes == 300
        fs.append("d", b"y" * 100)  # needs 100 bytes: evicts the least recently modified
        assert not fs.exists("a")
        assert fs.exists("b") and fs.exists("c") and fs.exists("d")
        fs.append("b", b"z")  # b modified: now c is the oldest
        assert not fs.exists("c")
        assert fs.used_bytes <= 300
        assert fs.read("d", 0, 100) == b"y" * 100


def test_pinned_items_are_never_evicted(tmp_path: Path) -> None:
    with FileStore(tmp_path / "fs", limit_bytes=250) as fs:
        fs.create("pinned", pinned=True)
        fs.append("pinned", b"p" * 200)
        fs.create("cache")
        fs.append("cache", b"c" * 50)
        fs.create("new")
        fs.append("new", b"n" * 40)  # evicts "cache", never "pinned"
        assert fs.exists("pinned") and not fs.exists("cache")
        with pytest.raises(StoreFullError):
            fs.append("new", b"n" * 100)  # only pinned and the writer itself remain
        assert fs.size("new") == 40  # the refused append left nothing behind
        assert fs.used_bytes == 240


def test_evict_until_and_set_limit(tmp_path: Path) -> None:
    with FileStore(tmp_path / "fs") as fs:
        for i in range(5):
            fs.create(f"s{i}")
            fs.append(f"s{i}", b"x" * 100)
        assert fs.used_bytes == 500
        assert fs.evict_until(100) == 0  # no limit: nothing to do
        assert fs.set_storage_limit(350) == 200  # evicts the two oldest at once
        assert [o.sid for o in fs.objects()] == ["s2", "s3", "s4"]
        assert fs.evict_until(100) == 100  # 300 + 100 > 350: one more goes
        assert [o.sid for o in fs.objects()] == ["s3", "s4"]
        assert fs.used_bytes == 200
        with pytest.raises(ValueError):
            fs.set_storage_limit(-1)


def test_used_bytes_accounting_survives_reopen(tmp_path: Path) -> None:
    with FileStore(tmp_path / "fs") as fs:
        fs.create("a")
        fs.append("a", b"1" * 1000)
        fs.create("b", pinned=True)
        fs.append("b", b"2" * 24)
        fs.delete("a")
        fs.create("c")
        fs.append("c", b"3" * 5)
    with FileStore(tmp_path / "fs") as fs:
        assert fs.used_bytes == 29
        assert fs.read("b", 0, 100) == b"2" * 24
        assert {o.sid: o.pinned for o in fs.objects()} == {"b": True, "c": False}


def test_mtime_is_recorded(tmp_path: Path) -> None:
    clock = FakeWallClock()
    with FileStore(tmp_path / "fs", clock=clock) as fs:
        fs.create("a")
        before = fs.objects()[0].mtime_ms
        fs.append("a", b"x")
        assert fs.objects()[0].mtime_ms > before


def test_idle_handles_are_closed(tmp_path: Path) -> None:
    """Swept every second, as the provider does: a handle unused for 5 s is closed (at
    most one sweep late, never early); a use keeps it open 5 s more."""
    now = [0.0]
    with FileStore(tmp_path / "fs", idle_close_s=5.0, monotonic=lambda: now[0]) as fs:
        fs.create("a")
        fs.create("b")  # both opened at t=0
        assert fs.open_handles == 2
        open_after: dict[float, int] = {}
        for tick in range(1, 19):
            now[0] = float(tick)
            if tick == 3:
                fs.append("b", b"x")  # b used at 3
            if tick == 9:
                fs.append("a", b"y")  # a reopened on demand at 9
                assert fs.read("a", 0, 1) == b"y"
            if tick == 12:
                assert fs.read("a", 0, 1) == b"y"  # a used at 12
            fs.close_idle()
            open_after[tick] = fs.open_handles
        assert [open_after[t] for t in range(1, 19)] == [
            2, 2, 2, 2,  # a unused since 0: closed at 5
            1, 1, 1,  # b used at 3: closed at 8
            0, 1, 1, 1, 1, 1, 1, 1, 1,  # a used at 9 and 12: closed at 17
            0, 0,
        ]
        assert fs.counters["handles_closed"] == 3


def test_second_process_is_refused(tmp_path: Path) -> None:
    with FileStore(tmp_path / "fs"), pytest.raises(StoreError, match="in use"):
        FileStore(tmp_path / "fs")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    FileStore(tmp_path / "fs").close()
    db = sqlite3.connect(tmp_path / "fs" / "store.sqlite3")
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreError, match="schema version 99"):
        FileStore(tmp_path / "fs")


def test_uncommitted_tail_is_truncated_on_open(tmp_path: Path) -> None:
    """The state a kill -9 between write and commit leaves: bytes past the committed size."""
    with FileStore(tmp_path / "fs") as fs:
        fs.create("a")
        fs.append("a", b"committed")
        path = Path(fs._objects["a"].path)
    with path.open("ab") as f:
        f.write(b"half-writ")
    with FileStore(tmp_path / "fs") as fs:
        assert fs.size("a") == 9
        assert fs.read("a", 0, 100) == b"committed"
        assert fs.counters["recovered_truncations"] == 1
        fs.append("a", b"!")
        assert fs.read("a", 0, 100) == b"committed!"
    assert path.stat().st_size == 10


def test_orphans_and_lost_files_are_reconciled(tmp_path: Path) -> None:
    with FileStore(tmp_path / "fs") as fs:
        fs.create("kept")
        fs.append("kept", b"k")
        fs.create("lost")
        fs.append("lost", b"l" * 10)
        fs.create("empty")
        lost = Path(fs._objects["lost"].path)
        empty = Path(fs._objects["empty"].path)
    lost.unlink()
    empty.unlink()
    orphan = tmp_path / "fs" / "objects" / ("0" * 64)
    orphan.write_bytes(b"from a crashed create")
    with FileStore(tmp_path / "fs") as fs:
        assert not fs.exists("lost")
        assert fs.exists("empty") and fs.size("empty") == 0
        assert fs.used_bytes == 1
    assert not orphan.exists()


def test_shorter_file_than_committed_is_believed(tmp_path: Path) -> None:
    """Power loss without durable=True can lose unsynced data; the row follows the file."""
    with FileStore(tmp_path / "fs") as fs:
        fs.create("a")
        fs.append("a", b"0123456789")
        path = Path(fs._objects["a"].path)
    os.truncate(path, 4)
    with FileStore(tmp_path / "fs") as fs:
        assert fs.size("a") == 4
        assert fs.used_bytes == 4


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    fs = FileStore(tmp_path / "fs")
    fs.create("a")
    fs.close()
    fs.close()  # idempotent
    with pytest.raises(StoreError):
        fs.append("a", b"x")
    assert fs.read("a", 0, 1) == b""


def test_durable_mode_round_trips(tmp_path: Path) -> None:
    with FileStore(tmp_path / "fs", durable=True) as fs:
        fs.create("a")
        fs.append("a", b"x" * 4096)
    with FileStore(tmp_path / "fs", durable=True) as fs:
        assert fs.read("a", 0, 4096) == b"x" * 4096


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from("abc"), st.binary(max_size=300)), max_size=30),
       limit=st.integers(min_value=0, max_value=1500))
def test_model_based_accounting(tmp_path: Path, ops: list[tuple[str, bytes]], limit: int) -> None:
    """used_bytes always equals the sum of sizes, never exceeds the limit, and every
    surviving resource holds exactly the bytes appended to it (no eviction of it since)."""
    root = Path(tempfile.mkdtemp(dir=tmp_path))  # hypothesis may replay an example
    with FileStore(root, limit_bytes=limit) as fs:
        model: dict[str, bytes] = {}
        for sid, data in ops:
            if not fs.exists(sid):
                fs.create(sid)
                model[sid] = b""
            try:
                fs.append(sid, data)
                model[sid] += data
            except StoreFullError:
                # only the writer itself is left: it is never evicted to make room for itself
                assert len(model[sid]) + len(data) > limit
            model = {k: v for k, v in model.items() if fs.exists(k)}
            assert fs.used_bytes == sum(len(v) for v in model.values()) <= limit
        for sid, data in model.items():
            assert fs.read(sid, 0, 10_000) == data
    with FileStore(root, limit_bytes=limit) as fs:
        assert fs.used_bytes == sum(len(v) for v in model.values())


def test_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "fs").mkdir()
    (tmp_path / "fs" / "store.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open store database"):
        FileStore(tmp_path / "fs")
    with FileStore(tmp_path / "fs2"):  # and the lock was released on failure
        pass
    (tmp_path / "fs" / "store.sqlite3").unlink()
    with FileStore(tmp_path / "fs") as fs:
        fs.create("a")


@pytest.mark.parametrize(("column", "value"), [
    ("size", -5), ("size", "abc"), ("seq", -1), ("sid", b"\x00blob")])
def test_impossible_rows_are_a_clear_error_and_release_the_lock(
        tmp_path: Path, column: str, value: object) -> None:
    # a hand-edited or damaged database surfaced as OSError from truncate, TypeError,
    # struct.error, AttributeError: now one StoreError saying what it is
    with FileStore(tmp_path / "fs") as fs:
        fs.create("a")
        fs.append("a", b"x" * 100)
    db = sqlite3.connect(tmp_path / "fs" / "store.sqlite3")
    db.execute(f"UPDATE objects SET {column} = ?", (value,))
    db.commit()
    db.close()
    (tmp_path / "fs" / "sizes.map").unlink()  # else its records would be believed over the rows
    with pytest.raises(StoreError, match=r"metadata .* is damaged"):
        FileStore(tmp_path / "fs")
    with pytest.raises(StoreError, match=r"metadata .* is damaged"):  # not "in use"
        FileStore(tmp_path / "fs")


def test_a_file_removed_under_the_store_is_not_refilled_with_zeros(tmp_path: Path) -> None:
    now = [0.0]
    with FileStore(tmp_path / "fs", idle_close_s=5.0, monotonic=lambda: now[0]) as fs:
        fs.create("a")
        fs.append("a", b"x" * 1000)
        for now[0] in (10.0, 20.0):
            fs.close_idle()  # its handle is closed
        assert fs.open_handles == 0
        (path,) = (tmp_path / "fs" / "objects").iterdir()
        path.unlink()  # from outside
        with pytest.raises(StoreError, match="removed or cut short outside the store"):
            fs.append("a", b"y" * 10)  # it wrote at offset 1000: 1000 zeros, kept as data
        assert not fs.exists("a") and fs.used_bytes == 0
        fs.create("b")
        fs.append("b", b"z")  # a new object's file is still created
        assert fs.read("b", 0, 1) == b"z"


def test_a_storage_limit_is_a_whole_number_of_bytes(fs: FileStore) -> None:
    with pytest.raises(ValueError, match="whole number of bytes"):
        fs.set_storage_limit(1.5)  # type: ignore[arg-type]


def test_failed_opens_leak_no_file_descriptors(
    tmp_path: Path, descriptors_under: Callable[[Path], list[str]],
) -> None:
    """A node restarted in a loop against a damaged or too new store must not run out of
    descriptors: every failed open closes what it opened."""
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "store.sqlite3").write_bytes(b"this is not a database" * 100)
    FileStore(tmp_path / "new").close()
    db = sqlite3.connect(tmp_path / "new" / "store.sqlite3")
    db.execute("PRAGMA user_version = 99")
    db.close()
    assert descriptors_under(tmp_path) == []
    for _ in range(20):
        for root in ("bad", "new"):
            with pytest.raises(StoreError):
                FileStore(tmp_path / root)
    assert descriptors_under(tmp_path) == []


def unclean_stop(fs: FileStore) -> None:
    """What ``kill -9`` leaves: files, map and WAL as the page cache holds them, nothing
    flushed or closed in order, the lock released (by the dying process)."""
    fs._closed = True
    fs._handles.close_all()
    fs._db.close()
    if fs._sizes is not None:
        fs._sizes.close()
    fs._release_lock()


def committed_sizes(root: Path) -> dict[str, int]:
    db = sqlite3.connect(root / "store.sqlite3")
    try:
        return dict(db.execute("SELECT sid, size FROM objects").fetchall())
    finally:
        db.close()


def test_appends_reach_sqlite_at_the_sweep_and_close(tmp_path: Path) -> None:
    """An append costs no SQLite commit; the sweep and close tell SQLite in one go."""
    fs = FileStore(tmp_path / "fs")
    fs.create("a")
    fs.append("a", b"1")
    fs.append("a", b"2")
    assert fs.read("a", 0, 10) == b"12"
    fs.close_idle()  # the periodic sweep
    assert fs.counters["flushes"] == 1
    fs.append("a", b"3")
    fs.create("b")
    fs.append("b", b"x")
    fs.delete("b")  # a deleted resource is not resurrected by the flush
    fs.close()
    assert fs.counters["flushes"] == 2
    db = sqlite3.connect(tmp_path / "fs" / "store.sqlite3")
    assert db.execute("SELECT sid, size FROM objects").fetchall() == [("a", 3)]
    db.close()
    with FileStore(tmp_path / "fs") as fs:
        assert fs.read("a", 0, 10) == b"123"
        assert fs.counters["recovered_from_map"] == 0  # a clean close: SQLite knew it all


def test_unclean_stop_keeps_every_append(tmp_path: Path) -> None:
    """Many small appends, then the process dies before any sweep: reopening finds every
    append whole (the sizes map had them although SQLite did not)."""
    root = tmp_path / "fs"
    fs = FileStore(root)
    expected: dict[str, bytes] = {}
    for i in range(40):
        sid = f"seg-{i % 7}"
        if sid not in expected:
            fs.create(sid)
            expected[sid] = b""
        data = bytes([i]) * (1 + 997 * i % 5000)
        fs.append(sid, data)
        expected[sid] += data
    unclean_stop(fs)
    assert set(committed_sizes(root).values()) == {0}  # SQLite only saw the creates
    with FileStore(root) as fs:
        for sid, data in expected.items():
            assert fs.size(sid) == len(data)
            assert fs.read(sid, 0, 1 << 20) == data
        assert fs.used_bytes == sum(map(len, expected.values()))
        assert fs.counters["recovered_from_map"] == len(expected)
        assert fs.counters["recovered_truncations"] == 0
    assert committed_sizes(root) == {sid: len(d) for sid, d in expected.items()}


def test_many_resources_grow_the_map_and_reuse_slots(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    fs = FileStore(root)
    for i in range(300):  # the map starts with 31 slots
        fs.create(f"r{i}")
        fs.append(f"r{i}", str(i).encode())
    for i in range(0, 300, 2):
        fs.delete(f"r{i}")
    for i in range(300, 400):  # these take the freed slots
        fs.create(f"r{i}")
        fs.append(f"r{i}", str(i).encode() * 2)
    unclean_stop(fs)
    with FileStore(root) as fs:
        sizes = {o.sid: o.size for o in fs.objects()}
        expected = {f"r{i}": len(str(i)) for i in range(1, 300, 2)}
        expected |= {f"r{i}": 2 * len(str(i)) for i in range(300, 400)}
        assert sizes == expected
        assert fs.counters["recovered_from_map"] == len(expected)


def test_append_cut_short_is_dropped_whole(tmp_path: Path) -> None:
    """Killed inside an append: its bytes may be on disk, its record torn. Reopening cuts
    the file back to the previous append, never to a torn one."""
    root = tmp_path / "fs"
    fs = FileStore(root)
    fs.create("a")
    fs.append("a", b"first,")
    fs.append("a", b"second")
    obj = fs._objects["a"]
    newest = obj.half ^ 1  # the record the last append wrote
    assert fs._sizes is not None
    off = 128 + obj.slot * 128 + newest * 64 + 20  # inside its size field
    fs._sizes._mm[off] ^= 0xFF  # torn: the CRC no longer matches
    unclean_stop(fs)
    with FileStore(root) as fs:
        assert fs.read("a", 0, 100) == b"first,"
        assert fs.counters["recovered_truncations"] == 1
        fs.append("a", b"again")
    with FileStore(root) as fs:
        assert fs.read("a", 0, 100) == b"first,again"


@pytest.mark.parametrize("damage", ["missing", "garbage", "garbage-records", "truncated"])
def test_lost_sizes_map_falls_back_to_sqlite(tmp_path: Path, damage: str) -> None:
    """Without its map the store still opens consistent, at the sizes SQLite last learnt
    (the sweep's flush): appends after it are cut off, whole."""
    root = tmp_path / "fs"
    fs = FileStore(root)
    fs.create("a")
    fs.append("a", b"flushed")
    fs.close_idle()
    fs.append("a", b"+later")
    unclean_stop(fs)
    sizes_map = root / "sizes.map"
    if damage == "missing":
        sizes_map.unlink()
    elif damage == "garbage":
        sizes_map.write_bytes(os.urandom(8192))
    elif damage == "garbage-records":  # our header, random records: no CRC matches
        header = sizes_map.read_bytes()[:128]
        sizes_map.write_bytes(header + os.urandom(8192 - 128))
    else:
        os.truncate(sizes_map, 100)
    with FileStore(root) as fs:
        assert fs.read("a", 0, 100) == b"flushed"
        assert fs.used_bytes == 7
        fs.append("a", b"!")
    with FileStore(root) as fs:
        assert fs.read("a", 0, 100) == b"flushed!"


def test_forged_records_cannot_grow_a_resource(tmp_path: Path) -> None:
    """A record claiming more bytes than the file holds is not believed."""
    root = tmp_path / "fs"
    fs = FileStore(root)
    fs.create("a")
    fs.append("a", b"abc")
    obj = fs._objects["a"]
    assert fs._sizes is not None
    fs._sizes.write(obj.slot, obj.half, obj.key, obj.seq + 1, 10**12, obj.mtime_ms)
    unclean_stop(fs)
    with FileStore(root) as fs:
        assert fs.size("a") == 3
        assert fs.used_bytes == 3


def test_eviction_order_survives_an_unclean_stop(tmp_path: Path) -> None:
    """The order of last modification comes back exactly, although SQLite only knew the
    order of creation: the least recently appended-to resource is evicted first."""
    root = tmp_path / "fs"
    fs = FileStore(root)
    for sid in ("a", "b", "c"):
        fs.create(sid)
    for sid in ("c", "a", "b", "a", "b"):  # c now has the oldest modification, then a
        fs.append(sid, b"x" * 100)
    unclean_stop(fs)
    with FileStore(root, limit_bytes=500) as fs:
        evicted: list[str] = []
        fs.on_evict = lambda kind, key, size: evicted.append(key)
        fs.create("d")
        fs.append("d", b"y" * 100)
        assert evicted == ["c"]
        fs.append("d", b"y" * 200)
        assert evicted == ["c", "a"]
        assert fs.read("b", 0, 1000) == b"x" * 200


def test_a_sid_created_again_does_not_inherit_old_records(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    fs = FileStore(root)
    fs.create("a")
    fs.append("a", b"old" * 100)
    fs.delete("a")
    for i in range(5):  # others take and write slots meanwhile
        fs.create(f"o{i}")
        fs.append(f"o{i}", b"o")
    unclean_stop(fs)
    fs = FileStore(root)
    fs.create("a")
    fs.append("a", b"new")
    unclean_stop(fs)
    with FileStore(root) as fs:
        assert fs.read("a", 0, 1000) == b"new"
        assert fs.used_bytes == 3 + 5


def test_create_cut_short_never_brings_old_bytes_back(tmp_path: Path) -> None:
    """kill -9 inside ``create`` of a sid that existed before, after its row was committed
    but before the file was emptied and its record written: the old records (still in the
    map) are older than the row, so the resource reopens empty, not with the old bytes."""
    root = tmp_path / "fs"
    fs = FileStore(root)
    fs.create("x")
    fs.create("z")
    fs.append("x", b"old" * 100)
    fs.delete("x")
    fs.delete("z")  # the next create takes z's slot; x's stale records stay in the map
    fs.create("x")
    obj = fs._objects["x"]
    assert fs._sizes is not None
    fs._sizes.clear(obj.slot)  # its record was never written
    Path(obj.path).write_bytes(b"old" * 100)  # nor was the file emptied
    unclean_stop(fs)
    with FileStore(root) as fs:
        assert fs.size("x") == 0
        assert fs.read("x", 0, 1000) == b""
        assert fs.used_bytes == 0


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(ops=st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(0, 40), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("create"), st.integers(0, 40), st.just(b"")),
    st.tuples(st.just("delete"), st.integers(0, 40), st.just(b"")),
    st.tuples(st.just("sweep"), st.just(0), st.just(b"")),
    st.tuples(st.just("crash"), st.just(0), st.just(b"")),
), max_size=80))
def test_model_with_unclean_stops(tmp_path: Path, ops: list[tuple[str, int, bytes]]) -> None:
    """Creates, appends, deletes (over more resources than the map's first size holds, so
    it grows and slots are reused), sweeps and kill -9 at any point: after every reopen
    each resource holds exactly what was appended to it."""
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    fs = FileStore(root)
    model: dict[str, bytes] = {}
    try:
        for op, i, data in ops:
            sid = f"s{i}"
            if op == "create":
                fs.create(sid)
                model[sid] = b""
            elif op == "append" and sid in model:
                fs.append(sid, data)
                model[sid] += data
            elif op == "delete":
                assert fs.delete(sid) is (model.pop(sid, None) is not None)
            elif op == "sweep":
                fs.close_idle()
            elif op == "crash":
                unclean_stop(fs)
                fs = FileStore(root)
                assert {o.sid: o.size for o in fs.objects()} == {k: len(v) for k, v in model.items()}
        unclean_stop(fs)
        fs = FileStore(root)
        for sid, data in model.items():
            assert fs.read(sid, 0, 1 << 20) == data
        assert fs.used_bytes == sum(map(len, model.values()))
    finally:
        fs.close()


def test_sweep_checkpoints_a_grown_wal(tmp_path: Path) -> None:
    with FileStore(tmp_path / "fs") as fs:
        fs.create("a")
        fs.close_idle()
        assert fs.counters.get("checkpoints", 0) == 0  # nothing worth it yet
        for i in range(600):  # each create commits a page or two to the WAL
            fs.create(f"r{i}")
        fs.append("a", b"x" * 600)
        fs.close_idle()
        assert fs.counters["checkpoints"] == 1
    with FileStore(tmp_path / "fs") as fs:
        assert fs.size("a") == 600
        assert len(fs.objects()) == 601


def test_volatile_store_works_and_cannot_be_durable(tmp_path: Path) -> None:
    with FileStore(tmp_path / "v", volatile=True) as fs:
        fs.create("a")
        fs.append("a", b"abc")
    with FileStore(tmp_path / "v", volatile=True) as fs:  # a clean close keeps everything
        assert fs.read("a", 0, 3) == b"abc"
    with pytest.raises(ValueError):
        FileStore(tmp_path / "w", volatile=True, durable=True)


def test_a_full_disk_at_start_is_not_damaged_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # "StoreError store metadata in … is damaged (OperationalError: database or disk is
    # full); move the directory away to start empty" — after freeing space the same store
    # opened fine, with everything in it
    with FileStore(tmp_path / "fs") as fs:
        fs.create("a")
        fs.append("a", b"x" * 100)
    (tmp_path / "fs" / "sizes.map").unlink()
    (path,) = (tmp_path / "fs" / "objects").iterdir()
    os.truncate(path, 50)  # power lost before the last append reached the disk: recovery writes
    real_connect = _db.connect
    monkeypatch.setattr(_db, "connect", lambda *a, **kw: FullDisk(real_connect(*a, **kw)))
    with pytest.raises(StoreError) as info:
        FileStore(tmp_path / "fs")
    message = str(info.value)
    assert f"the disk holding the store metadata in {tmp_path / 'fs'} is full" in message
    assert "damaged" not in message and "move the directory away" not in message
    monkeypatch.undo()  # space freed
    with FileStore(tmp_path / "fs") as fs:
        assert fs.read("a", 0, 50) == b"x" * 50
