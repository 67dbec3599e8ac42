"""What a failed write or open of a file or SQLite database means for the user.

A full disk is not a damaged database: SQLite says "database or disk is full" or "disk I/O
error" when it has no room, and the data it already holds is intact — telling the user to
move it away loses it for nothing. :func:`classify` tells the cases apart:

* ``DAMAGED``: the file is not a database, or is corrupt (``SQLITE_CORRUPT*``,
  ``SQLITE_NOTADB``): only moving it away helps.
* ``FULL``: no room on its disk (``ENOSPC``, ``EDQUOT``, ``EFBIG``, ``SQLITE_FULL``, or
  any other failure while the disk has next to no free space left).
* ``UNUSABLE``: it cannot be opened, read or written (permissions, a read-only or failing
  disk): the data is kept as it is.

Used by the kernel's settings database, the web UI's database and the store.
"""

from __future__ import annotations

import enum
import errno
import os
import sqlite3
from pathlib import Path

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
UNUSABLE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO, errno.ENOENT})
# a disk with less free than this is full as far as a database is concerned (SQLite wants
# room for a WAL and its 32 KiB index before it writes a page)
NEARLY_FULL = 1024 * 1024


class DiskProblem(enum.Enum):
    DAMAGED = "damaged"  # not a database, or corrupt: moving it away is the cure
    FULL = "full"  # no room on its disk: freeing space is the cure, the data is intact
    UNUSABLE = "unusable"  # cannot be opened, read or written: permissions, read-only, I/O


def _chain(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and what it was raised from or while handling (``from None`` keeps
    ``__context__``): a StoreError saying "cannot write" around an ENOSPC counts."""
    seen: list[BaseException] = []
    while exc is not None and all(exc is not s for s in seen):
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an error it was raised from) says its disk is full."""
    for link in _chain(exc):
        if isinstance(link, OSError) and link.errno in FULL_ERRNOS:
            return True
        if isinstance(link, sqlite3.Error) and getattr(link, "sqlite_errorname", None) == "SQLITE_FULL":
            return True
    return False


def free_bytes(path: Path) -> int | None:
    """Bytes free to this user on the disk holding ``path`` (or its nearest existing
    parent); None if that cannot be told."""
    for candidate in (path, *path.parents):
        try:
            st = os.statvfs(candidate)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize
    return None


def _damaged(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", None) or ""
        return name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB"
    if isinstance(exc, OSError):
        return exc.errno not in FULL_ERRNOS | UNUSABLE_ERRNOS
    return True  # impossible values read back (TypeError, struct.error...)


def classify(exc: BaseException, path: Path | None = None) -> DiskProblem:
    """What ``exc``, raised opening or writing the file or database at ``path``, means."""
    if is_disk_full(exc):
        return DiskProblem.FULL
    if _damaged(exc):
        return DiskProblem.DAMAGED
    if path is not None and (free := free_bytes(path)) is not None and free < NEARLY_FULL:
        return DiskProblem.FULL  # "disk I/O error" creating the WAL of a database on a full disk
    return DiskProblem.UNUSABLE


def problem_message(what: str, exc: BaseException, path: Path | None = None, *,
                    move_away: str = "move it away") -> str:
    """One line for the user: ``what`` ("settings database /d/node.sqlite") is damaged
    (and ``move_away`` says what to do), or its disk is full, or it cannot be used."""
    detail = str(exc) or type(exc).__name__
    if not isinstance(exc, OSError | sqlite3.Error):  # impossible values: TypeError: ...
        detail = f"{type(exc).__name__}: {detail}"
    problem = classify(exc, path)
    if problem is DiskProblem.DAMAGED:
        return f"{what} is damaged ({detail}); {move_away}"
    if problem is DiskProblem.FULL:
        return (f"the disk holding {what} is full ({detail}); free some space and try again "
                "(nothing in it was lost)")
    return (f"{what} cannot be written ({detail}); check its permissions and the disk it is "
            "on (it was left as it is)")


__all__ = ["FULL_ERRNOS", "DiskProblem", "classify", "free_bytes", "is_disk_full", "problem_message"]
