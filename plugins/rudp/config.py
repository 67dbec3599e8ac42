"""``[rudp]`` config section."""

from __future__ import annotations

import attrs

from p2pkit._exceptions import ConfigError

from .packet import MIN_DATAGRAM

MAX_MESSAGE_SIZE = 64 * 1024 * 1024  # hard protocol limit (64 MiB)


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise ConfigError(f"rudp.{attribute.name} must be positive, got {value!r}")


@attrs.define
class RudpConfig:
    """Reliable UDP transport settings (times in milliseconds, sizes in bytes)."""

    heartbeat_ms: int = attrs.field(default=1000, validator=_positive)
    # One ACK per this many in-order data packets (or after 5 ms), as TCP and QUIC do: on a
    # slow uplink the ACKs of a node's downloads otherwise take a third of it. 1 = every one.
    ack_every: int = attrs.field(default=2, validator=_positive)
    # A PING due within this long of one being sent leaves with it (timer slack): a node's
    # quiet sessions then share wake-ups instead of each waking it on its own schedule.
    # Default: a quarter of heartbeat_ms.
    heartbeat_slack_ms: int = attrs.field(
        default=attrs.Factory(lambda self: self.heartbeat_ms // 4, takes_self=True),
        validator=attrs.validators.ge(0),
    )
    idle_timeout_ms: int = attrs.field(default=10000, validator=_positive)
    connect_timeout_ms: int = attrs.field(default=10000, validator=_positive)
    congestion: str = "default"  # "default" (bbr), "bbr", "newreno", or a plugin's name
    # UDP payload size of our datagrams. 1400 fits every common path (IPv6, PPPoE, most
    # tunnels) so IP never fragments; the smaller of both peers' values is used.
    mtu: int = attrs.field(default=1400, validator=_positive)
    receive_window: int = attrs.field(default=8 * 1024 * 1024, validator=_positive)
    send_buffer: int = attrs.field(default=4 * 1024 * 1024, validator=_positive)
    max_message_size: int = attrs.field(default=MAX_MESSAGE_SIZE, validator=_positive)
    max_channels: int = attrs.field(default=8, validator=_positive)
    initial_rto_ms: int = attrs.field(default=1000, validator=_positive)
    min_rto_ms: int = attrs.field(default=200, validator=_positive)
    max_rto_ms: int = attrs.field(default=60000, validator=_positive)
    # The node finds its upload limit by itself, holding its uplink's queue under this
    # many milliseconds (plugins/rudp/uplink.py); 0 = off. A configured limit turns it off.
    uplink_target_ms: int = attrs.field(default=15, validator=attrs.validators.ge(0))
    initial_cwnd_packets: int = attrs.field(default=32, validator=_positive)
    pacing: bool = True
    accept_backlog: int = attrs.field(default=128, validator=_positive)
    max_pending_handshakes: int = attrs.field(default=256, validator=_positive)
    max_handshakes_per_ip: int = attrs.field(default=16, validator=_positive)
    reset_rate_per_s: int = attrs.field(default=50, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if not MIN_DATAGRAM <= self.mtu <= 65000:
            raise ConfigError(f"rudp.mtu must be in {MIN_DATAGRAM}..65000, got {self.mtu}")
        if self.max_message_size > MAX_MESSAGE_SIZE:
            raise ConfigError(f"rudp.max_message_size cannot exceed {MAX_MESSAGE_SIZE} (64 MiB)")
        if self.max_channels > 256:
            raise ConfigError("rudp.max_channels cannot exceed 256")
        if self.heartbeat_slack_ms >= self.heartbeat_ms:
            raise ConfigError("rudp.heartbeat_slack_ms must be below rudp.heartbeat_ms")
        if self.min_rto_ms > self.max_rto_ms:
            raise ConfigError("rudp.min_rto_ms must not exceed rudp.max_rto_ms")
