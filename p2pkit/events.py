"""Typed node events and the bus that carries them.

Plugins observe events through the ``p2pkit_event`` hook (synchronous, called in emit
order); async consumers such as the web UI's WebSocket subscribe to the bus and get a
bounded stream (a subscriber whose buffer is full misses the events that arrive until it
catches up; it never blocks the node). The node closes its bus once it has stopped: every
subscriber's ``async for`` then ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

import attrs
import trio


@attrs.frozen
class Event:
    """Base of every event; ``kind`` is a stable dotted name used on the wire to the UI."""

    kind: str = attrs.field(init=False, default="event")

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=True)


@attrs.frozen
class PeerUp(Event):
    """A peer finished its handshake and can be talked to."""

    kind: str = attrs.field(init=False, default="peer.up")
    peer_id: str
    address: tuple[str, int]


@attrs.frozen
class PeerDown(Event):
    """A peer's session ended (closed, timed out, or dropped for misbehaviour)."""

    kind: str = attrs.field(init=False, default="peer.down")
    peer_id: str
    reason: str
    # the session's last ``stats()`` (bytes each way, ...): what it exchanged in all
    stats: dict[str, float | str] = attrs.field(factory=dict, eq=False)
    # this node ended it (a plugin closed the peer — e.g. the swarm dropping a liar — a
    # protocol error, a replacement, the node stopping), not the peer or the network
    by_us: bool = False


@attrs.frozen
class ContentAdded(Event):
    """Content became available: shared here (``local``) or announced by the network."""

    kind: str = attrs.field(init=False, default="content.added")
    rid: str
    name: str
    local: bool


@attrs.frozen
class ContentRemoved(Event):
    """Content is gone: unshared here (``local``) or withdrawn/expired on the network."""

    kind: str = attrs.field(init=False, default="content.removed")
    rid: str
    local: bool


@attrs.frozen
class Notice(Event):
    """A free-form, human-readable line worth showing (log panel, toasts)."""

    kind: str = attrs.field(init=False, default="notice")
    level: str
    message: str
    source: str = ""


@attrs.frozen
class GenericEvent(Event):
    """Any other event a plugin wants to publish (download progress, settings changed...)."""

    kind: str = attrs.field(default="event")
    data: dict[str, Any] = attrs.field(factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.data}


def changed_setting(event: Event) -> tuple[str, Any] | None:
    """``(key, value)`` when ``event`` says a runtime setting changed (the key without
    its ``cfg.`` prefix, as ``node.settings`` names it), else None."""
    if isinstance(event, GenericEvent) and event.kind == "settings.changed":
        return str(event.data.get("key", "")).removeprefix("cfg."), event.data.get("value")
    return None


T = TypeVar("T")


class FanOut(Generic[T]):
    """Bounded fan-out to async subscribers, never blocking the publisher: a subscriber
    whose buffer is full misses the item (counted in ``dropped``)."""

    def __init__(self, buffer: int) -> None:
        self._buffer = buffer
        self._subscribers: list[trio.MemorySendChannel[T]] = []
        self.dropped = 0
        self.closed = False

    def close(self) -> None:
        """No more items: every subscriber's loop ends once it has read what is buffered,
        and a later subscription ends at once."""
        self.closed = True
        for send in self._subscribers:
            send.close()
        self._subscribers.clear()

    def __len__(self) -> int:
        return len(self._subscribers)

    def publish(self, item: T) -> None:
        for send in list(self._subscribers):
            try:
                send.send_nowait(item)
            except trio.WouldBlock:
                self.dropped += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(send)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[trio.MemoryReceiveChannel[T]]:
        """``async with fan.subscribe() as items: async for item in items: ...``"""
        send, receive = trio.open_memory_channel[T](self._buffer)
        if self.closed:
            send.close()
        else:
            self._subscribers.append(send)
        try:
            async with receive:
                yield receive
        finally:
            if send in self._subscribers:
                self._subscribers.remove(send)
            send.close()


class EventBus(FanOut[Event]):
    """Fan-out of events to the hook and to async subscribers."""

    def __init__(self, on_emit: Callable[[Event], None], buffer: int = 256) -> None:
        super().__init__(buffer)
        self._on_emit = on_emit

    def emit(self, event: Event) -> None:
        self._on_emit(event)
        self.publish(event)
