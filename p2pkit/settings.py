"""Runtime settings (``cfg.*``): typed, validated, applied at once and persisted.

Values come from the ``[cfg]`` config section; a value set at run time (repeater, web
UI, API) is stored in the node's SQLite database. At the next start a stored value wins
over a key the config left at its default, and a key given explicitly at start (TOML,
environment, flag: ``explicit``) wins over the stored value — and is stored in its place.
An ephemeral node keeps them in memory.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs

from ._exceptions import ConfigError, FieldError, NodeStateError
from .config import CfgSection
from .diskerrors import problem_message
from .fields import FieldType, coerce

log = logging.getLogger("p2pkit.settings")


def _between(low: int, high: int) -> Callable[[int], None]:
    """A validator for ``low <= value <= high``. The upper bounds are far past any real
    machine and keep derived values (bytes from MiB, bytes/s from KiB/s) in 64 bits: a
    cache_limit_mb of 2**63 was taken, and then store.limit_bytes could not be read."""

    def check(value: int) -> None:
        if value < low:
            raise ValueError(f"must be >= {low}")
        if value > high:
            raise ValueError(f"must be <= {high}")

    return check


_non_negative = _between(0, 1 << 40)
_positive = _between(1, 1 << 40)


@attrs.frozen
class SettingSpec:
    type: FieldType
    description: str
    validate: Callable[[Any], None] | None = None


SETTINGS: dict[str, SettingSpec] = {
    "p2p_enabled": SettingSpec(FieldType.BOOL, "exchange pieces with peers (off = origin only)"),
    "upload_limit_kbps": SettingSpec(FieldType.INT, "upload limit in KiB/s (kibibytes, not kilobits); 0 = none set: the node finds its own from its uplink's queueing delay", _non_negative),
    "cache_limit_mb": SettingSpec(FieldType.INT, "storage limit of the cache in MiB", _positive),
    "max_connections": SettingSpec(FieldType.INT, "most peer sessions at once", _between(1, 1 << 20)),
}


def _open_db(path: Path) -> sqlite3.Connection:
    """The settings database; one that cannot be used is a ConfigError naming it and
    saying why (damaged, or on a full or unwritable disk: then it is kept)."""
    try:
        db = sqlite3.connect(str(path), isolation_level=None)
    except sqlite3.Error as exc:
        raise ConfigError(problem_message(f"the settings database {path}", exc, path)) from None
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    except sqlite3.Error as exc:
        db.close()
        raise ConfigError(problem_message(
            f"the settings database {path}", exc, path,
            move_away="move it away to start with the defaults")) from None
    return db


class Settings:
    """``settings.p2p_enabled`` reads; ``settings.set("p2p_enabled", False)`` validates,
    persists and notifies ``on_change(key, value)``."""

    def __init__(
        self, defaults: CfgSection, db_path: Path | None,
        on_change: Callable[[str, Any], None] | None = None, explicit: Iterable[str] = (),
    ) -> None:
        start: dict[str, Any] = attrs.asdict(defaults)
        self._values = dict(start)
        # a change to one of these lasts until the next start, where the given value wins
        self.given_at_start = frozenset(explicit) & set(SETTINGS)
        for key, value in start.items():  # [cfg] defaults obey the runtime rules
            try:
                self._validated(key, value)
            except FieldError as exc:
                raise ConfigError(f"[cfg] {exc}") from None
        self._on_change = on_change
        self._closed = False
        # An ephemeral node (db_path None) keeps settings in memory only: no database at all,
        # which matters when the simulator runs thousands of nodes.
        self._db = _open_db(db_path) if db_path else None
        if self._db is not None:
            for key, raw in self._db.execute("SELECT key, value FROM settings"):
                if key in SETTINGS:
                    try:
                        self._values[key] = self._validated(key, json.loads(raw))
                    except (FieldError, ValueError, RecursionError):
                        pass  # a stored value that no longer validates falls back to the default
            for key in explicit:  # given at start: beats what was set at run time, and stays
                self._store(key, start[key])

    def _validated(self, key: str, value: Any) -> Any:
        spec = SETTINGS.get(key)
        if spec is None:
            raise FieldError(f"unknown setting {key!r} (known: {', '.join(SETTINGS)})")
        value = coerce(spec.type, value, key)
        if spec.validate is not None:
            try:
                spec.validate(value)
            except ValueError as exc:
                raise FieldError(f"cfg.{key}: {exc}") from None
        return value

    def get(self, key: str) -> Any:
        if key not in SETTINGS:
            raise FieldError(f"unknown setting {key!r}")
        return self._values[key]

    def set(self, key: str, value: Any) -> Any:
        self._check_open()
        value = self._validated(key, value)
        changed = self._values[key] != value
        self._store(key, value)
        if changed and self._on_change is not None:
            self._on_change(key, value)
        return value

    def _store(self, key: str, value: Any) -> None:
        """Apply, and save if there is a database. A value that cannot be saved (a full
        disk) still applies until the node stops, and a warning says so: a full disk
        must not take the node down, at start or from the settings page."""
        self._values[key] = value
        if self._db is not None:
            try:
                self._db.execute(
                    "INSERT INTO settings(key, value) VALUES(?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, json.dumps(value)),
                )
            except sqlite3.Error as exc:
                log.warning("cfg.%s = %s applies until the node stops but could not be saved: %s",
                            key, json.dumps(value), problem_message("the settings database", exc))

    def update(self, values: dict[str, Any]) -> dict[str, Any]:
        """Partial update (seed 004 §4.1.4): all values are validated before any is applied."""
        self._check_open()
        checked = {key: self._validated(key, value) for key, value in values.items()}
        for key, value in checked.items():
            self.set(key, value)
        return self.as_dict()

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def __iter__(self) -> Iterator[str]:
        return iter(SETTINGS)

    def _check_open(self) -> None:
        # after its node stopped a change would apply to nothing and be saved nowhere
        if self._closed:
            raise NodeStateError("settings cannot change: the node has stopped")

    def close(self) -> None:
        self._closed = True
        if self._db is not None:
            self._db.close()

    @property
    def p2p_enabled(self) -> bool:
        return bool(self._values["p2p_enabled"])

    @property
    def upload_limit_kbps(self) -> int:
        return int(self._values["upload_limit_kbps"])

    @property
    def cache_limit_mb(self) -> int:
        return int(self._values["cache_limit_mb"])

    @property
    def max_connections(self) -> int:
        return int(self._values["max_connections"])
