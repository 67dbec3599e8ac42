"""Seed 004 §4.1.4: runtime settings, partial update, applied at once and persisted.

The node's ``settings`` validate and persist (SQLite); here every key is checked first so
a bad request names the key it is about and changes nothing.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, jsonify
from quart.typing import ResponseReturnValue

from p2pkit._exceptions import FieldError
from p2pkit.fields import coerce
from p2pkit.settings import SETTINGS

from ..app import web_ui
from ..errors import ApiError
from ..schemas import read_json_object

bp = Blueprint("settings", __name__)


def describe(given_at_start: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Every setting's type and description, and whether the node's start configuration
    gave it (a change lasts until the next start then: the given value wins there)."""
    return {key: {"type": spec.type.value, "description": spec.description,
                  "given_at_start": key in given_at_start}
            for key, spec in SETTINGS.items()}


@bp.get("/api/settings")
async def get_settings() -> ResponseReturnValue:
    return jsonify(web_ui().node.settings.as_dict())


@bp.get("/api/settings/schema")
async def get_settings_schema() -> ResponseReturnValue:
    return jsonify(describe(web_ui().node.settings.given_at_start))


@bp.put("/api/settings")
async def put_settings() -> ResponseReturnValue:
    body = await read_json_object()
    if not body:
        raise ApiError(422, "no settings given")
    for key, value in body.items():
        spec = SETTINGS.get(key)
        if spec is None:
            raise ApiError(422, f"unknown setting {key[:80]!r} (known: {', '.join(SETTINGS)})", key=key[:80])
        try:
            value = coerce(spec.type, value, key)
            if spec.validate is not None:
                spec.validate(value)
        except (FieldError, ValueError) as exc:
            message = str(exc) if str(exc).startswith(key) else f"{key}: {exc}"
            raise ApiError(422, message, key=key) from None
    try:
        values = web_ui().node.settings.update(body)
    except FieldError as exc:
        raise ApiError(422, str(exc)) from None
    return jsonify(values)
