"""Piece-addressed, verified content on top of the FileStore.

Own shares are hashed into a :class:`Manifest` and pinned. By default they are kept by
reference (no copy): the store remembers the path, size and mtime, and every piece read
from the file is checked against its hash in the manifest, so a file changed or deleted after sharing
is detected and never served; ``copy=True`` copies the file into the store instead.
Downloads are written piece by piece into a sparse file after their hash is checked; the
have-bitmap lives in SQLite, so a download resumes after a restart; a piece counts as
stored only once its bit is committed there (a write that fails, e.g. on a full disk, is a
StoreError — DiskFullError — and leaves the pieces stored before as they were). A piece is verified
again every time it is read (hashing costs far less than the disk or network), so bytes
damaged on disk or left half-written by a crash are never served.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs
import msgspec

from p2pkit.filenames import plain_name
from p2pkit.rids import is_rid

from ._errors import (
    IncompleteContent,
    StoreError,
    StoreFullError,
    UnknownItem,
    UnsupportedMedia,
    write_failure,
)
from ._filestore import FileStore, log, write_all
from ._leaves import block_root
from ._manifest import (
    DEFAULT_PIECE_SIZE,
    MAX_DURATION,
    MAX_PIECE_SIZE,
    MIN_PIECE_SIZE,
    Manifest,
)
from ._media import HEADER_BYTES, MediaInfo, probe, sniff

CONTENT_DIR = "content"
ProgressFn = Callable[[int, int], None]  # (bytes done, total)
ContentCallback = Callable[[str, str], None]  # (event "added"|"completed"|"removed", rid)


def _bit(have: bytearray | bytes, i: int) -> bool:
    return bool(have[i >> 3] & (0x80 >> (i & 7)))


def _set_bit(have: bytearray, i: int, value: bool) -> None:
    if value:
        have[i >> 3] |= 0x80 >> (i & 7)
    else:
        have[i >> 3] &= ~(0x80 >> (i & 7)) & 0xFF


def _full_bitmap(n: int) -> bytearray:
    have = bytearray(b"\xff" * (n >> 3))
    if n & 7:
        have.append((0xFF << (8 - (n & 7))) & 0xFF)
    return have


@attrs.define
class _Content:
    manifest: Manifest
    pinned: bool
    source: str | None  # own share kept by reference
    source_size: int | None
    source_mtime_ns: int | None
    have: bytearray
    have_count: int
    stored_bytes: int
    mtime_ms: int
    seq: int
    added_ms: int
    data_path: str
    broken: bool = False  # a referenced source changed or vanished
    # pieces hashed (on write or first read) by this process: their bytes are not hashed
    # again while the process runs (a restart starts with none verified)
    verified: bytearray = attrs.field(factory=bytearray)

    @property
    def complete(self) -> bool:
        return self.have_count == self.manifest.num_pieces and not self.broken


class ItemInfo(msgspec.Struct, frozen=True):
    """One piece of content as listed by ``items()``."""

    rid: str
    name: str
    title: str
    description: str
    size: int
    mime: str
    category: str
    duration: float | None
    pinned: bool
    complete: bool
    have_pieces: int
    num_pieces: int
    stored_bytes: int  # bytes this item occupies in the store (0 for a share by reference)
    source: str | None  # path of an own share kept by reference
    broken: bool
    added_ms: int
    mtime_ms: int


def _plausible(duration: float | None) -> float | None:
    """A duration a peer's decoder accepts (a damaged header can claim anything): else none."""
    if duration is None or not 0 <= duration <= MAX_DURATION:  # NaN fails both
        return None
    return duration


def _plain_text(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")[:4096]


R = TypeVar("R")


@attrs.frozen
class _Blocking:
    """A step that holds the CPU for a while without checkpoints (decoding an image for its
    thumbnail): run in a worker thread where the store may use threads; its result is
    sent back into the step generator."""

    call: Callable[[], Any]


Steps = Generator[_Blocking | None, Any, R]


def _run(steps: Steps[R]) -> R:
    """Drive a step generator (import, export) to its end; its return value."""
    result: Any = None
    while True:
        try:
            step = steps.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        result = None if step is None else step.call()


def virtual_time() -> bool:
    """True when trio's clock is virtual (a ``trio.testing.MockClock``: the simulator's, or
    a test's autojump clock). There the store never waits on a worker thread: under
    autojump a task waiting on a thread counts as blocked, so the clock would jump to the
    next timer while the thread runs — a share took 107 virtual seconds, a different
    number in every run."""
    import trio
    import trio.testing

    return isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)


async def _run_yielding(steps: Steps[R], threads: bool = False) -> R:
    """Like :func:`_run`, yielding to trio between steps so a large file does not stall
    the node. Blocking steps run in a worker thread only with ``threads`` and on a real
    clock (see :func:`virtual_time`). Cancelled at a checkpoint, the steps are closed at
    once (their files closed, a partial copy removed), not whenever the exception's
    traceback, which holds them, is collected."""
    import trio

    threads = threads and not virtual_time()
    try:
        result: Any = None
        while True:
            try:
                step = steps.send(result)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            if step is not None and threads:
                result = await trio.to_thread.run_sync(step.call)
                continue
            result = None if step is None else step.call()
            await trio.lowlevel.checkpoint()
    finally:
        steps.close()


class Store(FileStore):
    """FileStore plus verified content: import, download pieces, serve, export."""

    def __init__(self, root: Path | str, *, piece_size: int = DEFAULT_PIECE_SIZE,
                 copy_shares: bool = False, thumbnail_px: int = 160, **kwargs: Any) -> None:
        if not MIN_PIECE_SIZE <= piece_size <= MAX_PIECE_SIZE or piece_size & (piece_size - 1):
            raise ValueError("piece_size must be a power of two between 16 KiB and 16 MiB")
        self.piece_size = piece_size
        self.copy_shares = copy_shares
        self.thumbnail_px = thumbnail_px
        # decode thumbnails in a worker thread during import_file_async (real nodes only,
        # and never in virtual time: see virtual_time())
        self.probe_in_thread = False
        self._content: dict[str, _Content] = {}
        # downloads running now: never evicted for another (three downloads into a store
        # that held two each evicted the others' pieces and failed half-way, wasting them)
        self._downloading: set[str] = set()
        self.on_content: ContentCallback | None = None
        super().__init__(root, **kwargs)

    # ------------------------------------------------------------------ recovery

    def _recover(self) -> None:
        super()._recover()
        cdir = self.root / CONTENT_DIR
        cdir.mkdir(exist_ok=True)
        rows = self._db.execute(
            "SELECT rid, manifest, pinned, source, source_size, source_mtime_ns, have, "
            "stored_bytes, mtime_ms, seq, added_ms FROM content"
        ).fetchall()
        for (rid, blob, pinned, source, ssize, smtime, have, stored_bytes, mtime_ms, seq,
             added_ms) in rows:
            try:
                manifest = Manifest.decode(bytes(blob), rid=rid)
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                # damaged, or stored under rules of an older version (a name with a
                # leading dot or a control character: no peer takes it any more)
                where = f" (shared from {os.fsdecode(source)})" if source is not None else ""
                log.warning("store: dropped %s%s: its manifest is not valid here: %s; "
                            "share the file again", rid[:12], where, exc)
                self._db.execute("DELETE FROM content WHERE rid = ?", (rid,))
                continue
            if source is not None:  # stored as bytes: a path need not be valid UTF-8
                source = os.fsdecode(source if isinstance(source, bytes) else str(source))
            item = _Content(manifest, bool(pinned), source, ssize, smtime, bytearray(have), 0, 0,
                            mtime_ms, seq, added_ms, str(cdir / rid))
            if len(item.have) != (manifest.num_pieces + 7) // 8:
                item.have = bytearray((manifest.num_pieces + 7) // 8)
            if source is None:
                self._reconcile_data_file(item)
            else:
                item.broken = not (self._source_unchanged(item)
                                   or self._source_still_matches(rid, item, hash_now=True))
            item.have_count = sum(_bit(item.have, i) for i in range(manifest.num_pieces))
            self._content[rid] = item
            self._used += item.stored_bytes
            self._seq = max(self._seq, seq)
            if bytes(item.have) != bytes(have) or item.stored_bytes != stored_bytes:
                self._persist_have(rid, item)
        for entry in cdir.iterdir():
            if entry.name not in self._content or entry.name.endswith(".part"):
                self.counters["recovered_orphans"] += 1
                with contextlib.suppress(OSError):
                    entry.unlink()

    def _reconcile_data_file(self, item: _Content) -> None:
        """Clear the bits of pieces the data file cannot hold (lost or short file)."""
        try:
            on_disk = os.stat(item.data_path).st_size
        except FileNotFoundError:
            on_disk = 0
        stored = 0
        m = item.manifest
        for i in range(m.num_pieces):
            if _bit(item.have, i):
                if i * m.piece_size + m.piece_length(i) > on_disk:
                    _set_bit(item.have, i, False)
                    self.counters["recovered_truncations"] += 1
                else:
                    stored += m.piece_length(i)
        item.stored_bytes = stored

    def _source_unchanged(self, item: _Content) -> bool:
        try:
            st = os.stat(item.source or "")
        except OSError:
            return False
        return st.st_size == item.source_size and st.st_mtime_ns == item.source_mtime_ns

    def _source_still_matches(self, rid: str, item: _Content, *, hash_now: bool) -> bool:
        """A shared file's ``stat`` changed. Another size: it changed. The same size (it
        was touched, or copied over with the same bytes; after a restart such a share was
        marked broken for good): its new ``stat`` is adopted and its pieces are hashed
        again — all of them now (``hash_now``: at start, so that an edited file is never
        listed), or each at its next read — and one that does not match breaks it."""
        try:
            st = os.stat(item.source or "")
        except OSError:
            return False
        if st.st_size != item.source_size:
            return False
        if hash_now:
            m = item.manifest
            try:
                with open(item.source or "", "rb") as f:
                    if not all(m.piece_matches(i, f.read(m.piece_length(i)))
                               for i in range(m.num_pieces)):
                        return False
            except OSError:
                return False
        item.source_mtime_ns = st.st_mtime_ns
        item.verified = bytearray()  # nothing read before the change is trusted
        self._handles.close(item.source or "")
        if hash_now:  # (else only once a piece fails: see _forget_damaged)
            self._persist_source_mtime(rid, st.st_mtime_ns)
        return True

    def _persist_source_mtime(self, rid: str, mtime_ns: int) -> None:
        self._db.execute("UPDATE content SET source_mtime_ns = ? WHERE rid = ?", (mtime_ns, rid))

    def _persist_have(self, rid: str, item: _Content) -> None:
        self._db.execute(
            "UPDATE content SET have = ?, stored_bytes = ?, mtime_ms = ?, seq = ? WHERE rid = ?",
            (bytes(item.have), item.stored_bytes, item.mtime_ms, item.seq, rid),
        )

    # ------------------------------------------------------------------ eviction hooks

    def _eviction_candidates(self) -> Iterator[tuple[int, str, str, int]]:
        yield from super()._eviction_candidates()
        for rid, item in self._content.items():
            if not item.pinned and item.stored_bytes and rid not in self._downloading:
                yield item.seq, "content", rid, item.stored_bytes

    def _drop(self, kind: str, key: str) -> None:
        if kind == "sid":
            super()._drop(kind, key)
            return
        with self._writing(f"removing {key}"):  # failed: it is all still here
            self._db.execute("DELETE FROM content WHERE rid = ?", (key,))
        item = self._content.pop(key)
        self._handles.close(item.data_path)
        if item.source:
            self._handles.close(item.source)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(item.data_path)
        self._used -= item.stored_bytes
        if self.on_content is not None:
            self.on_content("removed", key)

    # ------------------------------------------------------------------ import (own shares)

    def import_file(self, path: Path | str, *, title: str | None = None, description: str = "",
                    progress: ProgressFn | None = None, copy: bool | None = None,
                    pinned: bool = True) -> Manifest:
        """Hash ``path`` into a manifest and keep it as an own share (pinned).

        UnsupportedMedia if the bytes are not audio, video or an image. ``copy`` (default:
        the store's ``copy_shares``) copies the file into the store instead of keeping a
        reference. Importing the same file with the same texts again returns the same rid.
        """
        return _run(self._import_steps(Path(path), title, description, progress, copy, pinned))

    async def import_file_async(self, path: Path | str, *, title: str | None = None,
                                description: str = "", progress: ProgressFn | None = None,
                                copy: bool | None = None, pinned: bool = True) -> Manifest:
        """Like ``import_file`` but yields to trio between pieces, so a large file does not
        stall the node (no threads: safe in the simulator)."""
        return await _run_yielding(
            self._import_steps(Path(path), title, description, progress, copy, pinned),
            threads=self.probe_in_thread)

    def _import_steps(self, path: Path, title: str | None, description: str,
                      progress: ProgressFn | None, copy: bool | None,
                      pinned: bool) -> Steps[Manifest]:
        copy = self.copy_shares if copy is None else copy
        try:
            path = path.resolve(strict=True)
            st = path.stat()
        except OSError as exc:
            raise StoreError(f"cannot import {path}: {exc.strerror}") from None
        if not path.is_file():
            raise StoreError(f"cannot import {path}: not a regular file")
        if st.st_size == 0:
            raise UnsupportedMedia(f"{path.name}: the file is empty")
        with path.open("rb") as f:
            media = sniff(f.read(HEADER_BYTES), path.name)
        yield None
        tmp = self.root / CONTENT_DIR / f"import-{os.getpid()}-{id(path):x}.part"
        roots: list[bytes] = []
        done = 0
        # a copy that fails for want of room is a DiskFullError (the partial copy goes)
        guard = self._writing(f"copying {path.name} into the store") if copy else contextlib.nullcontext()
        try:
            with guard, path.open("rb") as src, \
                    (tmp.open("wb") if copy else contextlib.nullcontext()) as out:
                while chunk := src.read(self.piece_size):
                    roots.append(block_root(chunk))
                    if out is not None:
                        out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, st.st_size)
                    yield None
            after = path.stat()
            if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns) or done != st.st_size:
                raise StoreError(f"{path.name} changed while it was being imported")
            info: MediaInfo = yield _Blocking(functools.partial(
                probe, path, media, self.thumbnail_px))
            manifest = Manifest(
                name=plain_name(path.name), size=st.st_size, mime=media.mime,
                category=media.category,  # type: ignore[arg-type]
                piece_size=self.piece_size, piece_hashes=(),
                title=_plain_text(path.stem if title is None else title),
                description=_plain_text(description), duration=_plausible(info.duration),
                width=info.width, height=info.height, thumbnail=info.thumbnail,
                block_roots=tuple(roots),
            )
            self._add_share(manifest, path, st, tmp if copy else None, pinned)
            return manifest
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _add_share(self, manifest: Manifest, path: Path, st: os.stat_result,
                   copied: Path | None, pinned: bool) -> None:
        rid = manifest.rid
        with self._lock:
            self._check_open()
            old = self._content.get(rid)
            # the same bytes shared again from elsewhere keep the reference while it holds:
            # moving it to the newest path broke the share when that copy was deleted
            if old is not None and old.complete and (
                    old.source is None or old.source == str(path) or self._source_unchanged(old)):
                if pinned and not old.pinned:
                    self.pin_content(rid)
                return
            if old is not None:
                self._drop("content", rid)  # a partial download or a broken reference: replace it
            stored = manifest.size if copied is not None else 0
            self._reserve(stored, keep=None)
            item = _Content(
                manifest, pinned, None if copied else str(path),
                None if copied else st.st_size, None if copied else st.st_mtime_ns,
                _full_bitmap(manifest.num_pieces), manifest.num_pieces, stored, 0, 0, 0,
                str(self.root / CONTENT_DIR / rid),
            )
            item.seq, item.mtime_ms = self._tick()
            item.added_ms = item.mtime_ms
            with self._writing(f"adding {manifest.name}"):
                if copied is not None:
                    if self.durable:
                        with copied.open("rb+") as f:
                            os.fsync(f.fileno())
                    os.replace(copied, item.data_path)  # before the row: an orphan is cleaned on open
                self._insert(rid, item)
            self._content[rid] = item
            self._used += stored
        if self.on_content is not None:
            self.on_content("added", rid)

    def _insert(self, rid: str, item: _Content) -> None:
        self._db.execute(
            "INSERT INTO content(rid, manifest, pinned, source, source_size, source_mtime_ns, "
            "have, stored_bytes, mtime_ms, seq, added_ms) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
            (rid, item.manifest.encode(), int(item.pinned),
             None if item.source is None else os.fsencode(item.source), item.source_size,
             item.source_mtime_ns, bytes(item.have), item.stored_bytes, item.mtime_ms,
             item.seq, item.added_ms),
        )

    # ------------------------------------------------------------------ downloads

    def begin_download(self, manifest: Manifest) -> bool:
        """Start keeping ``manifest``'s pieces; False if the content is already known."""
        if not isinstance(manifest, Manifest):
            raise TypeError("begin_download expects a Manifest")
        rid = manifest.rid
        with self._lock:
            self._check_open()
            if rid in self._content:
                return False
            self._check_room(manifest)
            item = _Content(manifest, False, None, None, None,
                            bytearray((manifest.num_pieces + 7) // 8), 0, 0, 0, 0, 0,
                            str(self.root / CONTENT_DIR / rid))
            item.seq, item.mtime_ms = self._tick()
            item.added_ms = item.mtime_ms
            with self._writing(f"beginning the download of {manifest.name} ({rid})"):
                self._insert(rid, item)
            self._content[rid] = item
            return True

    def room_for_download(self, rid: str | None = None) -> int | None:
        """The largest download the limit lets us keep beside the pinned items and the
        other downloads running (all else may be evicted for it); None without a limit."""
        if self._limit is None:
            return None
        return max(0, self._limit - self._pinned_bytes() - self._running_bytes(rid))

    def _running_bytes(self, rid: str | None) -> int:
        """The full size of the downloads running, ``rid``'s aside."""
        return sum(item.manifest.size for key, item in self._content.items()
                   if key in self._downloading and key != rid)

    def _check_room(self, manifest: Manifest) -> None:
        if self._limit is None:
            return
        pinned, running = self._pinned_bytes(), self._running_bytes(manifest.rid)
        if manifest.size > self._limit - pinned - running:
            raise StoreFullError(
                f"{manifest.name} ({manifest.size} bytes) cannot fit: the storage limit "
                f"(cfg.cache_limit_mb) is {self._limit} bytes and pinned items hold {pinned}"
                + (f", other downloads running {running}" if running else ""))

    @contextlib.contextmanager
    def downloading(self, rid: str) -> Iterator[None]:
        """While in it, ``rid`` (begun) is a running download: it is never evicted for
        another, and the room it needs is kept from other downloads. StoreFullError if it
        does not fit beside them (a download resumed after the limit was lowered too)."""
        with self._lock:
            self._check_open()
            self._check_room(self._item(rid).manifest)
            self._downloading.add(rid)
        try:
            yield
        finally:
            with self._lock:
                self._downloading.discard(rid)

    def _pinned_bytes(self) -> int:
        return (sum(o.size for o in self._objects.values() if o.pinned)
                + sum(c.stored_bytes for c in self._content.values() if c.pinned))

    def write_piece(self, rid: str, index: int, data: bytes | bytearray | memoryview) -> bool:
        """Store piece ``index`` if it matches its hash in the manifest; False (nothing stored)
        for a wrong hash, length or index. UnknownItem if ``rid`` was never begun (or was
        evicted); StoreFullError if it does not fit under the limit."""
        with self._lock:
            self._check_open()
            item = self._item(rid)
            m = item.manifest
            if not isinstance(index, int) or not 0 <= index < m.num_pieces:
                return False
            if len(data) != m.piece_length(index):
                return False
            if not m.piece_matches(index, data):
                return False
            if _bit(item.have, index) or item.source is not None:
                return True
            self._reserve(len(data), keep=("content", rid))
            have = bytearray(item.have)
            _set_bit(have, index, True)
            seq, now = self._tick()
            stored = attrs.evolve(item, have=have, have_count=item.have_count + 1,
                                  stored_bytes=item.stored_bytes + len(data), seq=seq, mtime_ms=now)
            # the piece counts once its bit is committed; until then ``item`` is unchanged,
            # so a write that fails (a full disk) leaves the store as it was
            with self._writing(f"writing piece {index} of {rid}"):
                fd = self._handles.get(item.data_path, create=True)
                write_all(fd, data, index * m.piece_size)
                if self.durable:
                    os.fsync(fd)
                self._persist_have(rid, stored)
            item.have, item.have_count, item.stored_bytes = have, stored.have_count, stored.stored_bytes
            item.seq, item.mtime_ms = seq, now
            self._mark_verified(item, index)
            self._used += len(data)
            completed = item.have_count == m.num_pieces
        if completed and self.on_content is not None:
            self.on_content("completed", rid)
        return True

    def _item(self, rid: str) -> _Content:
        item = self._content.get(rid) if isinstance(rid, str) else None
        if item is None:
            raise UnknownItem(f"no content with rid {rid!r:.80}")
        return item

    def has_piece(self, rid: str, index: int) -> bool:
        item = self._content.get(rid)
        return (item is not None and not item.broken and isinstance(index, int)
                and 0 <= index < item.manifest.num_pieces and _bit(item.have, index))

    def have_bitmap(self, rid: str) -> bytes:
        """The have-bitmap (bit i, MSB first, = piece i present); all zero when broken."""
        with self._lock:
            item = self._item(rid)
            return bytes(len(item.have)) if item.broken else bytes(item.have)

    def missing_pieces(self, rid: str) -> list[int]:
        with self._lock:
            item = self._item(rid)
            n = item.manifest.num_pieces
            return list(range(n)) if item.broken else [i for i in range(n) if not _bit(item.have, i)]

    def progress(self, rid: str) -> tuple[int, int]:
        """(pieces present, pieces in total)."""
        item = self._item(rid)
        return (0 if item.broken else item.have_count), item.manifest.num_pieces

    def read_piece(self, rid: str, index: int, *, rehash: bool = False) -> bytes | None:
        """Piece ``index``, checked against its hash in the manifest; None if absent or damaged (a
        damaged piece is forgotten so it is fetched again). A piece is hashed the first
        time this process reads it (or when it was written); later reads trust that,
        unless ``rehash``. An own share's file is checked with ``stat`` on every read."""
        with self._lock:
            item = self._content.get(rid)
            if item is None or not self.has_piece(rid, index) or self._closed:
                return None
            if (item.source is not None and not self._source_unchanged(item)
                    and not self._source_still_matches(rid, item, hash_now=False)):
                self._forget_damaged(rid, item, index)
                return None
            m = item.manifest
            length = m.piece_length(index)
            try:
                if item.source is not None:
                    fd = self._handles.get(item.source, writable=False)
                else:
                    fd = self._handles.get(item.data_path)
                data = os.pread(fd, length, index * m.piece_size)
            except OSError:
                data = b""
            if len(data) == length:
                if not rehash and item.verified and _bit(item.verified, index):
                    return data
                if m.piece_matches(index, data):
                    self._mark_verified(item, index)
                    return data
            self._forget_damaged(rid, item, index)
            return None

    @staticmethod
    def _mark_verified(item: _Content, index: int) -> None:
        if not item.verified:
            item.verified = bytearray(len(item.have))
        _set_bit(item.verified, index, True)

    def _forget_damaged(self, rid: str, item: _Content, index: int) -> None:
        self.counters.setdefault("damaged_pieces", 0)
        self.counters["damaged_pieces"] += 1
        try:
            if item.source is not None:
                item.broken = True  # the shared file changed: nothing of it can be trusted
                if item.source:
                    self._handles.close(item.source)
                # and an mtime no file has, so that the next open hashes it again rather
                # than take the file, edited while we ran (its new mtime taken), as intact
                with self._writing(f"marking the share {rid} changed"):
                    self._persist_source_mtime(rid, -1)
                return
            _set_bit(item.have, index, False)
            if item.verified:
                _set_bit(item.verified, index, False)
            item.have_count -= 1
            item.stored_bytes -= item.manifest.piece_length(index)
            self._used -= item.manifest.piece_length(index)
            with self._writing(f"forgetting damaged piece {index} of {rid}"):
                self._persist_have(rid, item)
        except StoreError as exc:  # a read must not fail for it: the next open hashes it again
            log.warning("store: %s; it is not served meanwhile", exc)

    def read_content(self, rid: str, begin: int, end: int) -> bytes | None:
        """Bytes ``[begin, end)`` of the content (``end`` clipped to its size) if every
        piece they span is present and verified; None otherwise (HTTP Range serving:
        the caller bounds the range, this returns it in one piece of memory)."""
        item = self._content.get(rid)
        if item is None or begin < 0 or end < begin:
            return None
        m = item.manifest
        end = min(end, m.size)
        if begin >= end:
            return b""
        first, last = begin // m.piece_size, (end - 1) // m.piece_size
        parts = []
        for i in range(first, last + 1):
            piece = self.read_piece(rid, i)
            if piece is None:
                return None
            parts.append(piece)
        joined = b"".join(parts)
        offset = first * m.piece_size
        return joined[begin - offset:end - offset]

    def verify(self, rid: str) -> list[int]:
        """Re-hash every present piece; returns the indices found damaged (now forgotten)."""
        item = self._item(rid)
        bad = []
        for i in range(item.manifest.num_pieces):
            if _bit(item.have, i) and not item.broken and self.read_piece(rid, i, rehash=True) is None:
                bad.append(i)
        return bad

    def is_complete(self, rid: str) -> bool:
        item = self._content.get(rid)
        return item is not None and item.complete

    # ------------------------------------------------------------------ queries

    def manifest(self, rid: str) -> Manifest | None:
        item = self._content.get(rid) if isinstance(rid, str) else None
        return None if item is None else item.manifest

    def manifest_bytes(self, rid: str) -> bytes | None:
        """The canonical encoding to send to a peer (hashes to ``rid``)."""
        m = self.manifest(rid)
        return None if m is None else m.encode()

    def items(self) -> list[ItemInfo]:
        with self._lock:
            ordered = sorted(self._content.items(), key=lambda kv: kv[1].added_ms)
            return [self._info(rid, item) for rid, item in ordered]

    def item(self, rid: str) -> ItemInfo | None:
        with self._lock:
            item = self._content.get(rid)
            return None if item is None else self._info(rid, item)

    @staticmethod
    def _info(rid: str, item: _Content) -> ItemInfo:
        m = item.manifest
        return ItemInfo(
            rid=rid, name=m.name, title=m.title, description=m.description, size=m.size,
            mime=m.mime, category=m.category, duration=m.duration, pinned=item.pinned,
            complete=item.complete, have_pieces=0 if item.broken else item.have_count,
            num_pieces=m.num_pieces, stored_bytes=item.stored_bytes, source=item.source,
            broken=item.broken, added_ms=item.added_ms, mtime_ms=item.mtime_ms,
        )

    def __contains__(self, rid: object) -> bool:
        return rid in self._content

    def pin_content(self, rid: str, pinned: bool = True) -> None:
        with self._lock:
            item = self._item(rid)
            with self._writing(f"pinning {rid}"):
                self._db.execute("UPDATE content SET pinned = ? WHERE rid = ?", (int(pinned), rid))
            item.pinned = pinned

    def remove(self, rid: str) -> bool:
        """Forget content ``rid`` (an own share's original file is left alone)."""
        with self._lock:
            self._check_open()
            if not is_rid(rid) or rid not in self._content:
                return False
            self._drop("content", rid)
            return True

    # ------------------------------------------------------------------ export

    def export(self, rid: str, dest: Path | str) -> Path:
        """Write the complete, verified content to ``dest`` (atomically: a temporary file
        renamed into place). A directory ``dest`` receives the manifest's file name."""
        return _run(self._export_steps(rid, Path(dest)))

    async def export_async(self, rid: str, dest: Path | str) -> Path:
        return await _run_yielding(self._export_steps(rid, Path(dest)))

    def _export_steps(self, rid: str, dest: Path) -> Steps[Path]:
        item = self._item(rid)
        if not item.complete:
            raise IncompleteContent(f"{rid} misses {item.manifest.num_pieces - item.have_count} pieces")
        if dest.is_dir():
            dest = dest / item.manifest.name
        if dest.is_dir() or (dest.exists() and not dest.is_file()):
            # the export renames a file onto ``dest``: that would replace a device, a
            # FIFO or a socket (``/dev/null``), and cannot replace a directory
            raise StoreError(f"cannot write {dest}: it exists and is not a regular file")
        remove_stale_exports(dest.parent)
        # short, whatever the name's length: ".NAME.PID.part" of a 250-byte name was too
        # long for the file system, and a whole download was lost at the last step
        tmp = dest.with_name(f".p2pkit-{os.getpid()}-{secrets.token_hex(4)}.part")
        try:
            try:
                out = tmp.open("wb")
            except OSError as exc:
                raise StoreError(f"cannot write {dest}: {exc.strerror}") from None
            try:
                with out:
                    for i in range(item.manifest.num_pieces):
                        piece = self.read_piece(rid, i)
                        if piece is None:
                            if rid not in self._content:
                                raise UnknownItem(f"{rid} was removed during the export")
                            raise IncompleteContent(f"piece {i} of {rid} is damaged; fetch it again")
                        out.write(piece)
                        yield None
            except OSError as exc:  # the disk it goes to filled up: DiskFullError naming it
                raise write_failure(f"writing {dest}", exc, dest.parent, str(dest.parent)) from exc
            try:
                os.replace(tmp, dest)
            except OSError as exc:
                raise StoreError(f"cannot write {dest}: {exc.strerror}") from None
        finally:
            # nothing to remove, or no directory to remove it from (NotADirectoryError
            # replaced the StoreError that said why)
            with contextlib.suppress(OSError):
                tmp.unlink()
        return dest

    def clear(self) -> None:
        """Remove every unpinned item (tests, 'clear cache' buttons)."""
        with self._lock:
            for _, kind, key, _size in sorted(self._eviction_candidates()):
                self._drop(kind, key)
            for rid in [r for r, it in self._content.items() if not it.pinned and not it.stored_bytes]:
                self._drop("content", rid)


_EXPORT_PART = re.compile(r"\.p2pkit-([0-9]{1,10})-[0-9a-f]{8}\.part")
STALE_EXPORT_S = 60.0  # untouched this long, by a process that is gone


def remove_stale_exports(directory: Path) -> int:
    """Remove the temporary files of exports whose process is gone (``kill -9`` during
    ``p2pkit get`` left one, hidden, as large as the file, in the user's folder for ever:
    its name holds a PID and random digits no later run would recognise). Returns how
    many. A file still written to (another host's process on a shared folder) is kept."""
    removed = 0
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            match = _EXPORT_PART.fullmatch(entry.name)
            if match is None or _process_alive(int(match.group(1))):
                continue
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and now - st.st_mtime > STALE_EXPORT_S:
                    os.unlink(entry.path)
                    removed += 1
                    log.info("removed %s, left by an export that never finished", entry.path)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # ours: an export of this process may be running
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # someone else's process: alive
    return True


__all__ = ["ItemInfo", "Store"]
