"""FileStore: the seed's resource store (seed 004 §3.1.4, §4.4).

Resources are byte strings named by a ``sid``, created empty and grown by sequential
``append``; ``read(sid, begin, end)`` returns a range. A storage limit is enforced before
every write by evicting the least recently modified unpinned items. Metadata lives in
SQLite (WAL) next to the files; file names are SHA-256 of the sid, so a sid is never a
path.

Crash consistency: an append writes the bytes first and commits the new size second.
A process killed in between leaves bytes past the committed size; opening the store
truncates every file to its committed size, so a half-written append is never served.
Files without a row (a crash during create or delete) are removed; rows without a file
are dropped. ``used_bytes`` is recomputed from the rows, never persisted as a counter
that could drift.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from . import _db
from ._errors import InvalidSid, StoreError, StoreFullError, UnknownItem
from ._handles import HandleCache

log = logging.getLogger("p2pkit.store")

MAX_SID_BYTES = 1024
DB_NAME = "store.sqlite3"
OBJECTS_DIR = "objects"
CHECKPOINT_WAL_BYTES = 1 << 20  # the sweep checkpoints once the WAL holds this much

EvictCallback = Callable[[str, str, int], None]  # (kind "sid"|"content", key, bytes freed)


def check_sid(sid: object) -> str:
    """Validate a sid: a non-empty str of at most 1024 UTF-8 bytes without NUL."""
    if not isinstance(sid, str) or not sid or "\x00" in sid:
        raise InvalidSid(f"sid must be a non-empty string without NUL, got {sid!r:.80}")
    try:
        if len(sid.encode("utf-8")) > MAX_SID_BYTES:
            raise InvalidSid(f"sid longer than {MAX_SID_BYTES} bytes")
    except UnicodeEncodeError:  # lone surrogates
        raise InvalidSid("sid is not valid Unicode") from None
    return sid


def sid_filename(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


@attrs.define
class _Object:
    path: str
    size: int
    mtime_ms: int
    seq: int
    pinned: bool


@attrs.frozen
class ObjectInfo:
    """A seed resource as listed by ``objects()``."""

    sid: str
    size: int
    mtime_ms: int
    pinned: bool


def write_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """pwrite until everything is written (a regular file may take it in parts)."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


class FileStore:
    """The seed's FileStore. Thread-safe (one lock); every call is short and synchronous."""

    def __init__(
        self,
        root: Path | str,
        *,
        limit_bytes: int | None = None,
        idle_close_s: float = 5.0,
        durable: bool = False,
        volatile: bool = False,
        commit_delay_s: float = 0.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = Path(root)
        self.idle_close_s = idle_close_s
        if durable and volatile:
            raise ValueError("a store cannot be both durable and volatile")
        self.durable = durable
        # volatile: thrown away at exit (ephemeral nodes, the simulator): SQLite never
        # syncs, which makes opening ~30x cheaper; a crash may then leave it unusable
        self.volatile = volatile
        # > 0: appends commit their new size at most this late (group commit). After a
        # crash the store still reopens consistent (every file is cut back to a committed
        # size), but appends of the last ``commit_delay_s`` may be gone.
        self.commit_delay_s = commit_delay_s
        self._dirty: set[str] = set()
        self._dirty_since = 0.0
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.RLock()
        self._limit = limit_bytes
        self._used = 0
        self._seq = 0
        self._objects: dict[str, _Object] = {}
        self.on_evict: EvictCallback | None = None
        # called when there is something for the sweep to do later (a handle opened, an
        # append waiting for its group commit): lets a sweeper sleep while all is idle
        self.on_activity: Callable[[], None] | None = None
        self.counters = {"appends": 0, "evictions": 0, "evicted_bytes": 0, "handles_closed": 0,
                         "recovered_truncations": 0, "recovered_orphans": 0}
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / OBJECTS_DIR).mkdir(exist_ok=True)
        # a volatile store lives in a directory private to this process: no lock needed
        self._lockfile = -1 if volatile else self._take_lock()
        try:
            self._db = _db.connect(self.root / DB_NAME, durable=durable, volatile=volatile)
        except BaseException:
            self._release_lock()
            raise
        self._handles = HandleCache(monotonic, on_open=self._activity)
        self._closed = False
        try:
            self._recover()
        except BaseException:
            self._closed = True
            self._handles.close_all()
            self._db.close()
            self._release_lock()
            raise

    # ------------------------------------------------------------------ lifecycle

    def _take_lock(self) -> int:
        fd = os.open(self.root / "LOCK", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"store {self.root} is in use by another process") from None
        return fd

    def _release_lock(self) -> None:
        if self._lockfile >= 0:
            os.close(self._lockfile)
            self._lockfile = -1

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self.flush()
            self._closed = True
            self._handles.close_all()
            self._db.close()
            self._release_lock()

    def __enter__(self) -> FileStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _recover(self) -> None:
        """Reconcile rows and files after an unclean stop (see module docstring)."""
        objdir = self.root / OBJECTS_DIR
        rows = self._db.execute("SELECT sid, size, mtime_ms, seq, pinned FROM objects").fetchall()
        known: set[str] = set()
        for sid, size, mtime_ms, seq, pinned in rows:
            path = objdir / sid_filename(sid)
            known.add(path.name)
            try:
                on_disk = path.stat().st_size
            except FileNotFoundError:
                if size:
                    log.warning("store: object %r lost its file; dropped", sid)
                    self._db.execute("DELETE FROM objects WHERE sid = ?", (sid,))
                    continue
                path.touch()
                on_disk = 0
            if on_disk != size:
                # longer: an append that was never committed; shorter: power loss without
                # durable=True. Either way the file and the row agree afterwards.
                self.counters["recovered_truncations"] += 1
                if on_disk > size:
                    os.truncate(path, size)
                else:
                    size = on_disk
                    self._db.execute("UPDATE objects SET size = ? WHERE sid = ?", (size, sid))
            self._objects[sid] = _Object(str(path), size, mtime_ms, seq, bool(pinned))
            self._used += size
            self._seq = max(self._seq, seq)
        for entry in objdir.iterdir():
            if entry.name not in known:
                self.counters["recovered_orphans"] += 1
                with contextlib.suppress(OSError):
                    entry.unlink()

    def _activity(self) -> None:
        if self.on_activity is not None:
            self.on_activity()

    @property
    def idle(self) -> bool:
        """Nothing for the sweep to do until the next activity."""
        return not self._handles and not self._dirty

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def _tick(self) -> tuple[int, int]:
        """Next modification sequence number and the wall-clock time in ms."""
        self._seq += 1
        return self._seq, int(self._clock() * 1000)

    # ------------------------------------------------------------------ seed contract

    def create(self, sid: str, *, pinned: bool = False) -> None:
        """New empty resource ``sid``; an existing one is emptied (seed: create = new file)."""
        check_sid(sid)
        with self._lock:
            self._check_open()
            seq, now = self._tick()
            old = self._objects.get(sid)
            path = str(self.root / OBJECTS_DIR / sid_filename(sid))
            self._db.execute(
                "INSERT INTO objects(sid, size, mtime_ms, seq, pinned) VALUES(?, 0, ?, ?, ?) "
                "ON CONFLICT(sid) DO UPDATE SET size = 0, mtime_ms = excluded.mtime_ms, "
                "seq = excluded.seq, pinned = excluded.pinned",
                (sid, now, seq, int(pinned)),
            )
            fd = self._handles.get(path, create=True)
            os.ftruncate(fd, 0)
            self._dirty.discard(sid)
            if old is not None:
                self._used -= old.size
            self._objects[sid] = _Object(path, 0, now, seq, pinned)

    def append(self, sid: str, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` after making room under the limit; StoreFullError if impossible."""
        check_sid(sid)
        n = len(data)
        with self._lock:
            self._check_open()
            obj = self._objects.get(sid)
            if obj is None:
                raise UnknownItem(f"no resource with sid {sid!r:.80}")
            if not n:
                return
            self._reserve(n, keep=("sid", sid))
            fd = self._handles.get(obj.path, create=True)
            try:
                write_all(fd, data, obj.size)
                if self.durable:
                    os.fsync(fd)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, obj.size)  # nothing of a failed append stays
                raise StoreError(f"append to {sid!r:.80} failed: {exc.strerror}") from None
            seq, now = self._tick()
            if self.commit_delay_s <= 0:
                self._db.execute(
                    "UPDATE objects SET size = ?, mtime_ms = ?, seq = ? WHERE sid = ?",
                    (obj.size + n, now, seq, sid),
                )
            obj.size += n
            obj.mtime_ms, obj.seq = now, seq
            self._used += n
            self.counters["appends"] += 1
            if self.commit_delay_s > 0:
                if not self._dirty:
                    self._dirty_since = self._monotonic()
                    self._activity()
                self._dirty.add(sid)
                if self._monotonic() - self._dirty_since >= self.commit_delay_s:
                    self.flush()

    def flush(self) -> None:
        """Commit the sizes of appends still waiting for a group commit."""
        with self._lock:
            if not self._dirty or self._closed:
                return
            rows = [(o.size, o.mtime_ms, o.seq, sid) for sid in self._dirty
                    if (o := self._objects.get(sid)) is not None]
            self._dirty.clear()
            self._db.execute("BEGIN")
            self._db.executemany(
                "UPDATE objects SET size = ?, mtime_ms = ?, seq = ? WHERE sid = ?", rows)
            self._db.execute("COMMIT")
            self.counters["group_commits"] = self.counters.get("group_commits", 0) + 1

    def read(self, sid: str, begin: int, end: int) -> bytes:
        """Bytes ``[begin, end)`` of ``sid`` (``end`` clipped to the size). As in the seed,
        invalid arguments, an unknown sid or a failed read give ``b""``."""
        if (not isinstance(begin, int) or not isinstance(end, int) or begin < 0
                or end < begin or not isinstance(sid, str)):
            return b""
        with self._lock:
            obj = self._objects.get(sid)
            if obj is None or self._closed:
                return b""
            end = min(end, obj.size)  # never past the committed size
            if begin >= end:
                return b""
            try:
                fd = self._handles.get(obj.path)
                return os.pread(fd, end - begin, begin)
            except OSError as exc:
                log.warning("store: read of %r failed: %s", sid, exc)
                return b""

    def size(self, sid: str) -> int | None:
        with self._lock:
            obj = self._objects.get(sid)
            return None if obj is None else obj.size

    def exists(self, sid: str) -> bool:
        return sid in self._objects

    def delete(self, sid: str) -> bool:
        """Remove resource ``sid``; False if it did not exist."""
        with self._lock:
            self._check_open()
            if sid not in self._objects:
                return False
            self._drop("sid", sid)
            return True

    def pin(self, sid: str, pinned: bool = True) -> None:
        with self._lock:
            obj = self._objects.get(sid)
            if obj is None:
                raise UnknownItem(f"no resource with sid {sid!r:.80}")
            self._db.execute("UPDATE objects SET pinned = ? WHERE sid = ?", (int(pinned), sid))
            obj.pinned = pinned

    def objects(self) -> list[ObjectInfo]:
        with self._lock:
            return [ObjectInfo(sid, o.size, o.mtime_ms, o.pinned) for sid, o in self._objects.items()]

    # ------------------------------------------------------------------ limit and eviction

    @property
    def used_bytes(self) -> int:
        return self._used

    @property
    def limit_bytes(self) -> int | None:
        return self._limit

    def set_storage_limit(self, limit_bytes: int | None) -> int:
        """New limit (None = unlimited); evicts at once to fit. Returns bytes evicted."""
        if limit_bytes is not None and limit_bytes < 0:
            raise ValueError("storage limit must be >= 0")
        with self._lock:
            self._limit = limit_bytes
            return self.evict_until(0)

    def evict_until(self, bytes_needed: int) -> int:
        """Evict least recently modified unpinned items until ``bytes_needed`` more bytes
        fit under the limit (or nothing is left to evict). Returns the bytes freed."""
        with self._lock:
            self._check_open()
            return self._evict(bytes_needed, keep=None)

    def _fits(self, n: int) -> bool:
        return self._limit is None or self._used + n <= self._limit

    def _reserve(self, n: int, keep: tuple[str, str] | None) -> None:
        if self._fits(n):
            return
        self._evict(n, keep)
        if not self._fits(n):
            raise StoreFullError(
                f"{n} bytes do not fit: {self._used} of {self._limit} bytes used by pinned "
                "or active items"
            )

    def _evict(self, n: int, keep: tuple[str, str] | None) -> int:
        freed = 0
        if self._fits(n):
            return 0
        for _, kind, key, size in sorted(self._eviction_candidates()):
            if (kind, key) == keep:
                continue
            self._drop(kind, key)
            freed += size
            self.counters["evictions"] += 1
            self.counters["evicted_bytes"] += size
            log.info("store: evicted %s %r (%d bytes)", kind, key, size)
            if self.on_evict is not None:
                self.on_evict(kind, key, size)
            if self._fits(n):
                break
        return freed

    def _eviction_candidates(self) -> Iterator[tuple[int, str, str, int]]:
        """(seq, kind, key, bytes) of every item that may be evicted."""
        for sid, obj in self._objects.items():
            if not obj.pinned:
                yield obj.seq, "sid", sid, obj.size

    def _drop(self, kind: str, key: str) -> None:
        """Remove one item: row first, then the file (an orphan file is cleaned on open)."""
        if kind != "sid":
            raise ValueError(kind)
        obj = self._objects.pop(key)
        self._dirty.discard(key)
        self._db.execute("DELETE FROM objects WHERE sid = ?", (key,))
        self._handles.close(obj.path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(obj.path)
        self._used -= obj.size

    # ------------------------------------------------------------------ idle handles

    def close_idle(self, now: float | None = None) -> int:
        """The periodic sweep: commit pending group commits, checkpoint the WAL, close
        file handles unused for ``idle_close_s`` seconds; returns how many were closed."""
        with self._lock:
            self.counters["sweeps"] = self.counters.get("sweeps", 0) + 1
            self.flush()  # the periodic sweep also bounds how late a group commit is
            if not self._closed and self._wal_bytes() >= CHECKPOINT_WAL_BYTES:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                self.counters["checkpoints"] = self.counters.get("checkpoints", 0) + 1
            closed = self._handles.close_idle(self.idle_close_s, now)
            self.counters["handles_closed"] += closed
            return closed

    def _wal_bytes(self) -> int:
        try:
            return os.stat(self.root / (DB_NAME + "-wal")).st_size
        except FileNotFoundError:
            return 0

    @property
    def open_handles(self) -> int:
        return len(self._handles)

    def stats(self) -> dict[str, Any]:
        return {"used_bytes": self._used, "limit_bytes": self._limit,
                "objects": len(self._objects), "open_handles": len(self._handles),
                **self.counters}
