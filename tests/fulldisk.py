"""A SQLite database on a disk that has filled up, for the tests of what a node does then."""

from __future__ import annotations

import sqlite3
from typing import Any

WRITES = ("BEGIN", "INSERT", "UPDATE", "DELETE")
_connect = sqlite3.connect  # the real one: tests replace sqlite3.connect with a FullDisk maker


def sqlite_full_error() -> sqlite3.OperationalError:
    """A real SQLITE_FULL ("database or disk is full"), as a full disk gives it."""
    db = _connect(":memory:")
    try:
        db.execute("CREATE TABLE t (x)")
        db.execute("PRAGMA max_page_count = 2")
        db.execute("INSERT INTO t VALUES (zeroblob(100000))")
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        db.close()
    raise AssertionError("SQLite took a row larger than its page limit")


class FullDisk:
    """A connection to a database on a disk that has filled up: reads work, writes fail
    (``everything``: every statement fails, as opening one on a full disk does)."""

    def __init__(self, db: Any, *, everything: bool = False) -> None:
        self._db = db
        self._everything = everything

    def execute(self, sql: str, *args: Any) -> Any:
        if self._everything or sql.split()[0].upper() in WRITES:
            raise sqlite_full_error()
        return self._db.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        raise sqlite_full_error()

    def __getattr__(self, name: str) -> Any:  # close, commit, ...: the real connection's
        return getattr(self._db, name)
