"""Errors of the store plugin.

    P2PKitError (kernel)
    └── StoreError               the store cannot do what was asked (I/O, schema, lock)
        ├── DiskFullError        a write failed: the disk holding the store is full
        ├── InvalidSid           a sid is not a non-empty string of at most 1024 UTF-8 bytes
        ├── UnknownItem          no object with this sid / no content with this rid
        ├── StoreFullError       the storage limit cannot be met even after eviction
        ├── IncompleteContent    export of content that still misses pieces
        └── UnsupportedMedia     an imported file is not audio, video or an image (HTTP 415)
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from p2pkit._exceptions import P2PKitError
from p2pkit.diskerrors import DiskProblem, classify, problem_message


class StoreError(P2PKitError):
    """The store cannot do what was asked: I/O failure, newer schema, store in use."""


class DiskFullError(StoreError):
    """A write failed because the disk holding the store is full; what was stored before is intact."""

    def __init__(self, message: str, root: Path) -> None:
        super().__init__(message)
        self.root = root  # the store's directory, on the disk that is full


class InvalidSid(StoreError, ValueError):
    """A sid is not a non-empty string of at most 1024 UTF-8 bytes without NUL."""


class UnknownItem(StoreError, KeyError):
    """No object with this sid, or no content with this rid, is in the store."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown item"


class StoreFullError(StoreError):
    """The write does not fit under the storage limit even after evicting what may go."""


class IncompleteContent(StoreError):
    """The content still misses pieces, so it cannot be exported."""


class UnsupportedMedia(StoreError):
    """The file is not audio, video or an image (judged from its bytes); the web UI maps it to 415."""


def write_failure(what: str, exc: sqlite3.Error | OSError, root: Path,
                  place: str | None = None) -> StoreError:
    """The one place a write of the store that failed (its SQLite metadata, a data file,
    an export) becomes an error for the user, ``what`` ("writing piece 3 of RID") saying
    what was being done. A full disk (``p2pkit.diskerrors``) is a :class:`DiskFullError`
    naming ``place`` (default: "the store ROOT"); raise it ``from exc`` so that the cause
    stays in the chain."""
    detail = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) \
        or type(exc).__name__
    problem = classify(exc, root)
    if problem is DiskProblem.FULL:
        place = f"the store {root}" if place is None else place
        return DiskFullError(f"{what} failed: {problem_message(place, exc, root)}", root)
    if problem is DiskProblem.DAMAGED and isinstance(exc, sqlite3.Error):
        return StoreError(f"{what} failed: " + problem_message(
            f"the store metadata in {root}", exc, root,
            move_away="move the directory away to start empty"))
    return StoreError(f"{what} failed: {detail}")
