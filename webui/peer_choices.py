"""The peers a person switched off (seed 004 §4.1.2's toggle), kept across restarts.

A peer's id is its public key, the same every time it connects: a peer switched off stays
off when it comes back, and when this node restarts (``<data_dir>/webui.sqlite``; in
memory for an ephemeral node). Switching a peer on again forgets it. Bounded: past
``MAX_SWITCHED_OFF`` the longest-ago choice goes.
"""

from __future__ import annotations

import time
from pathlib import Path

from .database import open_database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS switched_off_peers (
    peer_id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    switched_at INTEGER NOT NULL
);
"""
MAX_SWITCHED_OFF = 10_000


class SwitchedOffPeers:
    def __init__(self, db_path: Path | None) -> None:
        self._db = open_database(db_path, _SCHEMA)
        rows = self._db.execute(
            "SELECT peer_id, address FROM switched_off_peers ORDER BY switched_at").fetchall()
        self.addresses: dict[str, str] = {str(pid): str(addr) for pid, addr in rows}

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self.addresses

    def choose(self, peer_id: str, *, enabled: bool, address: str) -> None:
        if enabled:
            self.addresses.pop(peer_id, None)
            self._db.execute("DELETE FROM switched_off_peers WHERE peer_id = ?", (peer_id,))
            return
        self.addresses.pop(peer_id, None)  # to the end: the newest choice
        self.addresses[peer_id] = address
        self._db.execute(
            "INSERT OR REPLACE INTO switched_off_peers (peer_id, address, switched_at) VALUES (?, ?, ?)",
            (peer_id, address, int(time.time() * 1000)))
        if len(self.addresses) > MAX_SWITCHED_OFF:
            self._db.execute(
                "DELETE FROM switched_off_peers WHERE peer_id NOT IN (SELECT peer_id FROM "
                "switched_off_peers ORDER BY switched_at DESC LIMIT ?)", (MAX_SWITCHED_OFF,))
            oldest = next(iter(self.addresses))
            del self.addresses[oldest]

    def close(self) -> None:
        self._db.close()
