"""Downloads started from the UI that have not ended, kept so that a restarted node takes
them up again (under the same id: a page that was open follows them through the restart).

A row is written when a download starts and removed when it ends — completed, failed or
cancelled; a node that stops (or crashes) meanwhile leaves it. Bounded like the list of
downloads the UI remembers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

from .database import open_database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS unfinished_downloads (
    id TEXT PRIMARY KEY,
    rid TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    title TEXT NOT NULL,
    started_at INTEGER NOT NULL
);
"""
MAX_UNFINISHED = 200


class Unfinished(NamedTuple):
    id: str
    rid: str
    name: str
    size: int
    title: str


class UnfinishedDownloads:
    def __init__(self, db_path: Path | None) -> None:
        self._db = open_database(db_path, _SCHEMA)

    def all(self) -> list[Unfinished]:
        """Oldest first; rows that are not what this module wrote are skipped."""
        rows = self._db.execute(
            "SELECT id, rid, name, size, title FROM unfinished_downloads ORDER BY started_at").fetchall()
        return [Unfinished(*row) for row in rows
                if all(isinstance(v, str) for v in (row[0], row[1], row[2], row[4]))
                and isinstance(row[3], int) and row[3] >= 0]

    def add(self, item: Unfinished) -> None:
        self._db.execute("INSERT OR REPLACE INTO unfinished_downloads VALUES (?, ?, ?, ?, ?, ?)",
                         (*item, int(time.time() * 1000)))
        self._db.execute(
            "DELETE FROM unfinished_downloads WHERE id NOT IN (SELECT id FROM "
            "unfinished_downloads ORDER BY started_at DESC LIMIT ?)", (MAX_UNFINISHED,))

    def remove(self, download_id: str) -> None:
        self._db.execute("DELETE FROM unfinished_downloads WHERE id = ?", (download_id,))

    def close(self) -> None:
        self._db.close()
