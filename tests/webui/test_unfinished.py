"""The downloads a restarted node takes up again (``webui/unfinished.py``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from p2pkit.webui.unfinished import MAX_UNFINISHED, Unfinished, UnfinishedDownloads

from p2pkit._exceptions import ConfigError

RID = "ab" * 32


def item(n: int) -> Unfinished:
    return Unfinished(f"id{n}", RID, f"file {n}.png", 1000 + n, f"File {n}")


def test_rows_outlive_the_connection_oldest_first_and_go_when_removed(tmp_path: Path) -> None:
    db = tmp_path / "webui.sqlite"
    kept = UnfinishedDownloads(db)
    for n in range(3):
        kept.add(item(n))
    kept.remove("id1")
    kept.close()
    again = UnfinishedDownloads(db)
    assert again.all() == [item(0), item(2)]
    again.close()


def test_the_rows_are_bounded_and_odd_rows_are_skipped(tmp_path: Path) -> None:
    kept = UnfinishedDownloads(None)
    for n in range(MAX_UNFINISHED + 5):
        kept.add(item(n))
    assert len(kept.all()) == MAX_UNFINISHED
    kept.close()
    db = tmp_path / "webui.sqlite"
    UnfinishedDownloads(db).close()
    with sqlite3.connect(db) as raw:  # a hand-edited file: a size that is not a number
        raw.execute("INSERT INTO unfinished_downloads VALUES ('x', ?, 'n', 'big', 't', 0)", (RID,))
    assert UnfinishedDownloads(db).all() == []


def test_a_damaged_database_is_a_clear_error(tmp_path: Path) -> None:
    damaged = tmp_path / "webui.sqlite"
    damaged.write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError, match="damaged"):
        UnfinishedDownloads(damaged)
