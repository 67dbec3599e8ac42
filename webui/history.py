"""Download and viewing history (seed 004 §4.1.3), persisted in SQLite.

A node with a data directory keeps it in ``<data_dir>/webui.sqlite``; an ephemeral node in
memory. Views of the same content update one entry (the latest position, for resuming);
every download is its own entry. Lists are newest first.

The history is bounded: it keeps the newest ``MAX_ENTRIES`` entries, and an insert that
goes past that removes the oldest in the same transaction, so no crash leaves it longer
(the seed keeps it in memory and sets no limit; a page can ask for at most
``MAX_PAGE`` entries at a time).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .database import open_database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    id TEXT PRIMARY KEY,
    rid TEXT NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    position REAL NOT NULL DEFAULT 0,
    duration REAL,
    play_time INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_time ON history(play_time DESC);
"""
MAX_ENTRIES = 1000  # newest entries kept; a view updated in place counts once
MAX_PAGE = 1000  # most entries one list() returns
# Newest first. Times are in ms, so entries often tie; the rowid breaks ties as a recency
# sequence: an insert takes the next one and a view updated in place is moved to it.
_ORDER = "play_time DESC, rowid DESC"
_COLUMNS = ("id", "rid", "kind", "title", "position", "duration", "play_time", "created_at", "updated_at")


def _now_ms() -> int:
    return int(time.time() * 1000)


class History:
    def __init__(self, db_path: Path | None, max_entries: int = MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self._db = open_database(db_path, _SCHEMA)
        with self._transaction():
            self._prune()  # a database from before the bound (or a larger one)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _prune(self) -> int:
        """Remove all but the newest ``max_entries``; how many went."""
        return self._db.execute(
            f"DELETE FROM history WHERE rowid NOT IN "
            f"(SELECT rowid FROM history ORDER BY {_ORDER} LIMIT ?)", (self.max_entries,)).rowcount

    def add(self, rid: str, kind: str, title: str | None = None, position: float | None = None,
            duration: float | None = None) -> dict[str, Any]:
        """A new entry, or for a repeated view the entry updated in place: a field given
        as None keeps what it had (opening the detail view again must not reset the
        position a player saved)."""
        now = _now_ms()
        if kind == "view":
            row = self._db.execute(
                "SELECT id FROM history WHERE rid = ? AND kind = 'view'", (rid,)).fetchone()
            if row is not None:
                self._db.execute(
                    "UPDATE history SET title = COALESCE(?, title), position = COALESCE(?, position),"
                    " duration = COALESCE(?, duration), play_time = ?, updated_at = ?,"
                    " rowid = (SELECT max(rowid) + 1 FROM history) WHERE id = ?",
                    (title, position, duration, now, now, row[0]))
                return self.get(row[0]) or {}
        entry_id = secrets.token_hex(8)
        with self._transaction():
            self._db.execute(
                "INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry_id, rid, kind, title or "", position or 0.0, duration, now, now, now))
            self._prune()
        return self.get(entry_id) or {}

    def get(self, entry_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM history WHERE id = ?", (entry_id,)).fetchone()
        return dict(zip(_COLUMNS, row)) if row else None

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM history").fetchone()[0])

    def list(self, limit: int = 100, kind: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` entries (1..MAX_PAGE), of one ``kind`` if given."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1..{MAX_PAGE}")
        sql = f"SELECT {', '.join(_COLUMNS)} FROM history"
        args: tuple[Any, ...] = ()
        if kind is not None:
            sql += " WHERE kind = ?"
            args = (kind,)
        sql += f" ORDER BY {_ORDER} LIMIT ?"
        return [dict(zip(_COLUMNS, row)) for row in self._db.execute(sql, (*args, limit))]

    def delete(self, entry_id: str) -> bool:
        return self._db.execute("DELETE FROM history WHERE id = ?", (entry_id,)).rowcount > 0

    def clear(self) -> int:
        return self._db.execute("DELETE FROM history").rowcount

    def close(self) -> None:
        self._db.close()
