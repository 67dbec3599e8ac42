"""Fan-out of UI messages to every open WebSocket.

One pump task turns node events into JSON messages; downloads and the log relay publish
their own. Each client has a bounded queue: a browser that falls behind misses messages
while its queue is full (counted), never slows the node.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

import trio

from p2pkit.events import (
    ContentAdded,
    ContentRemoved,
    Event,
    FanOut,
    GenericEvent,
    Notice,
    PeerDown,
    PeerUp,
    changed_setting,
)

Message = dict[str, Any]
CLIENT_BUFFER = 512
LOG_HISTORY = 200


class Hub(FanOut[Message]):
    """``publish(message)`` to every open WebSocket (``async with hub.client() as
    messages``); the last log lines are kept for pages that open later."""

    def __init__(self) -> None:
        super().__init__(CLIENT_BUFFER)
        self.recent_logs: deque[Message] = deque(maxlen=LOG_HISTORY)

    def publish(self, message: Message) -> None:
        if message.get("type") == "log":
            self.recent_logs.append(message)
        super().publish(message)

    client = FanOut.subscribe

    @property
    def client_count(self) -> int:
        return len(self)


def event_message(event: Event) -> Message | None:
    """The UI message for a node event, or None if the UI does not care."""
    if isinstance(event, PeerUp):
        return {"type": "peer.up", "peer_id": event.peer_id, "address": f"{event.address[0]}:{event.address[1]}"}
    if isinstance(event, PeerDown):
        return {"type": "peer.down", "peer_id": event.peer_id, "reason": event.reason}
    if isinstance(event, ContentAdded | ContentRemoved):
        change = "added" if isinstance(event, ContentAdded) else "removed"
        return {"type": "files.changed", "change": change, "rid": event.rid, "local": event.local,
                "name": getattr(event, "name", "")}
    if isinstance(event, Notice):
        return {"type": "log", "level": event.level, "message": event.message,
                "source": event.source, "time": time.time()}
    if isinstance(event, GenericEvent):
        if (setting := changed_setting(event)) is not None:
            return {"type": "settings.changed", "key": setting[0], "value": setting[1]}
        if event.kind in ("store.completed", "store.removed", "store.evicted", "discovery.changed"):
            return {"type": "files.changed", "change": event.kind, "rid": event.data.get("rid", event.data.get("key")),
                    "local": event.kind.startswith("store.")}
    return None


class LogRelay(logging.Handler):
    """Sends ``p2pkit`` log records to the hub. Records may come from worker threads, so
    delivery goes through the trio token (thread-safe, and in order)."""

    def __init__(self, hub: Hub, token: trio.lowlevel.TrioToken, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._hub = hub
        self._token = token

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            prefix = record.name.rsplit(".", 1)[-1] + ": "  # "store: evicted…" from p2pkit.store
            if text.startswith(prefix):  # the panel names the source: not twice
                text = text[len(prefix):]
            message = {"type": "log", "level": record.levelname.lower(), "source": record.name,
                       "message": text[:2000], "time": record.created}
            self._token.run_sync_soon(self._hub.publish, message)
        except (trio.RunFinishedError, RuntimeError):
            pass  # the node is gone; nobody is listening
        except Exception:
            self.handleError(record)
