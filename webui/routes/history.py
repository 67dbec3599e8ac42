"""Seed 004 §4.1.3: history of downloads and views, newest first."""

from __future__ import annotations

from quart import Blueprint, jsonify, request
from quart.typing import ResponseReturnValue

from ..app import web_ui
from ..errors import ApiError
from ..history import MAX_PAGE
from ..schemas import HistoryCreate, read_json

bp = Blueprint("history", __name__)


DEFAULT_PAGE = 100


def _page_size(raw: str) -> int:
    """``limit`` as 1..MAX_PAGE; plain ASCII digits only (not '²', '٣', '+5', ' 5' or
    thousands of digits, which int() would refuse with a ValueError)."""
    if not (raw.isascii() and raw.isdecimal() and len(raw) <= 6) or not 1 <= int(raw) <= MAX_PAGE:
        raise ApiError(422, f"limit must be an integer 1..{MAX_PAGE}", key="limit")
    return int(raw)


@bp.get("/api/history")
async def list_history() -> ResponseReturnValue:
    limit = _page_size(request.args.get("limit", str(DEFAULT_PAGE)))
    kind = request.args.get("kind")
    if kind not in (None, "view", "download"):
        raise ApiError(422, "kind must be 'view' or 'download'", key="kind")
    return jsonify({"history": web_ui().history.list(limit, kind)})


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
