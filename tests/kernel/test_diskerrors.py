"""A full disk is told apart from a damaged database (``p2pkit.diskerrors``)."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from p2pkit.diskerrors import DiskProblem, classify, is_disk_full, problem_message


def real_error(path: Path, sql: str, uri: bool = False) -> sqlite3.Error:
    db = sqlite3.connect(str(path), uri=uri)
    try:
        db.execute(sql)
    except sqlite3.Error as exc:
        return exc
    finally:
        db.close()
    raise AssertionError(f"{sql} worked")


def test_a_full_disk_is_seen_through_the_errors_raised_around_it() -> None:
    class StoreError(Exception):
        pass

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise StoreError("cannot write piece 3") from None  # as the store does
    except StoreError as exc:
        assert is_disk_full(exc)
        assert classify(exc) is DiskProblem.FULL
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))


def test_only_real_corruption_says_move_it_away(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("p2pkit.diskerrors.free_bytes", lambda path: 1 << 30)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database" * 100)
    not_a_db = real_error(garbage, "PRAGMA journal_mode=WAL")
    assert classify(not_a_db) is DiskProblem.DAMAGED
    assert problem_message("the x database", not_a_db).endswith("is damaged (file is not a database); move it away")
    sqlite3.connect(tmp_path / "ok.sqlite").execute("CREATE TABLE t (x)").connection.close()
    ro = real_error(Path(f"file:{tmp_path / 'ok.sqlite'}?mode=ro"), "INSERT INTO t VALUES (1)", uri=True)
    assert classify(ro, tmp_path / "ok.sqlite") is DiskProblem.UNUSABLE
    assert "cannot be written" in problem_message("the x database", ro)
    io = sqlite3.OperationalError("disk I/O error")
    io.sqlite_errorname = "SQLITE_IOERR_SHMSIZE"  # type: ignore[attr-defined]
    assert classify(io, tmp_path / "ok.sqlite") is DiskProblem.UNUSABLE
    monkeypatch.setattr("p2pkit.diskerrors.free_bytes", lambda path: 4096)  # the disk has filled up
    assert classify(io, tmp_path / "ok.sqlite") is DiskProblem.FULL
