"""Congestion control: the interface every controller implements, and the registry.

A controller sees the sender's events with explicit time (``now`` in seconds) and exposes
two numbers the connection obeys: ``cwnd`` (bytes allowed in flight) and ``pacing_rate``
(bytes per second, 0 = send as fast as ``cwnd`` allows). Controllers are built per
connection by a factory ``factory(max_datagram, initial_cwnd)``; register new ones with
:func:`register_congestion_controller` or, from a plugin, the hook
``p2pkit_rudp_congestion_controllers``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import attrs

from p2pkit._exceptions import ConfigError


@attrs.define
class RateSample:
    """What one acknowledgement taught the sender (the BBR draft's rate sample)."""

    delivered: int = 0  # bytes delivered in this sample's interval
    interval: float = 0.0  # seconds over which ``delivered`` arrived (0 = no sample)
    delivery_rate: float = 0.0  # delivered / interval, bytes per second
    prior_delivered: int = 0  # total delivered when the newest acked packet was sent
    total_delivered: int = 0  # total delivered now
    rtt: float = 0.0  # latest RTT sample, seconds (0 = none in this ack)
    min_rtt: float = 0.0
    srtt: float = 0.0
    newest_sent_time: float = 0.0  # send time of the most recently sent packet acked
    is_app_limited: bool = False  # the sender had nothing to send when it was sent
    prior_in_flight: int = 0  # bytes in flight before this ack


class CongestionController(Protocol):
    """What the connection needs from a congestion controller."""

    name: str
    cwnd: int
    pacing_rate: float

    @property
    def state(self) -> str:
        """Human-readable phase (``slow_start``, ``recovery``, ``probe_bw``...)."""
        ...

    def on_packet_sent(self, now: float, size: int, bytes_in_flight: int) -> None: ...

    def on_ack(self, now: float, acked_bytes: int, sample: RateSample, bytes_in_flight: int) -> None: ...

    def on_loss(self, now: float, lost_bytes: int, newest_lost_sent_time: float, bytes_in_flight: int) -> None:
        """Packets were declared lost (by SACK/RACK); ``newest_lost_sent_time`` tells
        whether this loss belongs to a recovery episode already reacted to."""
        ...

    def on_rto(self, now: float) -> None:
        """The retransmission timer fired: nothing was acknowledged for a whole RTO."""
        ...


CongestionFactory = Callable[[int, int], CongestionController]  # (max_datagram, initial_cwnd)

_REGISTRY: dict[str, CongestionFactory] = {}
DEFAULT_ALIAS = "default"
DEFAULT_CONTROLLER = "bbr"


def register_congestion_controller(name: str, factory: CongestionFactory) -> None:
    """Make ``factory`` selectable as ``[rudp] congestion = name``."""
    if not name or name == DEFAULT_ALIAS:
        raise ValueError(f"invalid congestion controller name {name!r}")
    _REGISTRY[name] = factory


def congestion_controllers() -> dict[str, CongestionFactory]:
    """The registered controllers by name (a copy)."""
    return dict(_REGISTRY)


def congestion_factory(name: str, extra: dict[str, CongestionFactory] | None = None) -> CongestionFactory:
    """Resolve a config value to a factory; ConfigError names the key and the choices."""
    table = {**_REGISTRY, **(extra or {})}
    key = DEFAULT_CONTROLLER if name == DEFAULT_ALIAS else name
    try:
        return table[key]
    except KeyError:
        choices = ", ".join(sorted([DEFAULT_ALIAS, *table]))
        raise ConfigError(f"rudp.congestion: unknown controller {name!r} (choices: {choices})") from None
