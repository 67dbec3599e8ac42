"""Seed 004 §4.1.3: history of downloads and views, newest first."""

from __future__ import annotations

from quart import Blueprint, jsonify, request
from quart.typing import ResponseReturnValue

from ..app import web_ui
from ..errors import ApiError
from ..schemas import HistoryCreate, read_json

bp = Blueprint("history", __name__)


@bp.get("/api/history")
async def list_history() -> ResponseReturnValue:
    raw_limit = request.args.get("limit", "100")
    if not raw_limit.isdecimal() or not 1 <= int(raw_limit) <= 1000:
        raise ApiError(422, "limit must be an integer 1..1000", key="limit")
    kind = request.args.get("kind")
    if kind not in (None, "view", "download"):
        raise ApiError(422, "kind must be 'view' or 'download'", key="kind")
    return jsonify({"history": web_ui().history.list(int(raw_limit), kind)})


@bp.post("/api/history")
async def add_history() -> ResponseReturnValue:
    body = await read_json(HistoryCreate)
    web = web_ui()
    entry = web.history.add(body.rid, body.kind, body.title, body.position, body.duration)
    web.hub.publish({"type": "history.changed"})
    return jsonify(entry), 201


@bp.delete("/api/history/<entry_id>")
async def delete_history(entry_id: str) -> ResponseReturnValue:
    web = web_ui()
    if not web.history.delete(entry_id):
        raise ApiError(404, f"no history entry with id {entry_id[:80]!r}")
    web.hub.publish({"type": "history.changed"})
    return jsonify({"id": entry_id, "deleted": True})


@bp.delete("/api/history")
async def clear_history() -> ResponseReturnValue:
    web = web_ui()
    count = web.history.clear()
    web.hub.publish({"type": "history.changed"})
    return jsonify({"deleted": count})
