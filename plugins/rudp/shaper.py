"""One uplink for all of a node's sessions: the upload limit, shared round robin, sans-IO.

Every session paces itself, but they all leave through the same access link. Left alone,
a dozen sessions' windows overfill the link's queue together: datagrams are dropped,
and every ACK and control message of the node waits behind ~100 ms of other sessions'
data. With an upload limit (``cfg.upload_limit_kbps``), the multiplexer hands its
connections a budget from one token bucket at that rate: a connection sends data only
within its budget and otherwise waits its turn, round robin, a quantum at a time. What
waits stays in the connection's send buffer — where the application's backpressure and
the connection's stream priorities still apply — instead of in a queue nobody controls.
ACKs and handshakes are never held (they are charged, so the long-run rate holds).

The bucket counts whole datagrams plus 28 bytes of IPv4 + UDP header: the limit is what
the link carries.
"""

from __future__ import annotations

import math
from typing import Final

from .connection import Connection

IP_UDP_HEADER_BYTES: Final = 28
QUANTUM_DATAGRAMS: Final = 4  # a waiting connection's turn: about 4 full datagrams
BURST_S: Final = 0.002  # the bucket holds 2 ms of rate (at least one quantum)


class UplinkShaper:
    """A token bucket at ``rate`` bytes/s (0 = no limit) and the connections waiting on it."""

    def __init__(self, rate: float = 0.0, *, mtu: int = 1400, now: float = 0.0) -> None:
        self.datagram = float(mtu + IP_UDP_HEADER_BYTES)
        self.quantum = QUANTUM_DATAGRAMS * self.datagram
        self.rate = 0.0
        self.burst = self.quantum
        self.tokens = 0.0
        self.time = now
        # connections that stopped for want of budget, in turn order (dict: ordered set)
        self.waiting: dict[Connection, None] = {}
        self.waits = 0  # times a connection had to wait for its turn
        self.set_rate(rate, now)

    def set_rate(self, rate: float, now: float) -> None:
        if rate < 0:
            raise ValueError(f"upload rate must be >= 0, got {rate}")
        self.refill(now)
        self.rate = float(rate)
        self.burst = max(self.quantum, self.rate * BURST_S)
        self.tokens = min(self.tokens, self.burst)

    def refill(self, now: float) -> float:
        if now > self.time:
            self.tokens = min(self.burst, self.tokens + (now - self.time) * self.rate)
            self.time = now
        return self.tokens

    def budget(self, now: float, *, its_turn: bool) -> float:
        """What a connection may send now: nothing while others wait for their turn first."""
        tokens = self.refill(now)
        if self.waiting and not its_turn:
            return 0.0
        return min(tokens, self.quantum)

    def charge(self, conn: Connection, wire_bytes: int, *, starved: bool) -> None:
        """``conn`` put ``wire_bytes`` on the wire (datagrams and their IP/UDP headers);
        ``starved``: it wanted to send more."""
        self.tokens -= wire_bytes
        if starved:
            if conn not in self.waiting:
                self.waits += 1
            self.waiting[conn] = None  # a connection already waiting keeps its place
        else:
            self.waiting.pop(conn, None)

    def next_in_turn(self, now: float) -> Connection | None:
        """The connection whose turn it is, if the bucket has tokens for it now."""
        if self.waiting and self.refill(now) > 0:
            conn = next(iter(self.waiting))
            del self.waiting[conn]
            return conn
        return None

    def deadline(self) -> float:
        """When the next waiting connection can have a full quantum (``inf``: none waits)."""
        if not self.waiting or self.rate <= 0:
            return math.inf
        return self.time + max(0.0, self.quantum - self.tokens) / self.rate
