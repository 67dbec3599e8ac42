"""A peer that serves whole pieces honestly and corrupts every block it relays.

Load it with ``node.plugins = ["tests.plugins.swarm.relay_liar:plugin"]`` and
``node.disable = ["swarm"]``: the node then runs this provider instead of the built-in one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from p2pkit.plugins.swarm import SwarmProvider
from p2pkit.plugins.swarm import _messages as msg
from p2pkit.plugins.swarm._state import Torrent

from p2pkit.hookspecs import hookimpl


class RelayLiar(SwarmProvider):
    def _block_to_send(self, t: Torrent, m: msg.Request) -> tuple[bytes | None, list[bytes] | None]:
        block, leaves = super()._block_to_send(t, m)
        if block is not None and not t.picker.have[m.piece]:  # a relayed block
            self.counters["corrupted_relays"] += 1
            block = bytes([block[0] ^ 1]) + block[1:]
        return block, leaves


class _Plugin:
    @hookimpl
    def p2pkit_capabilities(self) -> Mapping[str, Callable[[Any], Any]]:
        return {"swarm": RelayLiar}


plugin = _Plugin()
