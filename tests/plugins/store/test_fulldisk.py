"""The disk holding the store fills up while it runs: every write that fails says so (a
StoreError naming the full disk, never a raw sqlite3/OSError), nothing stored before is
lost or marked damaged, and the store works again once space is freed."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from p2pkit.plugins.store import FileStore, Manifest, Store, StoreError, UnknownItem

from p2pkit.diskerrors import is_disk_full
from tests.fulldisk import FullDisk

from .conftest import make_wav

PIECE = 16 * 1024


def enospc(*_args: Any, **_kwargs: Any) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


def says_disk_full(exc: BaseException, root: Path) -> None:
    """What a user reads: the disk holding the store (which one) is full, nothing lost."""
    assert isinstance(exc, StoreError), repr(exc)
    assert is_disk_full(exc)  # the web UI and the swarm tell it from the chain
    message = str(exc)
    assert f"the disk holding the store {root} is full" in message, message
    assert "free some space" in message and "damaged" not in message


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Store, Store, Manifest]]:
    """A seed holding a shared file of several pieces and a store that began downloading it."""
    with Store(tmp_path / "seed", piece_size=PIECE) as seed, \
            Store(tmp_path / "leech", piece_size=PIECE) as leech:
        manifest = seed.import_file(make_wav(tmp_path / "tone.wav", seconds=6))
        assert manifest.num_pieces >= 3
        assert leech.begin_download(manifest)
        yield seed, leech, manifest


def piece(seed: Store, rid: str, index: int) -> bytes:
    data = seed.read_piece(rid, index)
    assert data is not None
    return data


@pytest.mark.parametrize("where", ["metadata", "data file"])
def test_a_piece_written_on_a_full_disk_is_a_store_error_and_what_is_stored_stays(
        pair: tuple[Store, Store, Manifest], monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    # was a raw sqlite3.OperationalError from the have-bitmap's UPDATE (or a StoreError
    # that said only "No space left on device"), with the piece counted as present in
    # memory although the database never learnt it
    seed, leech, m = pair
    assert leech.write_piece(m.rid, 0, piece(seed, m.rid, 0))
    before = (leech.have_bitmap(m.rid), leech.progress(m.rid), leech.used_bytes)
    real_db = leech._db
    if where == "metadata":
        leech._db = FullDisk(real_db)  # type: ignore[assignment]
    else:
        monkeypatch.setattr(os, "pwrite", enospc)
    with pytest.raises(StoreError) as info:
        leech.write_piece(m.rid, 1, piece(seed, m.rid, 1))
    says_disk_full(info.value, leech.root)
    assert (leech.have_bitmap(m.rid), leech.progress(m.rid), leech.used_bytes) == before
    assert not leech.has_piece(m.rid, 1)
    assert leech.read_piece(m.rid, 0) == piece(seed, m.rid, 0)  # still served, not "damaged"
    assert leech.counters.get("damaged_pieces", 0) == 0
    # space freed: the same store takes the piece and the rest, and keeps them over a restart
    leech._db = real_db
    monkeypatch.undo()
    for i in range(1, m.num_pieces):
        assert leech.write_piece(m.rid, i, piece(seed, m.rid, i))
    assert leech.is_complete(m.rid)
    root = leech.root
    leech.close()
    with Store(root, piece_size=PIECE) as again:
        assert again.is_complete(m.rid) and again.verify(m.rid) == []


def test_a_download_begun_on_a_full_disk_is_a_store_error_and_leaves_nothing(
        tmp_path: Path, media: dict[str, Path]) -> None:
    with Store(tmp_path / "seed", piece_size=PIECE) as seed, \
            Store(tmp_path / "leech", piece_size=PIECE) as leech:
        m = seed.import_file(media["wav"])
        real_db = leech._db
        leech._db = FullDisk(real_db)  # type: ignore[assignment]
        with pytest.raises(StoreError) as info:
            leech.begin_download(m)
        says_disk_full(info.value, leech.root)
        assert leech.manifest(m.rid) is None and leech.items() == []
        leech._db = real_db
        assert leech.begin_download(m)  # and once there is room, it begins


def test_an_append_on_a_full_disk_is_a_store_error_and_keeps_what_was_appended(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FileStore(tmp_path / "fs") as fs:
        fs.create("a")
        fs.append("a", b"x" * 100)
        monkeypatch.setattr(os, "pwrite", enospc)
        with pytest.raises(StoreError) as info:
            fs.append("a", b"y" * 50)
        says_disk_full(info.value, fs.root)
        assert fs.size("a") == 100 and fs.used_bytes == 100
        monkeypatch.undo()
        fs.append("a", b"y" * 50)
        assert fs.read("a", 0, 200) == b"x" * 100 + b"y" * 50


def test_a_resource_created_on_a_full_disk_is_a_store_error_and_an_old_one_is_kept(
        tmp_path: Path) -> None:
    with FileStore(tmp_path / "fs") as fs:
        fs.create("old")
        fs.append("old", b"kept")
        real_db = fs._db
        fs._db = FullDisk(real_db)  # type: ignore[assignment]
        for sid in ("new", "old"):  # create on an existing sid empties it: not when it fails
            with pytest.raises(StoreError) as info:
                fs.create(sid)
            says_disk_full(info.value, fs.root)
        assert not fs.exists("new") and fs.read("old", 0, 10) == b"kept"
        with pytest.raises(UnknownItem):
            fs.append("new", b"z")
        fs._db = real_db
        fs.create("new")
        fs.append("new", b"z")
        assert fs.read("new", 0, 10) == b"z"


def test_the_sweep_on_a_full_disk_does_not_raise_and_catches_up_later(tmp_path: Path) -> None:
    # the sweep runs in the node's nursery: raising there took the whole node down
    with FileStore(tmp_path / "fs") as fs:
        fs.create("a")
        fs.append("a", b"x" * 100)
        real_db = fs._db
        fs._db = FullDisk(real_db)  # type: ignore[assignment]
        fs.close_idle()
        assert not fs.idle  # SQLite has not learnt the size yet: the sweep tries again
        fs._db = real_db
        fs.close_idle()
        (size,) = real_db.execute("SELECT size FROM objects WHERE sid = 'a'").fetchone()
        assert size == 100
