"""The web UI's own SQLite database: ``<data_dir>/webui.sqlite`` (history, peers switched
off, downloads to resume), in memory for an ephemeral node."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from p2pkit._exceptions import ConfigError
from p2pkit.diskerrors import problem_message


def open_database(db_path: Path | None, schema: str) -> sqlite3.Connection:
    """A connection in autocommit mode with ``schema`` applied; ConfigError (one clear
    line) if the file is not a database, or its disk is full or cannot be written (then
    the file is kept: it is not damaged)."""
    what = f"the web UI database {db_path}"
    try:
        db = sqlite3.connect(str(db_path) if db_path else ":memory:", isolation_level=None)
    except sqlite3.Error as exc:
        raise ConfigError(problem_message(what, exc, db_path)) from None
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(schema)
    except sqlite3.Error as exc:
        db.close()
        raise ConfigError(problem_message(what, exc, db_path,
                                          move_away="move it away to start afresh")) from None
    return db


def write_problem(exc: sqlite3.Error) -> str:
    """Why a write to the web UI database failed, for a warning or an API error."""
    return problem_message("the web UI database", exc)
