"""A deliberately corrupting peer, for the end-to-end tests.

Load it with ``--plugin tests.e2e.corrupt_plugin:plugin --set node.disable=swarm``: the
node then runs this swarm provider instead of the built-in one; it is the real provider
except that every piece it serves has one byte flipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
from p2pkit.plugins.swarm import SwarmProvider

from p2pkit.hookspecs import hookimpl


class CorruptSwarm(SwarmProvider):
    def __init__(self, node: Any) -> None:
        super().__init__(node)
        # every piece offered at once (no initial seeding): a downloader asks it for
        # several before the first bad one is back (and for none after), so it reaches
        # its third strike; shown a few pieces at a time it sometimes did not
        self.cfg = attrs.evolve(self.cfg, initial_seeding=False)

    def _read_piece(self, rid: str, index: int) -> bytes | None:
        data = super()._read_piece(rid, index)
        if data is None:
            return None
        self.counters["corrupted_pieces_served"] += 1
        return bytes([data[0] ^ 0xFF]) + data[1:]


class _Plugin:
    @hookimpl
    def p2pkit_capabilities(self) -> Mapping[str, Callable[[Any], Any]]:
        return {"swarm": CorruptSwarm}


plugin = _Plugin()
