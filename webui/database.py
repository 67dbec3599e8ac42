"""The web UI's own SQLite database: ``<data_dir>/webui.sqlite`` (history, peers switched
off, downloads to resume), in memory for an ephemeral node."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from p2pkit._exceptions import ConfigError


def open_database(db_path: Path | None, schema: str) -> sqlite3.Connection:
    """A connection in autocommit mode with ``schema`` applied; ConfigError (one clear
    line) if the file is not a database."""
    db = sqlite3.connect(str(db_path) if db_path else ":memory:", isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(schema)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise ConfigError(f"web UI database {db_path} is damaged ({exc}); move it away "
                          "to start afresh") from None
    return db
