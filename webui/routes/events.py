"""Live state: the node's status, recent log lines and the ``/ws`` event stream.

Messages on ``/ws`` are JSON objects with a ``type``: ``hello`` (first, with the status),
``status``, ``files.changed``, ``download``, ``peer.up``, ``peer.down``, ``peer.toggled``,
``log``, ``settings.changed``, ``history.changed``. The client sends nothing but may send
``{"type": "ping"}`` and gets ``{"type": "pong"}``.
"""

from __future__ import annotations

import json

import trio
from quart import Blueprint, jsonify, websocket
from quart.typing import ResponseReturnValue

from ..app import web_ui
from ..views import node_status

bp = Blueprint("events", __name__)


@bp.get("/api/node")
async def get_node() -> ResponseReturnValue:
    return jsonify(node_status(web_ui()))


@bp.get("/api/logs")
async def get_logs() -> ResponseReturnValue:
    return jsonify({"logs": list(web_ui().hub.recent_logs)})


@bp.websocket("/ws")
async def events_socket() -> None:
    web = web_ui()
    await websocket.accept()
    async with web.hub.client() as messages:
        await websocket.send(json.dumps({"type": "hello", "status": node_status(web)}))

        async def read_client() -> None:
            while True:
                raw = await websocket.receive()
                if len(raw) <= 1024 and '"ping"' in str(raw):
                    await websocket.send(json.dumps({"type": "pong"}))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_client)
            async for message in messages:
                await websocket.send(json.dumps(message, default=str))
