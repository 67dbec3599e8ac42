import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from p2pkit import ConfigError, FieldError
from p2pkit.config import CfgSection
from p2pkit.settings import Settings


def test_defaults_come_from_the_cfg_section(tmp_path: Path) -> None:
    settings = Settings(CfgSection(cache_limit_mb=64), tmp_path / "s.sqlite")
    assert settings.cache_limit_mb == 64
    assert settings.p2p_enabled is True


def test_set_persists_and_wins_over_defaults(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    settings = Settings(CfgSection(), db)
    settings.set("upload_limit_kbps", 128)
    settings.close()
    reopened = Settings(CfgSection(upload_limit_kbps=5), db)
    assert reopened.upload_limit_kbps == 128


def test_partial_update_is_all_or_nothing(tmp_path: Path) -> None:
    changes: list[tuple[str, object]] = []
    settings = Settings(CfgSection(), None, lambda k, v: changes.append((k, v)))
    with pytest.raises(FieldError, match="max_connections"):
        settings.update({"cache_limit_mb": 10, "max_connections": 0})
    assert settings.cache_limit_mb == 2048  # nothing applied
    with pytest.raises(FieldError, match="unknown setting 'colour'"):
        settings.update({"colour": "blue"})
    assert settings.update({"cache_limit_mb": 10})["cache_limit_mb"] == 10
    assert changes == [("cache_limit_mb", 10)]


def test_setting_the_same_value_does_not_notify() -> None:
    changes: list[str] = []
    settings = Settings(CfgSection(), None, lambda k, v: changes.append(k))
    settings.set("p2p_enabled", True)
    assert changes == []


def test_a_corrupt_stored_value_falls_back_to_the_default(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    settings = Settings(CfgSection(), db)
    assert settings._db is not None
    settings._db.execute("INSERT INTO settings VALUES ('cache_limit_mb', '\"lots\"')")
    settings.close()
    assert Settings(CfgSection(), db).cache_limit_mb == 2048


def test_a_damaged_settings_database_is_a_clear_error_and_leaks_nothing(
    tmp_path: Path, descriptors_under: Callable[[Path], list[str]],
) -> None:
    from p2pkit import ConfigError

    db = tmp_path / "node.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    assert descriptors_under(tmp_path) == []
    for _ in range(5):
        with pytest.raises(ConfigError, match=r"node\.sqlite"):
            Settings(CfgSection(), db)
    assert descriptors_under(tmp_path) == []


async def _cache_limit_at_start(data_dir: Path, *assignments: str, env: dict[str, str] | None = None,
                                set_to: int | None = None) -> int:
    """Start a node on ``data_dir`` as ``p2pkit node --set …`` would; ``set_to`` is then
    set at run time (``p2pkit ctl set cfg.cache_limit_mb``). The limit it started with."""
    from p2pkit import open_node
    from p2pkit.config import load_config, parse_assignment
    from p2pkit.plugin_manager import BUILTIN_PLUGINS, plugin_name

    overrides: dict[str, dict[str, object]] = {"node": {
        "host": "127.0.0.1", "port": 0, "data_dir": str(data_dir), "repeater": "off",
        "disable": [plugin_name(m) for m in BUILTIN_PLUGINS]}}
    for text in assignments:
        section, key, value = parse_assignment(text)
        overrides.setdefault(section, {})[key] = value
    async with open_node(load_config(env=env or {}, overrides=overrides)) as node:
        started = node.settings.cache_limit_mb
        if set_to is not None:
            node.settings.set("cache_limit_mb", set_to)
    return started


async def test_a_value_given_at_start_beats_one_set_at_run_time(tmp_path: Path) -> None:
    assert await _cache_limit_at_start(tmp_path, set_to=5) == 2048
    assert await _cache_limit_at_start(tmp_path, "cfg.cache_limit_mb=512") == 512
    assert await _cache_limit_at_start(tmp_path) == 512  # what was given is what stays
    await _cache_limit_at_start(tmp_path, set_to=5)
    env = {"P2PKIT_CFG__CACHE_LIMIT_MB": "2048"}  # the default, but given: it wins too
    assert await _cache_limit_at_start(tmp_path, env=env) == 2048


async def test_a_value_set_at_run_time_beats_the_default_at_the_next_start(tmp_path: Path) -> None:
    await _cache_limit_at_start(tmp_path, "cfg.max_connections=7", set_to=5)
    assert await _cache_limit_at_start(tmp_path, "cfg.max_connections=7") == 5


# ---------------------------------------------------------------------------- a full disk


def sqlite_error(message: str, name: str) -> sqlite3.OperationalError:
    """The error SQLite raises with ``name`` (its sqlite_errorname), as from a real call."""
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorname = name  # type: ignore[attr-defined]
    return exc


class FailingConnection:
    """A connection on a disk that fails every statement with ``error``."""

    def __init__(self, db: sqlite3.Connection, error: sqlite3.Error) -> None:
        self._db, self._error = db, error

    def execute(self, *args: Any) -> Any:
        raise self._error

    def close(self) -> None:
        self._db.close()


def open_on_a_broken_disk(monkeypatch: pytest.MonkeyPatch, error: sqlite3.Error) -> None:
    real = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **kw: FailingConnection(real(*a, **kw), error))


@pytest.mark.parametrize(("error", "free"), [
    (sqlite_error("database or disk is full", "SQLITE_FULL"), 1 << 30),
    # what the reviewer got on a full tmpfs: SQLite could not make the WAL's index
    (sqlite_error("disk I/O error", "SQLITE_IOERR_SHMSIZE"), 0),
])
def test_a_full_disk_is_not_a_damaged_settings_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: sqlite3.Error, free: int) -> None:
    # "settings database …/node.sqlite is damaged (disk I/O error); move it away to start
    # with the defaults": the user who did lost every setting for a full disk
    db = tmp_path / "node.sqlite"
    settings = Settings(CfgSection(), db)
    settings.set("cache_limit_mb", 123)
    settings.close()
    open_on_a_broken_disk(monkeypatch, error)
    monkeypatch.setattr("p2pkit.diskerrors.free_bytes", lambda path: free)
    with pytest.raises(ConfigError) as info:
        Settings(CfgSection(), db)
    message = str(info.value)
    assert f"the disk holding the settings database {db} is full" in message
    assert "damaged" not in message and "move it away" not in message
    monkeypatch.undo()  # space freed: everything is still there
    assert Settings(CfgSection(), db).cache_limit_mb == 123


def test_an_unwritable_settings_database_is_not_damaged_either(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    open_on_a_broken_disk(monkeypatch, sqlite_error("attempt to write a readonly database", "SQLITE_READONLY"))
    monkeypatch.setattr("p2pkit.diskerrors.free_bytes", lambda path: 1 << 30)
    with pytest.raises(ConfigError, match=r"node\.sqlite cannot be written .*readonly.*permissions") as info:
        Settings(CfgSection(), tmp_path / "node.sqlite")
    assert "damaged" not in str(info.value)


def test_a_damaged_settings_database_says_to_move_it_away(tmp_path: Path) -> None:
    db = tmp_path / "node.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match=r"node\.sqlite is damaged .*move it away to start with the defaults"):
        Settings(CfgSection(), db)


def test_a_setting_that_cannot_be_saved_still_applies_and_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # the disk filled up while the node ran: a change on the settings page raised
    # "database or disk is full" (a 500, the value half applied and nobody told)
    changes: list[tuple[str, object]] = []
    settings = Settings(CfgSection(), tmp_path / "node.sqlite", on_change=lambda k, v: changes.append((k, v)))
    real = settings._db
    assert real is not None
    settings._db = FailingConnection(real, sqlite_error("database or disk is full", "SQLITE_FULL"))  # type: ignore[assignment]
    assert settings.set("cache_limit_mb", 7) == 7
    assert settings.cache_limit_mb == 7 and changes == [("cache_limit_mb", 7)]
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "could not be saved" in warning.getMessage() and "is full" in warning.getMessage()
    settings.close()
