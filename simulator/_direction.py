"""One direction of an access link: a small sans-IO state machine.

``transmit(size, now)`` returns the instant the packet reaches the far end of the link, or
a negative drop code. The queue is not a list of packets. For a FIFO served at a
constant rate, the bytes still waiting (including the packet being serialised) at time
``now`` are exactly ``(busy_until - now) * rate``, so a drop-tail check and the departure
time need only the instant the link becomes idle.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Final

from ._loss import LossModel

if TYPE_CHECKING:
    from ._link import LinkProfile

# Drop codes returned by LinkDirection.transmit (negative so they never look like a time).
DROP_LOSS: Final = -1.0
DROP_QUEUE: Final = -2.0

# IPv4 (20) + UDP (8) header bytes added to every datagram on the wire.
HEADER_BYTES: Final = 28


class LinkDirection:
    """One direction of an access link (see the module docstring)."""

    __slots__ = (
        "busy_until", "bytes_sent", "drops_loss", "drops_queue", "jitter", "last_arrival",
        "latency", "loss", "packets_sent", "queue_bytes", "rate", "reorder", "rng",
    )

    def __init__(
        self, *, rate_bps: float, queue_bytes: int, latency: float, jitter: float,
        loss: LossModel | None, reorder: float, rng: random.Random,
    ) -> None:
        self.rate = rate_bps / 8.0  # bytes per second, 0 = unlimited
        self.queue_bytes = queue_bytes
        self.latency = latency
        self.jitter = jitter
        self.loss = loss
        self.reorder = reorder
        self.rng = rng
        self.busy_until = 0.0
        self.last_arrival = 0.0
        self.packets_sent = 0
        self.bytes_sent = 0
        self.drops_loss = 0
        self.drops_queue = 0

    def backlog(self, now: float) -> float:
        """Bytes queued or in serialisation at ``now``."""
        if not self.rate or self.busy_until <= now:
            return 0.0
        return (self.busy_until - now) * self.rate

    def transmit(self, size: int, now: float) -> float:
        """Arrival time at the far end for a packet of ``size`` wire bytes, or a DROP_ code."""
        if self.loss is not None and self.loss.lost(self.rng):
            self.drops_loss += 1
            return DROP_LOSS
        rate = self.rate
        if rate:
            start = self.busy_until if self.busy_until > now else now
            if (start - now) * rate + size > self.queue_bytes:
                self.drops_queue += 1
                return DROP_QUEUE
            depart = start + size / rate
            self.busy_until = depart
        else:
            depart = now
        self.packets_sent += 1
        self.bytes_sent += size
        if self.reorder and self.rng.random() < self.reorder:
            return depart  # netem reorder: sent at once, overtakes the delayed ones
        arrival = depart + self.latency
        jitter = self.jitter
        if jitter:
            # rng.uniform(-jitter, jitter) without its call: the same arithmetic, same values
            arrival += -jitter + (jitter + jitter) * self.rng.random()
            if arrival < depart:
                arrival = depart
        if arrival < self.last_arrival:
            arrival = self.last_arrival  # FIFO: jitter never reorders
        self.last_arrival = arrival
        return arrival

    def reconfigure(self, profile: LinkProfile, up: bool) -> None:
        """Apply a new profile (a timeline link change); the queue content is kept."""
        fresh = profile.direction(up, self.rng)
        self.rate = fresh.rate
        self.queue_bytes = fresh.queue_bytes
        self.latency = fresh.latency
        self.jitter = fresh.jitter
        self.loss = fresh.loss
        self.reorder = fresh.reorder
