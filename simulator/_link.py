"""Access links: bandwidth with a drop-tail byte queue, latency, jitter, loss, reordering.

A :class:`LinkProfile` describes a host's access link (both directions); each direction is
a :class:`LinkDirection`, a small sans-IO state machine: ``transmit(size, now)`` returns the
instant the packet reaches the far end of the link, or a negative drop code.

The queue is not a list of packets. For a FIFO served at a constant rate, the bytes still
waiting (including the packet being serialised) at time ``now`` are exactly
``(busy_until - now) * rate``, so a drop-tail check and the departure time need only the
instant the link becomes idle.
"""

from __future__ import annotations

import random
from typing import Any

import attrs

from ._loss import LossModel, LossSpec

# Drop codes returned by LinkDirection.transmit (negative so they never look like a time).
DROP_LOSS = -1.0
DROP_QUEUE = -2.0

# IPv4 (20) + UDP (8) header bytes added to every datagram on the wire.
HEADER_BYTES = 28


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _probability(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be a probability in [0, 1], got {value!r}")


@attrs.frozen
class LinkProfile:
    """A host's access link. Rates in bits/s (0 = unlimited), times in seconds.

    ``latency`` and ``jitter`` are one-way, per direction (a host-to-host round trip over two
    access links crosses four directions plus the core twice). Jitter is uniform in
    ``[-jitter, +jitter]``; packets stay in order unless ``reorder`` > 0, in which case that
    fraction of packets skips the latency (netem's ``reorder``) and overtakes the others.
    ``loss`` applies to both directions unless ``up_loss`` / ``down_loss`` are given.
    ``queue_bytes`` bounds the bytes waiting or being serialised in each direction.
    """

    up_bps: float = attrs.field(default=0.0, validator=_non_negative)
    down_bps: float = attrs.field(default=0.0, validator=_non_negative)
    latency: float = attrs.field(default=0.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.0, validator=_non_negative)
    queue_bytes: int = attrs.field(default=256 * 1024, validator=_non_negative)
    loss: LossSpec = attrs.field(factory=LossSpec)
    up_loss: LossSpec | None = None
    down_loss: LossSpec | None = None
    duplicate: float = attrs.field(default=0.0, validator=_probability)
    reorder: float = attrs.field(default=0.0, validator=_probability)
    mtu: int = attrs.field(default=1500, validator=_non_negative)

    def direction(self, up: bool, rng: random.Random) -> LinkDirection:
        spec = (self.up_loss if up else self.down_loss) or self.loss
        return LinkDirection(
            rate_bps=self.up_bps if up else self.down_bps,
            queue_bytes=self.queue_bytes,
            latency=self.latency,
            jitter=self.jitter,
            loss=spec.build(),
            reorder=self.reorder,
            rng=rng,
        )


class LinkDirection:
    """One direction of an access link (see module docstring)."""

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
