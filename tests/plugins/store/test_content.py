"""Own shares, manifests, verified pieces, have-bitmap persistence, export, eviction."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p2pkit.plugins.store import (
    LEAF_SIZE,
    IncompleteContent,
    Manifest,
    Store,
    StoreError,
    StoreFullError,
    UnknownItem,
    UnsupportedMedia,
    block_root,
)

PIECE = 16 * 1024


def transfer(src: Store, dst: Store, rid: str, pieces: range | list[int] | None = None) -> None:
    manifest = src.manifest(rid)
    assert manifest is not None
    dst.begin_download(manifest)
    for i in pieces if pieces is not None else range(manifest.num_pieces):
        data = src.read_piece(rid, i)
        assert data is not None
        assert dst.write_piece(rid, i, data)


def test_import_builds_a_manifest(store: Store, media: dict[str, Path]) -> None:
    path = media["png"]
    progress: list[tuple[int, int]] = []
    m = store.import_file(path, description="noise", progress=lambda d, t: progress.append((d, t)))
    data = path.read_bytes()
    assert (m.name, m.size, m.mime, m.category) == ("picture.png", len(data), "image/png", "image")
    assert m.title == "picture" and m.description == "noise"
    assert m.piece_size == PIECE and m.num_pieces == -(-len(data) // PIECE)
    assert list(m.block_roots) == [block_root(data[i:i + PIECE]) for i in range(0, len(data), PIECE)]
    assert m.piece_hashes == ()  # one hash per piece: the roots alone
    assert (m.width, m.height) == (160, 120)
    assert m.thumbnail is not None and m.thumbnail[:3] == b"\xff\xd8\xff"  # a JPEG
    assert progress[-1] == (len(data), len(data)) and len(progress) == m.num_pieces
    assert m.rid == hashlib.sha256(m.encode()).hexdigest()
    info = store.item(m.rid)
    assert info is not None and info.pinned and info.complete and info.source == str(path)
    assert store.used_bytes == 0  # kept by reference: the original file is not copied


def test_import_gives_every_piece_its_block_root(tmp_path: Path,
                                                 makers: dict[str, Callable[..., Path]]) -> None:
    """Pieces of four leaves (the last piece and its last leaf short): one root per piece,
    the SHA-256 of its leaves' SHA-256s, as a downloader recomputes it from the bytes."""
    path = makers["png"](tmp_path / "big.png", w=300, h=200)
    data = path.read_bytes()
    piece = 4 * LEAF_SIZE
    assert len(data) > 2 * piece and len(data) % piece % LEAF_SIZE  # the shapes this is about
    with Store(tmp_path / "s", piece_size=piece) as s:
        m = s.import_file(path)
        assert m.has_block_roots and len(m.block_roots) == m.num_pieces and m.piece_hashes == ()
        for i in range(m.num_pieces):
            chunk = s.read_piece(m.rid, i)
            assert chunk is not None
            leaves = b"".join(hashlib.sha256(chunk[j:j + LEAF_SIZE]).digest()
                              for j in range(0, len(chunk), LEAF_SIZE))
            assert m.block_roots[i] == block_root(chunk) == hashlib.sha256(leaves).digest()
        raw = s.manifest_bytes(m.rid)
        assert raw is not None and Manifest.decode(raw, rid=m.rid).block_roots == m.block_roots


def test_a_piece_that_fails_its_block_root_is_not_stored(store: Store, other: Store,
                                                        media: dict[str, Path]) -> None:
    """A roots-only manifest with a wrong root for piece 0: the right bytes are refused, as
    they are when the root is the piece's SHA-256 (the other kind of hash)."""
    m = store.import_file(media["png"])
    assert m.num_pieces >= 2
    pieces = [store.read_piece(m.rid, i) for i in range(2)]
    assert pieces[0] is not None and pieces[1] is not None
    for wrong in (hashlib.sha256(b"not the root").digest(), hashlib.sha256(pieces[0]).digest()):
        bad = msgspec.structs.replace(m, block_roots=(wrong, *m.block_roots[1:]))
        assert bad.piece_hashes == () and bad.has_block_roots and bad.rid != m.rid
        assert other.begin_download(bad)
        assert other.write_piece(bad.rid, 0, pieces[0]) is False
        assert not other.has_piece(bad.rid, 0) and other.missing_pieces(bad.rid)[0] == 0
        assert other.have_bitmap(bad.rid) == bytes(len(other.have_bitmap(bad.rid)))
        assert other.read_piece(bad.rid, 0) is None
        assert other.write_piece(bad.rid, 1, pieces[1]) is True  # its root is right: stored
        assert other.remove(bad.rid)
    assert other.used_bytes == 0
    assert other.begin_download(m) and other.write_piece(m.rid, 0, pieces[0])  # the control


def test_an_older_manifest_still_downloads(tmp_path: Path, store: Store, other: Store,
                                           media: dict[str, Path]) -> None:
    """A manifest made before block roots (``piece_hashes`` only, as peers may still
    announce): checked by SHA-256 on write, on the first read after a restart, and by
    ``verify``; damage on disk is caught, the file exports whole."""
    data = media["png"].read_bytes()
    pieces = [data[i:i + PIECE] for i in range(0, len(data), PIECE)]
    rooted = store.import_file(media["png"])
    m = msgspec.structs.replace(rooted, block_roots=(),
                                piece_hashes=tuple(hashlib.sha256(p).digest() for p in pieces))
    assert not m.has_block_roots and m.num_pieces == len(pieces) >= 3 and m.rid != rooted.rid
    assert Manifest.decode(m.encode(), rid=m.rid) == m and b"block_roots" not in m.encode()
    assert other.begin_download(m)
    assert other.write_piece(m.rid, 0, bytes([pieces[0][0] ^ 1]) + pieces[0][1:]) is False
    for i, piece in enumerate(pieces):
        assert other.write_piece(m.rid, i, piece)
    assert other.is_complete(m.rid) and other.read_piece(m.rid, 1) == pieces[1]
    assert other.verify(m.rid) == []
    other.close()
    with (other.root / "content" / m.rid).open("r+b") as f:  # damage piece 1 while down
        f.seek(PIECE + 7)
        f.write(bytes([pieces[1][7] ^ 0xFF]))
    with Store(other.root, piece_size=PIECE) as again:
        assert again.manifest(m.rid) == m and again.is_complete(m.rid)
        assert again.read_piece(m.rid, 0) == pieces[0]  # hashed again after the restart
        assert again.read_piece(m.rid, 1) is None and again.missing_pieces(m.rid) == [1]
        assert again.write_piece(m.rid, 1, pieces[1])
        with (again.root / "content" / m.rid).open("r+b") as f:  # and while running
            f.seek(2 * PIECE)
            f.write(bytes([pieces[2][0] ^ 0x01]))
        assert again.verify(m.rid) == [2]
        assert again.write_piece(m.rid, 2, pieces[2])
        assert again.export(m.rid, tmp_path / "out.png").read_bytes() == data


def test_rid_is_deterministic_and_depends_on_texts(tmp_path: Path, media: dict[str, Path]) -> None:
    with Store(tmp_path / "a", piece_size=PIECE) as a, Store(tmp_path / "b", piece_size=PIECE) as b:
        assert a.import_file(media["wav"]).rid == b.import_file(media["wav"]).rid
        assert a.import_file(media["wav"], title="other").rid != b.import_file(media["wav"]).rid
        assert len(a.items()) == 2


def test_reimport_is_idempotent(store: Store, media: dict[str, Path]) -> None:
    first = store.import_file(media["wav"])
    again = store.import_file(media["wav"])
    assert first == again and len(store.items()) == 1


@pytest.mark.parametrize("kind,mime,category,duration", [
    ("png", "image/png", "image", None),
    ("jpeg", "image/jpeg", "image", None),
    ("wav", "audio/wav", "audio", 1.5),
    ("mp3", "audio/mpeg", "audio", 2.612),
    ("mp4", "video/mp4", "video", 2.5),
    ("avi", "video/x-msvideo", "video", 2.5),
])
def test_category_and_duration(store: Store, media: dict[str, Path], kind: str, mime: str,
                               category: str, duration: float | None) -> None:
    m = store.import_file(media[kind])
    assert (m.mime, m.category) == (mime, category)
    if duration is None:
        assert m.duration is None
    else:
        assert m.duration == pytest.approx(duration, abs=0.05)
    if category == "video":
        assert (m.width, m.height) == (96, 64) and m.thumbnail


def test_category_comes_from_bytes_not_extension(store: Store, media: dict[str, Path],
                                                 tmp_path: Path) -> None:
    disguised = tmp_path / "not-a-song.mp3"
    disguised.write_bytes(media["png"].read_bytes())
    m = store.import_file(disguised)
    assert (m.category, m.mime) == ("image", "image/png")
    fake = tmp_path / "movie.mp4"
    fake.write_bytes(b"This is plain text pretending to be a video.\n" * 100)
    with pytest.raises(UnsupportedMedia, match=r"movie\.mp4"):
        store.import_file(fake)


def test_non_media_and_bad_paths_are_refused(store: Store, tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "doc.pdf").write_bytes(b"%PDF-1.7\n" + os.urandom(5000))
    with pytest.raises(UnsupportedMedia):
        store.import_file(tmp_path / "empty.png")
    with pytest.raises(UnsupportedMedia):
        store.import_file(tmp_path / "doc.pdf")
    with pytest.raises(StoreError):
        store.import_file(tmp_path / "missing.png")
    with pytest.raises(StoreError):
        store.import_file(tmp_path)
    assert store.items() == []


def test_download_with_verification(store: Store, other: Store, media: dict[str, Path],
                                    tmp_path: Path) -> None:
    m = store.import_file(media["png"])
    assert other.begin_download(m) is True
    assert other.begin_download(m) is False
    good = store.read_piece(m.rid, 0)
    assert good is not None
    bad = bytes([good[0] ^ 1]) + good[1:]
    assert other.write_piece(m.rid, 0, bad) is False
    assert other.write_piece(m.rid, 0, good[:-1]) is False
    assert other.write_piece(m.rid, m.num_pieces, good) is False
    assert other.write_piece(m.rid, -1, good) is False
    assert not other.has_piece(m.rid, 0) and other.used_bytes == 0
    assert other.write_piece(m.rid, 0, good)
    assert other.write_piece(m.rid, 0, good)  # duplicate: accepted, stored once
    assert other.used_bytes == len(good)
    assert other.read_piece(m.rid, 1) is None
    with pytest.raises(IncompleteContent):
        other.export(m.rid, tmp_path / "x.png")
    transfer(store, other, m.rid)
    assert other.is_complete(m.rid)
    assert other.used_bytes == m.size
    out = other.export(m.rid, tmp_path)  # a directory gets the manifest's name
    assert out == tmp_path / "picture.png"
    assert out.read_bytes() == media["png"].read_bytes()
    with pytest.raises(UnknownItem):
        other.write_piece("0" * 64, 0, good)


def test_have_bitmap_survives_restart(tmp_path: Path, store: Store, media: dict[str, Path]) -> None:
    m = store.import_file(media["png"])
    half = list(range(0, m.num_pieces, 2))
    with Store(tmp_path / "dl", piece_size=PIECE) as dl:
        transfer(store, dl, m.rid, half)
        bitmap = dl.have_bitmap(m.rid)
    with Store(tmp_path / "dl", piece_size=PIECE) as dl:
        assert dl.have_bitmap(m.rid) == bitmap
        assert dl.missing_pieces(m.rid) == [i for i in range(m.num_pieces) if i % 2]
        assert dl.progress(m.rid) == (len(half), m.num_pieces)
        assert dl.manifest(m.rid) == m
        assert dl.used_bytes == sum(m.piece_length(i) for i in half)
        transfer(store, dl, m.rid, dl.missing_pieces(m.rid))
        assert dl.is_complete(m.rid)
        assert dl.export(m.rid, tmp_path / "out.png").read_bytes() == media["png"].read_bytes()


def test_damaged_piece_on_disk_is_never_served(tmp_path: Path, store: Store,
                                               media: dict[str, Path]) -> None:
    m = store.import_file(media["png"])
    with Store(tmp_path / "dl", piece_size=PIECE) as dl:
        transfer(store, dl, m.rid)
        data_file = tmp_path / "dl" / "content" / m.rid
    with data_file.open("r+b") as f:  # bit rot (or a write the crash cut short) in piece 2
        f.seek(2 * PIECE + 100)
        f.write(b"\x00\x01\x02")
    with Store(tmp_path / "dl", piece_size=PIECE) as dl:
        assert dl.is_complete(m.rid)  # not known until read
        assert dl.read_piece(m.rid, 2) is None
        assert not dl.has_piece(m.rid, 2) and not dl.is_complete(m.rid)
        assert dl.read_content(m.rid, 0, m.size) is None
        assert dl.verify(m.rid) == []  # the rest is fine
        transfer(store, dl, m.rid, [2])
        assert dl.read_content(m.rid, 0, m.size) == media["png"].read_bytes()


def test_truncated_data_file_clears_bits_on_open(tmp_path: Path, store: Store,
                                                 media: dict[str, Path]) -> None:
    m = store.import_file(media["png"])
    with Store(tmp_path / "dl", piece_size=PIECE) as dl:
        transfer(store, dl, m.rid)
    os.truncate(tmp_path / "dl" / "content" / m.rid, 3 * PIECE + 5)
    with Store(tmp_path / "dl", piece_size=PIECE) as dl:
        assert dl.missing_pieces(m.rid) == list(range(3, m.num_pieces))
        assert dl.used_bytes == 3 * PIECE


def test_changed_source_is_detected(store: Store, tmp_path: Path, makers: dict[str, Callable[..., Path]]) -> None:
    path = makers["png"](tmp_path / "mine.png", seed=3)
    m = store.import_file(path)
    assert store.read_piece(m.rid, 0) is not None
    data = bytearray(path.read_bytes())
    data[PIECE + 7] ^= 0xFF
    path.write_bytes(bytes(data))  # same size, different bytes
    assert store.read_piece(m.rid, 1) is None  # piece 1 fails its hash
    info = store.item(m.rid)
    assert info is not None and info.broken and not info.complete
    assert store.read_piece(m.rid, 0) is None  # nothing of a changed share is trusted


def test_the_same_file_shared_from_two_places_keeps_the_first_while_it_holds(
        tmp_path: Path, makers: dict[str, Callable[..., Path]]) -> None:
    """The share pointed at the last copy shared; deleting that copy broke it though the
    first was still there."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = makers["png"](tmp_path / "a" / "x.png", seed=7)
    data = first.read_bytes()
    second = tmp_path / "b" / "x.png"
    second.write_bytes(data)
    with Store(tmp_path / "s", piece_size=PIECE) as s:
        m = s.import_file(first)
        assert s.import_file(second).rid == m.rid
        second.unlink()
        assert s.read_piece(m.rid, 0) is not None and s.is_complete(m.rid)
        first.unlink()  # now the one it refers to is gone: sharing the other copy again mends it
        second.write_bytes(data)
        assert s.read_piece(m.rid, 0) is None
        assert s.import_file(second).rid == m.rid and s.read_piece(m.rid, 0) is not None


def test_changed_source_is_detected_on_open(tmp_path: Path, makers: dict[str, Callable[..., Path]]) -> None:
    path = makers["png"](tmp_path / "mine.png")
    with Store(tmp_path / "s", piece_size=PIECE) as s:
        m = s.import_file(path)
    path.write_bytes(path.read_bytes() + b"appended")
    with Store(tmp_path / "s", piece_size=PIECE) as s:
        assert s.item(m.rid).broken  # type: ignore[union-attr]
        assert s.read_piece(m.rid, 0) is None
        # sharing the file again replaces the broken entry
        m2 = s.import_file(path)
        assert s.is_complete(m2.rid) and m2.rid != m.rid


def test_a_shared_file_touched_or_copied_over_with_the_same_bytes_stays_shared(
        tmp_path: Path, makers: dict[str, Callable[..., Path]]) -> None:
    # after a restart it was marked broken for good, though every byte still matched
    path = makers["png"](tmp_path / "mine.png", seed=5)
    original = path.read_bytes()
    with Store(tmp_path / "s", piece_size=PIECE) as s:
        m = s.import_file(path)
        assert s.read_piece(m.rid, 0) is not None
        os.utime(path, ns=(1, 1))  # touched while the store runs
        assert s.read_piece(m.rid, 1) == original[PIECE:2 * PIECE]
    replacement = tmp_path / "copy.png"
    replacement.write_bytes(original)
    os.replace(replacement, path)  # copied over (a new inode) while the node was stopped
    with Store(tmp_path / "s", piece_size=PIECE) as s:
        assert not s.item(m.rid).broken and s.is_complete(m.rid)  # type: ignore[union-attr]
        assert s.read_content(m.rid, 0, m.size) == original
    data = bytearray(original)
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))  # the same size, another byte: changed for certain
    with Store(tmp_path / "s", piece_size=PIECE) as s:
        assert s.item(m.rid).broken  # type: ignore[union-attr]
        assert s.read_piece(m.rid, 0) is None


def test_a_shared_file_edited_while_the_store_runs_is_still_broken_after_a_restart(
        tmp_path: Path, makers: dict[str, Callable[..., Path]]) -> None:
    # its new mtime was taken (and stored) before a piece was checked: the next open
    # found the stat unchanged and listed the edited file as whole
    path = makers["png"](tmp_path / "mine.png", seed=6)
    with Store(tmp_path / "s", piece_size=PIECE) as s:
        m = s.import_file(path)
        data = bytearray(path.read_bytes())
        data[7] ^= 0xFF
        path.write_bytes(bytes(data))  # the same size, another byte
        assert s.read_piece(m.rid, 0) is None and s.item(m.rid).broken  # type: ignore[union-attr]
    with Store(tmp_path / "s", piece_size=PIECE) as s:
        assert s.item(m.rid).broken and not s.is_complete(m.rid)  # type: ignore[union-attr]


def test_a_manifest_stored_under_older_rules_is_dropped_with_a_warning(
        tmp_path: Path, makers: dict[str, Callable[..., Path]], caplog: pytest.LogCaptureFixture) -> None:
    # a share named ".voice memo.png" (allowed before names were checked) vanished at
    # the first start of the new version without a word
    path = makers["png"](tmp_path / "memo.png", seed=2)
    with Store(tmp_path / "s", piece_size=PIECE) as s:
        m = s.import_file(path)
        old = msgspec.msgpack.encode({**msgspec.structs.asdict(m), "name": ".voice memo.png"})
        old_rid = hashlib.sha256(old).hexdigest()
        s._db.execute("UPDATE content SET rid = ?, manifest = ? WHERE rid = ?", (old_rid, old, m.rid))
    with Store(tmp_path / "s", piece_size=PIECE) as s:
        assert s.items() == []
    assert f"dropped {old_rid[:12]} (shared from {path})" in caplog.text
    assert "share the file again" in caplog.text


def test_copy_shares_survive_deletion_of_the_original(tmp_path: Path, makers: dict[str, Callable[..., Path]]) -> None:
    path = makers["wav"](tmp_path / "tone.wav")
    original = path.read_bytes()
    with Store(tmp_path / "s", piece_size=PIECE, copy_shares=True) as s:
        m = s.import_file(path)
        assert s.used_bytes == m.size
        assert s.item(m.rid).source is None  # type: ignore[union-attr]
    path.unlink()
    with Store(tmp_path / "s", piece_size=PIECE) as s:
        assert s.read_content(m.rid, 0, m.size) == original
        assert s.export(m.rid, tmp_path / "back.wav").read_bytes() == original


def test_content_eviction_spares_pinned_and_the_writer(tmp_path: Path, store: Store,
                                                       makers: dict[str, Callable[..., Path]]) -> None:
    a = store.import_file(makers["png"](tmp_path / "a.png", seed=1))
    b = store.import_file(makers["png"](tmp_path / "b.png", seed=2))
    size = a.size
    with Store(tmp_path / "dl", piece_size=PIECE, limit_bytes=int(size * 1.5)) as dl:
        evicted: list[tuple[str, str, int]] = []
        dl.on_evict = lambda kind, key, n: evicted.append((kind, key, n))
        transfer(store, dl, a.rid)
        dl.pin_content(a.rid)
        with pytest.raises(StoreFullError):
            dl.begin_download(b)  # a is pinned: b cannot fit, known before any transfer
        dl.create("sid-pinned", pinned=True)
        dl.pin_content(a.rid, False)
        dl.begin_download(b)
        dl.pin("sid-pinned")
        dl.append("sid-pinned", b"p" * int(size * 0.6))  # pinned after b began: b cannot finish
        with pytest.raises(StoreFullError):
            transfer(store, dl, b.rid)
        assert evicted == [("content", a.rid, size)]  # a (unpinned) went first, in vain
        dl.delete("sid-pinned")
        transfer(store, dl, b.rid, dl.missing_pieces(b.rid))  # now b completes
        assert a.rid not in dl and dl.is_complete(b.rid)
        assert dl.used_bytes == b.size


def test_a_running_download_is_never_evicted_for_another(
        tmp_path: Path, store: Store, makers: dict[str, Callable[..., Path]]) -> None:
    """Three downloads into a store that held two: each evicted the others' pieces and
    they failed half-way ("the content was removed from the store"), their bytes wasted."""
    a = store.import_file(makers["png"](tmp_path / "a.png", seed=1))
    b = store.import_file(makers["png"](tmp_path / "b.png", seed=2))
    c = store.import_file(makers["png"](tmp_path / "c.png", seed=3))
    with Store(tmp_path / "dl", piece_size=PIECE, limit_bytes=int(a.size * 2.5)) as dl:
        assert dl.room_for_download() == int(a.size * 2.5)
        dl.begin_download(a)
        dl.begin_download(b)
        with dl.downloading(a.rid), dl.downloading(b.rid):
            assert dl.room_for_download(c.rid) == int(a.size * 2.5) - a.size - b.size
            with pytest.raises(StoreFullError, match="other downloads running"):
                dl.begin_download(c)  # refused before any transfer, not a third evicting them
            transfer(store, dl, a.rid, dl.missing_pieces(a.rid)[:1])
            transfer(store, dl, b.rid, dl.missing_pieces(b.rid)[:1])
            assert not [e for e in dl._eviction_candidates() if e[1] == "content"]
        # no longer running: what they fetched may make room again
        assert {e[2] for e in dl._eviction_candidates() if e[1] == "content"} == {a.rid, b.rid}
        dl.begin_download(c)
        with dl.downloading(c.rid):
            transfer(store, dl, c.rid, dl.missing_pieces(c.rid))
        assert dl.is_complete(c.rid)
        partial = next(rid for rid in (a.rid, b.rid) if rid in dl)  # one made room for c
        dl.pin_content(c.rid)
        d = store.import_file(makers["png"](tmp_path / "d.png", seed=4))
        dl.begin_download(d)
        # resuming the partial one would not fit beside d
        with dl.downloading(d.rid), pytest.raises(StoreFullError, match="cannot fit"), \
                dl.downloading(partial):
            pass


def test_remove_and_unknown(store: Store, media: dict[str, Path]) -> None:
    m = store.import_file(media["png"])
    assert store.remove(m.rid) is True
    assert store.remove(m.rid) is False
    assert store.remove("../../etc") is False
    assert store.manifest(m.rid) is None
    assert store.read_piece(m.rid, 0) is None
    assert media["png"].exists()  # the original of an own share is left alone


def test_read_content_ranges(store: Store, media: dict[str, Path]) -> None:
    m = store.import_file(media["png"])
    data = media["png"].read_bytes()
    for begin, end in [(0, 1), (PIECE - 3, PIECE + 3), (5, m.size), (m.size - 1, m.size + 50)]:
        assert store.read_content(m.rid, begin, end) == data[begin:end]
    assert store.read_content(m.rid, 10, 5) is None
    assert store.read_content(m.rid, m.size, m.size + 1) == b""


def test_store_rejects_bad_piece_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Store(tmp_path / "s", piece_size=1000)


def test_manifest_round_trip(store: Store, media: dict[str, Path]) -> None:
    m = store.import_file(media["mp4"])
    raw = store.manifest_bytes(m.rid)
    assert raw is not None
    assert Manifest.decode(raw, rid=m.rid) == m


async def test_async_import_yields_to_other_tasks(tmp_path: Path, makers: dict[str, Callable[..., Path]]) -> None:
    path = makers["png"](tmp_path / "big.png", w=600, h=400)  # ~700 kB, ~44 pieces
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    with Store(tmp_path / "s", piece_size=PIECE) as s:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            m = await s.import_file_async(path)
            nursery.cancel_scope.cancel()
        assert ticks >= m.num_pieces  # the other task ran between pieces
        out = await s.export_async(m.rid, tmp_path / "copy.png")
        assert out.read_bytes() == path.read_bytes()


def _partial_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".part")]


async def test_a_cancelled_import_or_export_leaves_no_partial_file(tmp_path: Path, makers: dict[str, Callable[..., Path]]) -> None:
    """Cancelled half-way (the user gave up, the node is stopping), the copy in progress
    is removed and its files closed at once, even while the Cancelled exception (and its
    traceback) is still alive."""
    path = makers["png"](tmp_path / "big.png", w=600, h=400)  # ~44 pieces

    async def cancel_soon(scope: trio.CancelScope) -> None:
        for _ in range(5):
            await trio.lowlevel.checkpoint()
        scope.cancel()

    with Store(tmp_path / "s", piece_size=PIECE) as s:
        m = await s.import_file_async(path, title="kept")
        kept: list[BaseException] = []  # as a nursery or a log handler may hold on to it
        attempts: list[Callable[[], Awaitable[object]]] = [
            lambda: s.import_file_async(path, copy=True, title="cancelled"),
            lambda: s.export_async(m.rid, tmp_path / "out.png")]
        for attempt in attempts:
            async with trio.open_nursery() as nursery:
                with trio.CancelScope() as scope:
                    nursery.start_soon(cancel_soon, scope)
                    try:
                        await attempt()
                    except trio.Cancelled as exc:
                        kept.append(exc)
                        raise
                assert scope.cancelled_caught
        assert len(kept) == 2
        assert _partial_files(s.root / "content") == _partial_files(tmp_path) == []
        assert s.items()[0].title == "kept" and len(s.items()) == 1


def test_awkward_file_names_become_plain_names(store: Store, tmp_path: Path, media: dict[str, Path]) -> None:
    odd = os.fsdecode(b"caf\xe9 back\\slash.png")  # not UTF-8, with a backslash
    path = tmp_path / odd
    path.write_bytes(media["png"].read_bytes())
    m = store.import_file(path, title="t" * 5000)
    assert "\\" not in m.name and m.name.endswith("slash.png")
    m.name.encode("utf-8")  # valid UTF-8
    assert len(m.title) == 4096
    assert Manifest.decode(m.encode(), rid=m.rid) == m
    store.close()
    with Store(store.root, piece_size=PIECE) as again:  # the path survives a restart
        assert again.item(m.rid).source == str(path)  # type: ignore[union-attr]
        assert again.read_piece(m.rid, 0) is not None


def test_names_a_peer_could_not_take_are_made_plain(store: Store, tmp_path: Path,
                                                    media: dict[str, Path]) -> None:
    # every peer refuses a manifest whose name holds control characters or starts with
    # a dot (name_problem): shared as they were, such files could not be downloaded
    for odd, plain in [(".hidden\x1b[2J\nclip.png", "hidden_[2J_clip.png"),
                       ("clip\u202egnp.exe", "clip_gnp.exe"), ("...png", "png")]:
        path = tmp_path / odd
        path.write_bytes(media["png"].read_bytes())
        assert store.import_file(path).name == plain


def test_a_name_as_long_as_the_file_system_allows_is_exported(store: Store, tmp_path: Path,
                                                              media: dict[str, Path]) -> None:
    # the temporary file was ".NAME.PID.part": too long for a 250-byte name, and a
    # whole download was lost at the last step
    long = "x" * 246 + ".png"
    path = tmp_path / "source" / long
    path.parent.mkdir()
    path.write_bytes(media["png"].read_bytes())
    m = store.import_file(path)
    assert m.name == long
    (tmp_path / "out").mkdir()
    assert store.export(m.rid, tmp_path / "out").read_bytes() == path.read_bytes()
    assert [p.name for p in (tmp_path / "out").iterdir()] == [long]


def test_damage_while_running_is_found_by_verify(tmp_path: Path, store: Store,
                                                  media: dict[str, Path]) -> None:
    m = store.import_file(media["png"])
    with Store(tmp_path / "dl", piece_size=PIECE) as dl:
        transfer(store, dl, m.rid)
        with (tmp_path / "dl" / "content" / m.rid).open("r+b") as f:
            f.seek(PIECE + 1)
            f.write(b"\xff\xfe")
        # pieces hashed on write are trusted for the rest of this run...
        assert dl.read_piece(m.rid, 1) is not None
        # ...until verify() (or rehash=True) hashes them again
        assert dl.verify(m.rid) == [1]
        assert dl.read_piece(m.rid, 1) is None and dl.missing_pieces(m.rid) == [1]


def test_download_larger_than_the_limit_is_refused_up_front(tmp_path: Path, store: Store,
                                                             media: dict[str, Path]) -> None:
    m = store.import_file(media["png"])
    with Store(tmp_path / "small", piece_size=PIECE, limit_bytes=m.size - 1) as small:
        assert small.room_for_download() == m.size - 1  # what the web UI asks before a 202
        with pytest.raises(StoreFullError, match="cannot fit"):
            small.begin_download(m)
        assert m.rid not in small
    assert store.room_for_download() is None  # no limit
    with pytest.raises(StoreError, match="cannot write"):
        store.export(m.rid, tmp_path / "no" / "such" / "dir.png")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(st.tuples(st.integers(0, 9), st.booleans()), max_size=40))
def test_bitmap_matches_good_writes_and_survives_reopen(tmp_path: Path,
                                                        writes: list[tuple[int, bool]]) -> None:
    """Pieces written in any order, some corrupted: the bitmap holds exactly the good ones,
    before and after reopening, and the bytes read back are the original ones."""
    data = bytes(range(256)) * (PIECE * 10 // 256 - 3)  # 10 pieces, the last one short
    hashes = tuple(hashlib.sha256(data[i:i + PIECE]).digest() for i in range(0, len(data), PIECE))
    m = Manifest(name="x.mp4", size=len(data), mime="video/mp4", category="video",
                 piece_size=PIECE, piece_hashes=hashes)
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    good: set[int] = set()
    with Store(root, piece_size=PIECE) as s:
        s.begin_download(m)
        for index, corrupt in writes:
            piece = data[index * PIECE:(index + 1) * PIECE]
            if corrupt:
                piece = piece[:-1] + bytes([piece[-1] ^ 0x55])
            assert s.write_piece(m.rid, index, piece) is (not corrupt)
            if not corrupt:
                good.add(index)
    with Store(root, piece_size=PIECE) as s:
        assert set(range(10)) - set(s.missing_pieces(m.rid)) == good
        assert s.used_bytes == sum(m.piece_length(i) for i in good)
        for i in good:
            assert s.read_piece(m.rid, i) == data[i * PIECE:(i + 1) * PIECE]
        assert s.is_complete(m.rid) is (len(good) == 10)


async def test_removal_during_an_async_export_is_reported(tmp_path: Path, store: Store,
                                                          media: dict[str, Path]) -> None:
    m = store.import_file(media["png"], copy=True)
    async with trio.open_nursery() as nursery:
        async def remove_soon() -> None:
            await trio.lowlevel.checkpoint()
            store.remove(m.rid)

        nursery.start_soon(remove_soon)
        with pytest.raises(UnknownItem, match="removed during the export"):
            await store.export_async(m.rid, tmp_path / "out.png")
    assert not_written(tmp_path, "out.png")


def test_an_export_replaces_only_a_regular_file(tmp_path: Path, store: Store,
                                                media: dict[str, Path]) -> None:
    # `p2pkit get -o /dev/null` as root renamed the download onto /dev/null
    m = store.import_file(media["png"], copy=True)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "dir" / m.name).mkdir(parents=True)  # the manifest's name, taken by a directory
    for dest in (fifo, tmp_path / "dir"):
        with pytest.raises(StoreError, match="exists and is not a regular file"):
            store.export(m.rid, dest)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and not list(tmp_path.glob("**/.*.part"))
    old = tmp_path / "old.png"
    old.write_bytes(b"old")  # a regular file is replaced, as by cp or curl -o
    assert store.export(m.rid, old).read_bytes() == media["png"].read_bytes()


def test_an_export_under_a_file_says_why(tmp_path: Path, store: Store, media: dict[str, Path]) -> None:
    # the cleanup's NotADirectoryError used to replace the StoreError
    m = store.import_file(media["png"], copy=True)
    (tmp_path / "notes.txt").write_text("a file, not a directory")
    with pytest.raises(StoreError, match=r"cannot write .*Not a directory"):
        store.export(m.rid, tmp_path / "notes.txt" / "x.png")


def not_written(directory: Path, name: str) -> bool:
    """Neither the file nor a temporary ``.p2pkit-*.part`` is there."""
    return not (directory / name).exists() and not list(directory.glob(".p2pkit-*.part"))


def test_an_export_removes_what_a_killed_export_left_in_the_folder(tmp_path: Path, store: Store,
                                                                   media: dict[str, Path]) -> None:
    # `kill -9` of `p2pkit get -o out/` while it wrote left ".p2pkit-3843-0204a179.part",
    # as large as the file, hidden in out/ for ever: no later run knew it as its own
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)
    out = tmp_path / "out"
    out.mkdir()
    left = out / f".p2pkit-{dead_pid}-0204a179.part"
    recent = out / f".p2pkit-{dead_pid}-11111111.part"  # maybe still written (a shared folder)
    running = out / f".p2pkit-{os.getpid()}-22222222.part"  # a live process's export
    mine = out / ".p2pkit-notes.part"  # not an export's name
    for path in (left, recent, running, mine):
        path.write_bytes(b"partial")
    old = time.time() - 3600
    for path in (left, running, mine):
        os.utime(path, (old, old))
    m = store.import_file(media["png"], copy=True)
    store.export(m.rid, out)
    assert not left.exists() and recent.exists() and running.exists() and mine.exists()
    assert (out / m.name).read_bytes() == media["png"].read_bytes()
