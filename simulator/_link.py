"""Access links: bandwidth with a drop-tail byte queue, latency, jitter, loss, reordering.

A :class:`LinkProfile` describes a host's access link (both directions); each direction is
a :class:`~._direction.LinkDirection` (its own module: it is compiled, this attrs class
is not — see setup.py).
"""

from __future__ import annotations

import math
import random
from typing import Any

import attrs

from ._direction import LinkDirection
from ._loss import LossSpec
from ._validate import finite


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    finite(attribute.name, value)


# converters to int that name the field for nan, inf or a string (int() said 'cannot
# convert float NaN to integer'); named functions, as mypy's attrs plugin wants
def _queue_bytes(value: Any) -> int:
    return int(finite("queue_bytes", value, minimum=-math.inf))


def _up_queue_bytes(value: Any) -> int | None:
    return None if value is None else int(finite("up_queue_bytes", value))


def _down_queue_bytes(value: Any) -> int | None:
    return None if value is None else int(finite("down_queue_bytes", value))


def _mtu_bytes(value: Any) -> int:
    return int(finite("mtu", value, minimum=-math.inf))


def _loss_spec(value: LossSpec | float) -> LossSpec:
    """A LossSpec, or a number: Bernoulli loss at that rate (as ``loss = 0.02`` in TOML)."""
    if isinstance(value, LossSpec):
        return value
    return LossSpec.bernoulli(finite("loss", value))


def _optional_loss_spec(value: LossSpec | float | None) -> LossSpec | None:
    return None if value is None else _loss_spec(value)


def _probability(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if finite(attribute.name, value) > 1.0:
        raise ValueError(f"{attribute.name} must be a probability in [0, 1], got {value!r}")


MIN_MTU = 68  # RFC 791: every IPv4 link carries 68 bytes; below, nothing a node sends fits


def _mtu(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < MIN_MTU:
        raise ValueError(f"mtu must be >= {MIN_MTU} (an IP packet larger than it is dropped), got {value!r}")


@attrs.frozen
class LinkProfile:
    """A host's access link. Rates in bits/s (0 = unlimited), times in seconds.

    ``latency`` and ``jitter`` are one-way, per direction (a host-to-host round trip over two
    access links crosses four directions plus the core twice). Jitter is uniform in
    ``[-jitter, +jitter]``; packets stay in order unless ``reorder`` > 0, in which case that
    fraction of packets skips the latency (netem's ``reorder``) and overtakes the others.
    Kept in order, a packet drawn to arrive before the one ahead of it waits for it: on
    traffic denser than one packet per ``2 * jitter`` the mean delay exceeds ``latency``.
    ``loss`` applies to both directions unless ``up_loss`` / ``down_loss`` are given; each
    is a :class:`LossSpec` or a number, Bernoulli loss at that rate (``loss=0.02``).
    ``queue_bytes`` bounds the bytes waiting or being serialised in each direction, unless
    ``up_queue_bytes`` / ``down_queue_bytes`` are given for one (a queue meant to hold so
    many milliseconds is smaller on the slower direction: see :meth:`queue_for`).
    """

    up_bps: float = attrs.field(default=0.0, validator=_non_negative)
    down_bps: float = attrs.field(default=0.0, validator=_non_negative)
    latency: float = attrs.field(default=0.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.0, validator=_non_negative)
    # int() first: the compiled link direction holds exact ints (64e3 is a float)
    queue_bytes: int = attrs.field(default=256 * 1024, converter=_queue_bytes,
                                   validator=_non_negative)
    up_queue_bytes: int | None = attrs.field(default=None, converter=_up_queue_bytes)
    down_queue_bytes: int | None = attrs.field(default=None, converter=_down_queue_bytes)
    loss: LossSpec = attrs.field(factory=LossSpec, converter=_loss_spec)
    up_loss: LossSpec | None = attrs.field(default=None, converter=_optional_loss_spec)
    down_loss: LossSpec | None = attrs.field(default=None, converter=_optional_loss_spec)
    duplicate: float = attrs.field(default=0.0, validator=_probability)
    reorder: float = attrs.field(default=0.0, validator=_probability)
    mtu: int = attrs.field(default=1500, converter=_mtu_bytes, validator=_mtu)

    @staticmethod
    def queue_for(rate_bps: float, seconds: float, mtu: int = 1500) -> int:
        """The bytes a queue holds to take ``seconds`` to drain at ``rate_bps``: at least one
        packet of ``mtu`` bytes (a smaller queue drops every full-size packet)."""
        return max(int(mtu), int(rate_bps / 8 * seconds))

    def direction(self, up: bool, rng: random.Random) -> LinkDirection:
        spec = (self.up_loss if up else self.down_loss) or self.loss
        queue = self.up_queue_bytes if up else self.down_queue_bytes
        return LinkDirection(
            rate_bps=self.up_bps if up else self.down_bps,
            queue_bytes=self.queue_bytes if queue is None else queue,
            latency=self.latency,
            jitter=self.jitter,
            loss=spec.build(),
            reorder=self.reorder,
            rng=rng,
        )
