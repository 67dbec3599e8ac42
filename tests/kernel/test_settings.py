from collections.abc import Callable
from pathlib import Path

import pytest

from p2pkit import FieldError
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
