"""HTTP and WebSocket routes of the web UI, one blueprint per area."""

from __future__ import annotations

from quart import Quart


def register_all(app: Quart) -> None:
    from . import events, files, history, media, pages, peers, settings

    for module in (files, media, peers, history, settings, events, pages):
        app.register_blueprint(module.bp)
