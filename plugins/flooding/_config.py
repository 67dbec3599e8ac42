"""``[flooding]`` config section."""

from __future__ import annotations

from typing import Any

import attrs

from p2pkit.addresses import is_ip_literal

from ._messages import MAX_TTL
from ._redial import MAX_REMEMBERED


def _ttl(_inst: Any, _attr: Any, value: int) -> None:
    if not 1 <= value <= MAX_TTL:
        raise ValueError(f"flooding.ttl must be between 1 and {MAX_TTL}")


def _positive(_inst: Any, attr: Any, value: float) -> None:
    if value <= 0:
        raise ValueError(f"flooding.{attr.name} must be > 0")


def _non_negative(_inst: Any, attr: Any, value: float) -> None:
    if value < 0:
        raise ValueError(f"flooding.{attr.name} must be >= 0")


def _remember(_inst: Any, _attr: Any, value: int) -> None:
    if not 0 <= value <= MAX_REMEMBERED:
        raise ValueError(f"flooding.remember_peers must be between 0 and {MAX_REMEMBERED}")


def _port(_inst: Any, _attr: Any, value: int) -> None:
    if not 1 <= value <= 65535:
        raise ValueError("flooding.lan_port must be 1..65535")


def _lan_address(_inst: Any, _attr: Any, value: str) -> None:
    # the node's socket sends to IP literals only: a name here stopped the node at its
    # first beacon (a lookup per beacon before that)
    if not is_ip_literal(value) and value != "<broadcast>":
        raise ValueError(f"flooding.lan_address must be an IP address, got {value!r}")


@attrs.define
class FloodingConfig:
    """``[flooding]``: limited flooding for small networks (seed 004 §4.3.3)."""

    ttl: int = attrs.field(default=4, validator=_ttl)  # hops an announce or query travels
    announce_interval: float = attrs.field(default=30.0, validator=_positive)  # re-announce period, s
    entry_expiry: float = attrs.field(default=95.0, validator=_positive)  # forget a silent origin, s
    peer_down_grace: float = attrs.field(default=10.0, validator=_non_negative)  # after a neighbour leaves
    search_timeout: float = attrs.field(default=3.0, validator=_positive)  # longest wait for hits, s
    search_idle: float = attrs.field(default=0.5, validator=_positive)  # stop after this long without hits
    peer_exchange: bool = True  # gossip peers' addresses and connect to some
    pex_interval: float = attrs.field(default=15.0, validator=_positive)
    target_peers: int = attrs.field(default=8, validator=_non_negative)  # PEX stops dialing here
    bootstrap_timeout: float = attrs.field(default=60.0, validator=_non_negative)  # 0 = retry forever
    redial_for: float = attrs.field(default=300.0, validator=_non_negative)  # redial a lost neighbour, s (0 = never)
    remember_peers: int = attrs.field(default=32, validator=_remember)  # kept in the data dir, dialled at start
    connect_timeout: float = attrs.field(default=10.0, validator=_positive)
    rate_limit: float = attrs.field(default=50.0, validator=_positive)  # messages/s per peer and kind (searches, lists)
    rate_burst: float = attrs.field(default=500.0, validator=_positive)
    queue_size: int = attrs.field(default=256, validator=_positive)  # per-peer send queue
    lan_discovery: bool = False  # broadcast beacons on the node's own UDP socket
    lan_port: int = attrs.field(default=7700, validator=_port)  # where beacons are sent
    lan_address: str = attrs.field(default="255.255.255.255", validator=_lan_address)
    lan_interval: float = attrs.field(default=5.0, validator=_positive)
