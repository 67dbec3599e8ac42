"""FileStore: the seed's resource store (seed 004 §3.1.4, §4.4).

Resources are byte strings named by a ``sid``, created empty and grown by sequential
``append``; ``read(sid, begin, end)`` returns a range. A storage limit is enforced before
every write by evicting the least recently modified unpinned items. Metadata lives in
SQLite (WAL) next to the files; file names are SHA-256 of the sid, so a sid is never a
path.

What is committed when (crash consistency):

* ``create``, ``delete`` (and eviction), ``pin``: a SQLite transaction before the call
  returns (the row names the resource, so it must exist before its bytes do).
* A write that fails (the disk filled up, it turned read-only) raises a StoreError made
  in one place (:func:`_errors.write_failure`: :class:`DiskFullError` for a full disk)
  and leaves the store as it was before the call: memory changes only once the metadata
  has taken the change. The sweep never raises for it (the sizes map keeps what SQLite
  has not learnt; it tries again at the next sweep).
* ``append``: the bytes are written first, then the new (size, seq, mtime) goes into the
  resource's record in the sizes map (``_sizes.py``): a write into a shared memory map,
  as lasting as the bytes themselves (both are page cache, both survive ``kill -9``), at
  ~0.3 µs instead of a ~9 µs SQLite commit. SQLite learns the sizes in one transaction
  per sweep (every second while anything is written) and at ``close``.
* Opening after a crash takes, for every row, the newest valid record of its resource if
  it is not older than the row, and then reconciles with the file: bytes past the
  recorded size are an append that never finished (truncated, so a torn append is never
  served); a shorter file (power loss without ``durable``) is believed. Files without a
  row (a crash during create or delete) are removed; rows without a file are dropped.
  ``used_bytes`` is recomputed from all this, never persisted as a counter that could
  drift.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import attrs

from p2pkit.diskerrors import problem_message

from . import _db
from ._errors import InvalidSid, StoreError, StoreFullError, UnknownItem, write_failure
from ._handles import HandleCache
from ._sizes import SizeMap

log = logging.getLogger("p2pkit.store")

MAX_SID_BYTES = 1024
DB_NAME = "store.sqlite3"
OBJECTS_DIR = "objects"
SIZES_NAME = "sizes.map"
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
    key: bytes  # first 16 bytes of sha256(sid): names the resource in the sizes map
    slot: int = -1  # its slot in the sizes map (-1: a volatile store has no map)
    half: int = 0  # the slot's record the next append writes (not the newest one)


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
        self._dirty: set[str] = set()  # appended to since SQLite last learnt their sizes
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.RLock()
        self._limit = limit_bytes
        self._used = 0
        self._seq = 0
        self._objects: dict[str, _Object] = {}
        self.on_evict: EvictCallback | None = None
        # called when there is something for the sweep to do later (a handle opened):
        # lets a sweeper sleep while all is idle
        self.on_activity: Callable[[], None] | None = None
        self.counters = {"appends": 0, "evictions": 0, "evicted_bytes": 0, "handles_closed": 0,
                         "recovered_truncations": 0, "recovered_orphans": 0,
                         "recovered_from_map": 0, "flushes": 0}
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / OBJECTS_DIR).mkdir(exist_ok=True)
        # a volatile store lives in a directory private to this process: no lock needed
        self._lockfile = -1 if volatile else self._take_lock()
        try:
            self._db = _db.connect(self.root / DB_NAME, durable=durable, volatile=volatile)
        except BaseException:
            self._release_lock()
            raise
        # volatile: nothing outlives the process, so appends need no record at all (and a
        # thousand simulated stores save a descriptor each)
        self._sizes: SizeMap | None = None
        self._handles = HandleCache(monotonic, on_open=self._activity)
        self._fds = self._handles.entries  # read/append look their handle up inline
        self._closed = False
        try:
            if not volatile:
                self._sizes = SizeMap(self.root / SIZES_NAME, durable=durable)
            try:
                self._recover()
            except (sqlite3.Error, TypeError, ValueError, OverflowError, AttributeError,
                    struct.error, OSError) as exc:
                # rows of impossible values (a hand-edited or damaged database) surfaced
                # as TypeError, struct.error, OSError from truncate...: say what it is.
                # A full or unwritable disk is not damage: the store is kept as it is.
                raise StoreError(problem_message(
                    f"the store metadata in {self.root}", exc, self.root / DB_NAME,
                    move_away="move the directory away to start empty")) from exc
        except BaseException:
            self._release_everything()
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
            try:
                self.flush()
            except StoreError as exc:  # a full disk: the sizes map has what SQLite missed
                log.warning("store: %s (the sizes are recovered from sizes.map at the next open)",
                            exc)
            finally:  # a failed last commit must not keep the store locked for the process
                self._release_everything()

    def _release_everything(self) -> None:
        """Closed for good: descriptors, the database, the size map, then the lock."""
        self._closed = True
        self._handles.close_all()
        self._db.close()
        if self._sizes is not None:
            self._sizes.close()
        self._release_lock()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _recover(self) -> None:
        """Reconcile rows, size records and files after an unclean stop (see module
        docstring)."""
        objdir = self.root / OBJECTS_DIR
        rows = self._db.execute("SELECT sid, size, mtime_ms, seq, pinned FROM objects").fetchall()
        records, self._seq = self._sizes.scan() if self._sizes is not None else ({}, 0)
        owned: set[int] = set()
        changed: list[tuple[int, int, int, str]] = []
        known: set[str] = set()
        for sid, row_size, row_mtime, row_seq, pinned in rows:
            digest = hashlib.sha256(sid.encode("utf-8")).digest()
            path = objdir / digest.hex()
            known.add(path.name)
            obj = _Object(str(path), row_size, row_mtime, row_seq, bool(pinned), digest[:16])
            rec = records.get(obj.key)
            # a record older than the row is from an earlier life of this sid
            if rec is not None and rec.seq >= row_seq and rec.slot not in owned:
                obj.size, obj.mtime_ms, obj.seq = rec.size, rec.mtime_ms, rec.seq
                obj.slot, obj.half = rec.slot, rec.half ^ 1
                owned.add(rec.slot)
                if rec.seq != row_seq:
                    self.counters["recovered_from_map"] += 1
            try:
                on_disk = path.stat().st_size
            except FileNotFoundError:
                if obj.size:
                    log.warning("store: object %r lost its file; dropped", sid)
                    self._db.execute("DELETE FROM objects WHERE sid = ?", (sid,))
                    continue
                path.touch()
                on_disk = 0
            if on_disk != obj.size:
                # longer: an append that never finished; shorter: power loss without
                # durable=True. Either way the file and the metadata agree afterwards.
                self.counters["recovered_truncations"] += 1
                if on_disk > obj.size:
                    os.truncate(path, obj.size)
                else:
                    obj.size = on_disk
            if (obj.size, obj.mtime_ms, obj.seq) != (row_size, row_mtime, row_seq):
                changed.append((obj.size, obj.mtime_ms, obj.seq, sid))
            self._objects[sid] = obj
            self._used += obj.size
            self._seq = max(self._seq, obj.seq)
        if self._sizes is not None:
            self._sizes.set_owned(owned)
            for obj in self._objects.values():
                if obj.slot < 0:  # no valid record (a store made before the map, a lost map)
                    obj.slot = self._sizes.allocate()
                    self._write_record(obj)
        if changed:  # SQLite catches up with what the records and files say
            self._db.execute("BEGIN")
            self._db.executemany(
                "UPDATE objects SET size = ?, mtime_ms = ?, seq = ? WHERE sid = ?", changed)
            self._db.execute("COMMIT")
        for entry in objdir.iterdir():
            if entry.name not in known:
                self.counters["recovered_orphans"] += 1
                with contextlib.suppress(OSError):
                    entry.unlink()

    def _write_record(self, obj: _Object) -> None:
        """Put ``obj``'s current (seq, size, mtime) into its slot's other record."""
        if self._sizes is not None:
            self._sizes.write(obj.slot, obj.half, obj.key, obj.seq, obj.size, obj.mtime_ms)
            obj.half ^= 1

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

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Around a write of the store (its metadata, a data file): one that fails is a
        StoreError saying ``what`` failed and why — :class:`DiskFullError` when the disk
        holding the store is full — never a raw sqlite3.Error or OSError."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise write_failure(what, exc, self.root) from exc

    def _transaction(self, what: str, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """``sql`` for every row in one transaction, rolled back if it fails."""
        with self._writing(what):
            self._db.execute("BEGIN")
            try:
                self._db.executemany(sql, rows)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise

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
            digest = hashlib.sha256(sid.encode("utf-8")).digest()
            path = str(self.root / OBJECTS_DIR / digest.hex())
            with self._writing(f"creating {sid!r:.80}"):
                fd = self._handles.get(path, create=True)
                # the row before the bytes go: it names the resource. A crash before the
                # record below leaves older records, which lose against the row's newer seq.
                try:
                    self._db.execute(
                        "INSERT INTO objects(sid, size, mtime_ms, seq, pinned) "
                        "VALUES(?, 0, ?, ?, ?) ON CONFLICT(sid) DO UPDATE SET size = 0, "
                        "mtime_ms = excluded.mtime_ms, seq = excluded.seq, "
                        "pinned = excluded.pinned",
                        (sid, now, seq, int(pinned)),
                    )
                except sqlite3.Error:
                    if old is None:  # the file made for it goes (else an orphan until the next open)
                        self._handles.close(path)
                        with contextlib.suppress(OSError):
                            os.unlink(path)
                    raise
                os.ftruncate(fd, 0)
            self._dirty.discard(sid)
            if old is not None:
                self._used -= old.size
                obj = _Object(path, 0, now, seq, pinned, old.key, old.slot, old.half)
            else:
                obj = _Object(path, 0, now, seq, pinned, digest[:16])
                if self._sizes is not None:
                    obj.slot = self._sizes.allocate()
            self._write_record(obj)
            self._objects[sid] = obj

    def append(self, sid: str, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` after making room under the limit; StoreFullError if impossible.
        Once it returns, the append survives a crash of the process (see module docstring)."""
        with self._lock:
            obj = self._objects.get(sid) if isinstance(sid, str) else None
            if obj is None or self._closed:
                check_sid(sid)
                self._check_open()
                raise UnknownItem(f"no resource with sid {sid!r:.80}")
            if type(data) is not bytes:
                data = memoryview(data).cast("B")  # len() in bytes, whatever the format
            n = len(data)
            if not n:
                return
            if self._limit is not None and self._used + n > self._limit:
                self._reserve(n, keep=("sid", sid))
            handle = self._fds.get(obj.path)
            if handle is None:
                try:
                    fd = self._reopen_for_append(sid, obj)
                except OSError as exc:
                    raise write_failure(f"append to {sid!r:.80}", exc, self.root) from exc
            else:
                handle.touched = True
                fd = handle.fd
            size = obj.size
            try:
                written = os.pwrite(fd, data, size)
                if written != n:  # a regular file may take it in parts
                    write_all(fd, memoryview(data)[written:], size + written)
                if self.durable:
                    os.fsync(fd)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)  # nothing of a failed append stays
                raise write_failure(f"append to {sid!r:.80}", exc, self.root) from exc
            # the bytes are in; now the record that makes them count
            seq = self._seq + 1
            now = int(self._clock() * 1000)
            size += n
            if self._sizes is not None:
                self._sizes.write(obj.slot, obj.half, obj.key, seq, size, now)
                obj.half ^= 1
            self._seq = obj.seq = seq
            obj.mtime_ms, obj.size = now, size
            self._used += n
            self._dirty.add(sid)
            self.counters["appends"] += 1

    def _reopen_for_append(self, sid: str, obj: _Object) -> int:
        """The object's file, opened again (its handle was closed idle). Created only if
        the object is still empty: a file deleted or cut short from outside would
        otherwise be filled up to the old size with zeros, served as data ever after."""
        try:
            fd = self._handles.get(obj.path, create=obj.size == 0)
            if os.fstat(fd).st_size >= obj.size:
                return fd
        except FileNotFoundError:
            pass
        self._drop("sid", sid)
        raise StoreError(f"the file of {sid!r:.80} was removed or cut short outside the "
                         "store; what it held is lost and the resource is dropped")

    def flush(self) -> None:
        """Tell SQLite the sizes of the resources appended to since the last flush (one
        transaction). Not needed for crash consistency (the sizes map has them); it keeps
        the database current, e.g. for a map that is lost."""
        with self._lock:
            if not self._dirty or self._closed:
                return
            rows = [(o.size, o.mtime_ms, o.seq, sid) for sid in self._dirty
                    if (o := self._objects.get(sid)) is not None]
            self._transaction("recording the sizes of appends",
                              "UPDATE objects SET size = ?, mtime_ms = ?, seq = ? WHERE sid = ?",
                              rows)
            self._dirty.clear()  # only once SQLite has them: else the next flush tries again
            self.counters["flushes"] += 1

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
            if end > obj.size:
                end = obj.size  # never past the committed size
            if begin >= end:
                return b""
            try:
                handle = self._fds.get(obj.path)
                if handle is None:
                    fd = self._handles.get(obj.path)
                else:
                    handle.touched = True
                    fd = handle.fd
                return os.pread(fd, end - begin, begin)
            except OSError as exc:
                log.warning("store: read of %r failed: %s", sid, exc)
                return b""

    # Like read(): what is not a sid names no resource (a list was a TypeError, unhashable)
    def size(self, sid: str) -> int | None:
        with self._lock:
            obj = self._objects.get(sid) if isinstance(sid, str) else None
            return None if obj is None else obj.size

    def exists(self, sid: str) -> bool:
        return isinstance(sid, str) and sid in self._objects

    def delete(self, sid: str) -> bool:
        """Remove resource ``sid``; False if it did not exist."""
        with self._lock:
            self._check_open()
            if not self.exists(sid):
                return False
            self._drop("sid", sid)
            return True

    def pin(self, sid: str, pinned: bool = True) -> None:
        with self._lock:
            obj = self._objects.get(sid) if isinstance(sid, str) else None
            if obj is None:
                raise UnknownItem(f"no resource with sid {sid!r:.80}")
            with self._writing(f"pinning {sid!r:.80}"):
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
        if limit_bytes is not None and (type(limit_bytes) is not int or limit_bytes < 0):
            raise ValueError(f"storage limit must be a whole number of bytes >= 0, got {limit_bytes!r}")
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
        with self._writing(f"removing {key!r:.80}"):  # failed: it is all still here
            self._db.execute("DELETE FROM objects WHERE sid = ?", (key,))
        obj = self._objects.pop(key)
        self._dirty.discard(key)
        if self._sizes is not None:
            self._sizes.release(obj.slot)
        self._handles.close(obj.path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(obj.path)
        self._used -= obj.size

    # ------------------------------------------------------------------ idle handles

    def close_idle(self, now: float | None = None) -> int:
        """The periodic sweep: tell SQLite the sizes of recent appends (``flush``),
        checkpoint a grown WAL, close file handles unused for ``idle_close_s`` seconds;
        returns how many were closed."""
        with self._lock:
            self.counters["sweeps"] = self.counters.get("sweeps", 0) + 1
            try:
                self.flush()
                if not self._closed and self._wal_bytes() >= CHECKPOINT_WAL_BYTES:
                    with self._writing("checkpointing the metadata"):
                        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    self.counters["checkpoints"] = self.counters.get("checkpoints", 0) + 1
                self._sweep_failing = False
            except StoreError as exc:
                # the sweep runs in the node's nursery: raising there ended the node. What
                # SQLite did not learn is in the sizes map; the next sweep tries again.
                self.counters["sweep_write_errors"] = self.counters.get("sweep_write_errors", 0) + 1
                if not self._sweep_failing:  # once, not every second while the disk is full
                    log.warning("store: %s; the sweep tries again", exc)
                self._sweep_failing = True
            closed = self._handles.close_idle(self.idle_close_s, now)
            self.counters["handles_closed"] += closed
            return closed

    def _wal_bytes(self) -> int:
        try:
            return os.stat(self.root / (DB_NAME + "-wal")).st_size
        except FileNotFoundError:
            return 0

    _sweep_failing = False  # the last sweep could not write (logged once until it can)

    @property
    def open_handles(self) -> int:
        return len(self._handles)

    def stats(self) -> dict[str, Any]:
        return {"used_bytes": self._used, "limit_bytes": self._limit,
                "objects": len(self._objects), "open_handles": len(self._handles),
                **self.counters}
