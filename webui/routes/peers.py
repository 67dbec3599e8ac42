"""Seed 004 §4.1.2: peers, their stats, and switching a peer on or off (kept: peer_choices.py)."""

from __future__ import annotations

from quart import Blueprint, jsonify
from quart.typing import ResponseReturnValue

from ..app import web_ui
from ..errors import ApiError
from ..schemas import PeerToggle, read_json
from ..views import peer_rows, peer_stats

bp = Blueprint("peers", __name__)


@bp.get("/api/peers")
async def list_peers() -> ResponseReturnValue:
    return jsonify({"peers": peer_rows(web_ui())})


@bp.get("/api/peers/stats")
async def get_peer_stats() -> ResponseReturnValue:
    return jsonify(peer_stats(web_ui()))


@bp.put("/api/peers/<pid>/toggle")
async def toggle_peer(pid: str) -> ResponseReturnValue:
    web = web_ui()
    body = await read_json(PeerToggle, allow_empty=True)
    known = web.peers.get(pid)
    if known is None:
        raise ApiError(404, f"no peer with id {pid[:80]!r}")
    peer = web.node.peers.get(pid) if web.node.peers is not None else None
    current = peer.enabled if peer is not None else known.enabled
    enabled = (not current) if body.enabled is None else body.enabled
    known.enabled = enabled
    web.switched_off.choose(pid, enabled=enabled, address=known.address)  # kept across restarts
    if peer is not None:
        peer.enabled = enabled
    web.hub.publish({"type": "peer.toggled", "peer_id": pid, "enabled": enabled})
    row = next(r for r in peer_rows(web) if r["id"] == pid)
    return jsonify(row)
