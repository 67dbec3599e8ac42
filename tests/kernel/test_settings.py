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
