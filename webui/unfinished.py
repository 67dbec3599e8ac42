"""Downloads started from the UI that have not ended, kept so that a restarted node takes
them up again (under the same id: a page that was open follows them through the restart).

A row is written when a download starts and removed when it ends — completed, failed or
cancelled; a node that stops (or crashes) meanwhile leaves it. Bounded like the list of
downloads the UI remembers.

This is bookkeeping: a write that fails (the disk holding the database is full, or cannot
be written) is a warning in the log, never an error for the download or the node. A row
that could not be removed is taken up again at the next start.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import NamedTuple

from .database import open_database, write_problem

log = logging.getLogger("p2pkit.webui.unfinished")

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
        """Oldest first; rows that are not what this module wrote are skipped (and none
        when the database cannot be read)."""
        try:
            rows = self._db.execute(
                "SELECT id, rid, name, size, title FROM unfinished_downloads ORDER BY started_at").fetchall()
        except sqlite3.Error as exc:
            log.warning("the downloads to take up again could not be read: %s", write_problem(exc))
            return []
        return [Unfinished(*row) for row in rows
                if all(isinstance(v, str) for v in (row[0], row[1], row[2], row[4]))
                and isinstance(row[3], int) and row[3] >= 0]

    def add(self, item: Unfinished) -> bool:
        """Keep ``item`` for the next start; False (and a warning) if it could not be."""
        try:
            self._db.execute("INSERT OR REPLACE INTO unfinished_downloads VALUES (?, ?, ?, ?, ?, ?)",
                             (*item, int(time.time() * 1000)))
            self._db.execute(
                "DELETE FROM unfinished_downloads WHERE id NOT IN (SELECT id FROM "
                "unfinished_downloads ORDER BY started_at DESC LIMIT ?)", (MAX_UNFINISHED,))
        except sqlite3.Error as exc:
            log.warning("the download of %s is not taken up again if the node stops before it "
                        "ends: %s", item.name, write_problem(exc))
            return False
        return True

    def remove(self, download_id: str) -> bool:
        """Forget a download that ended; False (and a warning) if that could not be
        recorded: the next start then takes it up again."""
        try:
            self._db.execute("DELETE FROM unfinished_downloads WHERE id = ?", (download_id,))
        except sqlite3.Error as exc:
            log.warning("that download %s ended could not be recorded, so the next start takes it "
                        "up again: %s", download_id, write_problem(exc))
            return False
        return True

    def close(self) -> None:
        self._db.close()
