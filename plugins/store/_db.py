"""The store's SQLite metadata: schema, version check, connection settings.

WAL mode (exclusive locking) with ``synchronous=NORMAL``: a commit is atomic and survives the process being
killed (the WAL is in the OS page cache); with ``durable=True`` it is FULL and survives
power loss as well. ``PRAGMA user_version`` holds the schema version. Appends do not
commit here (see ``_sizes.py``); creates, deletes, pins and piece bitmaps do.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ._errors import StoreError

SCHEMA_VERSION = 1

_SCHEMA_V1 = """
CREATE TABLE objects (            -- seed 004 FileStore resources, addressed by sid
    sid      TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,    -- as of the last flush; newer in sizes.map (_sizes.py)
    mtime_ms INTEGER NOT NULL,    -- lastModifiedEpochMs (same)
    seq      INTEGER NOT NULL,    -- modification order (eviction key, ties impossible)
    pinned   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE content (            -- pieces of manifests, verified by SHA-256
    rid             TEXT PRIMARY KEY,
    manifest        BLOB NOT NULL,   -- canonical encoding; sha256(manifest) == rid
    pinned          INTEGER NOT NULL,
    source          BLOB,            -- own share kept by reference: its path (bytes), else NULL
    source_size     INTEGER,
    source_mtime_ns INTEGER,
    have            BLOB NOT NULL,   -- bit i (MSB first) = piece i stored and verified
    stored_bytes    INTEGER NOT NULL,
    mtime_ms        INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    added_ms        INTEGER NOT NULL
);
"""


def connect(path: Path, *, durable: bool, volatile: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) and check the schema version. ``volatile``: the store is
    thrown away when its process ends (ephemeral node), so nothing is ever synced."""
    try:
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open store database {path}: {exc}") from None
    try:
        _configure(db, path, durable=durable, volatile=volatile)
    except BaseException:
        db.close()  # a store that cannot open leaks no descriptor (restart loops)
        raise
    return db


def _configure(db: sqlite3.Connection, path: Path, *, durable: bool, volatile: bool) -> None:
    """Connection settings, the schema version check, the tables on first use."""
    try:
        if volatile:  # before the journal mode switch, which would sync otherwise
            db.execute("PRAGMA synchronous=OFF")
        # One process owns the store (LOCK file), so SQLite need not coordinate with
        # others: exclusive locking keeps the WAL index in memory, ~35 % cheaper commits.
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        # volatile: the journal stays in memory, one file descriptor per store (a
        # simulation of a thousand nodes must not run out of descriptors)
        db.execute(f"PRAGMA journal_mode={'MEMORY' if volatile else 'WAL'}")
        if not volatile:
            db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        # A checkpoint syncs the database file (milliseconds). The store checkpoints from
        # its periodic sweep instead (FileStore.close_idle), off the append path; the
        # automatic one stays as a bound (8192 pages, 32 MiB of WAL) for a store without
        # a sweep, and the WAL file is cut back to 4 MiB afterwards.
        db.execute("PRAGMA wal_autocheckpoint=8192")
        db.execute(f"PRAGMA journal_size_limit={4 * 1024 * 1024}")
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open store database {path}: {exc}") from None
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store database {path} has schema version {version}; this p2pkit knows "
            f"{SCHEMA_VERSION} (made by a newer p2pkit?)"
        )
    if version == 0:
        # one transaction: a crash leaves either no tables or all of them
        db.executescript("BEGIN;" + _SCHEMA_V1 + f"PRAGMA user_version={SCHEMA_VERSION};COMMIT;")

