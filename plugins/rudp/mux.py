"""All rudp connections of one node over its one datagram endpoint, sans-IO.

The multiplexer routes datagrams to connections by connection id (so many sessions, and
later hole punching, share one socket), runs the handshake's first step with bounded
state, answers packets for unknown connections with a rate-limited RESET, and collects
what every connection wants to send. It never touches a socket or a clock: the trio
driver (and the simulator, and the unit tests) call ``receive_batch(batch, now)``,
``handle_timer(now)``, ``datagrams_to_send(now)`` and ``get_timer()``.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
from collections import Counter, deque
from typing import Final

from p2pkit._exceptions import RemoteProtocolError
from p2pkit.endpoint import Address, Datagram

from .config import RudpConfig
from .congestion import CongestionFactory, congestion_factory
from .connection import CLOSED, ESTABLISHED, SYN_RECEIVED, SYN_SENT, Connection
from .packet import (
    FLAG_ENCRYPTED,
    FLAG_UNKNOWN_CONNECTION,
    H_CID,
    H_FLAGS,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    MAX_TYPE,
    RESET,
    SYN,
    VERSION,
    Header,
    MalformedPacket,
    decode_handshake,
    encode_header,
)
from .shaper import IP_UDP_HEADER_BYTES, UplinkShaper
from .uplink import UplinkControl

log = logging.getLogger("p2pkit.rudp")

RESET_MIN_INTERVAL: Final = 0.1  # per address
# How often the ACK cadence is matched to the uplink's state (see _adapt_acks).
ACK_CADENCE_S: Final = 0.02
# Final: compiled, a C global — `heapq.heappush` was a module attribute lookup per call
_heappush: Final = heapq.heappush
_heappop: Final = heapq.heappop


class MuxStats:
    """Counters of things that never reached a connection."""

    __slots__ = ("malformed", "resets_sent", "resets_suppressed", "syn_dropped", "unknown_connection")

    def __init__(self) -> None:
        self.malformed = 0
        self.unknown_connection = 0
        self.syn_dropped = 0
        self.resets_sent = 0
        self.resets_suppressed = 0


def _carried(conn: Connection) -> int:
    """What the uplink is known to have carried for ``conn``: the datagrams the peer
    acknowledged and our ACK packets (never acknowledged themselves), with IP/UDP headers."""
    recovery = conn.recovery
    return (recovery.acked_bytes + conn.ack_bytes_sent
            + (recovery.acked_packets + conn.acks_sent) * IP_UDP_HEADER_BYTES)


class Multiplexer:
    def __init__(
        self,
        config: RudpConfig | None = None,
        *,
        now: float = 0.0,
        cc_factory: CongestionFactory | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or RudpConfig()
        self._cc_factory = cc_factory or congestion_factory(self.config.congestion)
        # Drawn from the global generator so a simulation that seeds it is reproducible
        # (ids and initial sequence numbers are not secrets: see the docs).
        self._rng = rng or random.Random(random.getrandbits(64))
        self.connections: dict[int, Connection] = {}
        self._by_peer: dict[tuple[Address, int], Connection] = {}
        self.accept_queue: deque[Connection] = deque()
        self.touched: dict[Connection, None] = {}  # app-visible changes since take_touched()
        self._pending_by_ip: Counter[str] = Counter()
        self._pending: dict[Connection, str] = {}  # responder handshakes in progress -> ip
        self._out: list[Datagram] = []
        # Only connections that had something happen are asked for output, and timers sit
        # in a heap: a node with many mostly idle sessions (the simulator's meshes) must
        # not pay for every session on every datagram. A connection's timer_armed_at is
        # the timer last pushed for it; heap entries that no longer match are stale and
        # skipped.
        self._dirty: dict[Connection, None] = {}
        self._timers: list[tuple[float, int, Connection]] = []
        self._timer_seq = 0  # ties between equal deadlines: first armed, first fired
        self._heartbeat_slack = self.config.heartbeat_slack_ms / 1000
        self._reset_tokens = float(self.config.reset_rate_per_s)
        self._reset_time = now
        self._reset_last: dict[Address, float] = {}
        self.stats = MuxStats()
        self._closed_total: Counter[str] = Counter()
        # the node's upload limit, shared by all connections (0 = none: see shaper.py)
        self.shaper = UplinkShaper(0.0, mtu=self.config.mtu, now=now)
        self._configured_limit = 0.0
        # the limit found by watching the uplink's queue (None: off; see uplink.py)
        target_ms = self.config.uplink_target_ms
        self.uplink = (UplinkControl(target_ms / 1000, datagram=self.shaper.datagram)
                       if target_ms > 0 else None)
        self.wire_bytes_sent = 0  # every datagram sent, with its IP/UDP header
        # ... at the last uplink tick. A node that has sent less than a full datagram
        # since then has no queue to measure: no tick (a mostly idle node — the
        # simulator's 1000 heartbeating nodes — ticked at nearly every datagram it sent,
        # going over all its sessions each time); its samples wait for the next one.
        self._tick_wire_bytes = 0
        self._delivered_closed = 0  # what the uplink carried for connections now closed
        self.ack_every = self.config.ack_every  # what the connections use now
        # New connections get a small window and no room for large messages until their
        # session is released (RudpSession.hold_large_messages): set for a node, whose
        # handshake releases each one once the peer has proved who it is. From the
        # first packet: the window is advertised in the SYN, before the app sees it.
        self.hold_large_messages = False
        self._ack_cadence_at = now
        self._waits_seen = 0

    def set_upload_limit(self, rate_Bps: float, now: float) -> None:
        """Limit everything the node sends to ``rate_Bps`` bytes/s on the wire (0 = no
        limit); connections waiting for their turn run at once under the new rate. While
        it is set, the node does not look for a limit itself (``uplink_target_ms``)."""
        if rate_Bps < 0:
            raise ValueError(f"upload rate must be >= 0, got {rate_Bps}")
        self._configured_limit = float(rate_Bps)
        self._apply_limit(now, release=True)

    def _apply_limit(self, now: float, *, release: bool) -> None:
        # a configured limit is the user's word on their line: the node does not search
        rate = self._configured_limit
        if not rate and self.uplink is not None:
            rate = self.uplink.rate
        shaper = self.shaper
        if rate == shaper.rate:
            return
        shaper.set_rate(rate, now)
        if release or rate <= 0:
            for conn in shaper.waiting:
                self._dirty[conn] = None
            shaper.waiting.clear()
        if rate <= 0:
            for conn in self.connections.values():
                conn.node_budget = math.inf

    def _adapt_acks(self, now: float) -> None:
        """While the node's uplink is its bottleneck (a session had to wait for the node's
        upload limit since the last look), our ACKs take uplink time from our uploads:
        every connection acknowledges half as often (2 x ``ack_every`` packets). Otherwise
        ``ack_every``: a transfer whose receiver has uplink to spare keeps the denser ACK
        clock (one seeder -> one leecher was 6 % slower with every fourth packet acked)."""
        self._ack_cadence_at = now + ACK_CADENCE_S
        waits = self.shaper.waits
        every = self.config.ack_every * (2 if waits != self._waits_seen else 1)
        self._waits_seen = waits
        if every != self.ack_every:
            self.ack_every = every
            for conn in self.connections.values():
                conn.ack_every = every

    def _uplink_tick(self, now: float, uplink: UplinkControl) -> None:
        """The uplink's queue is the least delay any session's samples showed since the
        last tick (a peer's congested downlink shows in its own session only); what it
        delivered, the data the peers acknowledged and our ACKs, each datagram with its
        IP/UDP header."""
        self._tick_wire_bytes = self.wire_bytes_sent
        least = math.inf
        delivered = self._delivered_closed
        for conn in self.connections.values():
            delivered += _carried(conn)
            if conn.fwd_delay_least < least:
                least = conn.fwd_delay_least
            conn.fwd_delay_least = math.inf
        before = uplink.rate
        uplink.update(now, least if least < math.inf else -1.0, delivered, self.wire_bytes_sent,
                      bool(self.shaper.waiting))
        if uplink.rate != before:
            self._apply_limit(now, release=False)

    # ------------------------------------------------------------------ app side

    def connect(self, addr: Address, now: float) -> Connection:
        """Start a handshake with ``addr``; the SYN leaves with the next datagrams_to_send."""
        conn = self._new_connection(addr, now, initiator=True)
        return conn

    def accept(self) -> Connection | None:
        """The next established incoming connection, if any."""
        return self.accept_queue.popleft() if self.accept_queue else None

    def take_touched(self) -> list[Connection]:
        """Connections with app-visible changes (messages, state) since the last call."""
        if not self.touched:
            return []
        touched = list(self.touched)
        self.touched.clear()
        return touched

    def _new_connection(self, addr: Address, now: float, *, initiator: bool) -> Connection:
        rng = self._rng
        cid = rng.getrandbits(32)
        while cid == 0 or cid in self.connections:
            cid = rng.getrandbits(32)
        conn = Connection(
            self.config, local_cid=cid, remote=addr, isn=rng.getrandbits(32),
            cc_factory=self._cc_factory, now=now, initiator=initiator, on_change=self._on_change,
            on_activity=self._mark_dirty, hold_large_messages=self.hold_large_messages,
        )
        conn.ack_every = self.ack_every
        self.connections[cid] = conn
        self._dirty[conn] = None
        return conn

    def _mark_dirty(self, conn: Connection) -> None:
        self._dirty[conn] = None

    def _on_change(self, conn: Connection) -> None:
        self.touched[conn] = None
        self._dirty[conn] = None
        if conn in self._pending and conn.state is not SYN_RECEIVED:
            ip = self._pending.pop(conn)
            self._pending_by_ip[ip] -= 1
            if self._pending_by_ip[ip] <= 0:
                del self._pending_by_ip[ip]
            if conn.state is ESTABLISHED and not conn.initiator:
                self.accept_queue.append(conn)

    # ------------------------------------------------------------------ receiving

    def receive_batch(self, batch: list[Datagram], now: float) -> None:
        """Handle every datagram of a batch (the demux's handler signature)."""
        unpack = HEADER.unpack_from
        conns = self.connections
        stats = self.stats
        dirty = self._dirty
        for data, addr in batch:
            if len(data) < HEADER_SIZE:
                stats.malformed += 1
                continue
            # typed: compiled, the header is unpacked into native ints once, here
            h: Header = unpack(data)
            if (
                h[0] != MAGIC or h[1] != VERSION or not 0 < h[2] <= MAX_TYPE
                or h[3] & FLAG_ENCRYPTED
            ):
                stats.malformed += 1
                continue
            if h[H_FLAGS] & FLAG_UNKNOWN_CONNECTION:
                self._on_unknown_reset(h, addr)
                continue
            conn = conns.get(h[H_CID])
            if conn is not None and conn.remote == addr:
                dirty[conn] = None
                try:
                    conn.on_packet(h, data, now)
                except RemoteProtocolError as exc:
                    if isinstance(exc, MalformedPacket):
                        stats.malformed += 1
                    log.debug("rudp %r: %s", conn, exc)
                    conn.protocol_error(exc)
                continue
            ptype = h[2]
            if ptype == SYN:
                try:
                    self._on_syn(h, data, addr, now)
                except MalformedPacket:
                    stats.malformed += 1
            elif ptype != RESET:
                stats.unknown_connection += 1
                self._reply_unknown(h[H_CID], addr, now)

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        self.receive_batch([(data, addr)], now)

    def _on_syn(self, h: Header, data: bytes, addr: Address, now: float) -> None:
        peer_cid, _ = decode_handshake(data)
        existing = self._by_peer.get((addr, peer_cid))
        if existing is not None and existing.state is not CLOSED:
            self._dirty[existing] = None
            existing.on_packet(h, data, now)  # duplicate SYN
            return
        for conn in self.connections.values():
            if conn.remote == addr and conn.state is SYN_SENT and not conn.peer_cid:
                self._dirty[conn] = None
                conn.accept_syn(h, data, now)  # simultaneous open
                self._by_peer[(addr, peer_cid)] = conn
                return
        ip = addr[0]
        cfg = self.config
        if (
            len(self._pending) >= cfg.max_pending_handshakes
            or self._pending_by_ip[ip] >= cfg.max_handshakes_per_ip
            or len(self.accept_queue) + len(self._pending) >= cfg.accept_backlog
        ):
            self.stats.syn_dropped += 1
            return
        conn = self._new_connection(addr, now, initiator=False)
        self._pending[conn] = ip
        self._pending_by_ip[ip] += 1
        self._by_peer[(addr, peer_cid)] = conn
        conn.accept_syn(h, data, now)

    def _on_unknown_reset(self, h: Header, addr: Address) -> None:
        """The peer says it does not know the connection we address as ``conn_id``."""
        if h[2] != RESET:
            self.stats.malformed += 1
            return
        cid = h[H_CID]
        for conn in list(self.connections.values()):  # rare and rate-limited at the source
            if conn.peer_cid == cid and conn.remote == addr and conn.state is not CLOSED:
                conn.abort_silently("peer does not know this connection (restarted?)")

    def _reply_unknown(self, cid: int, addr: Address, now: float) -> None:
        # Rate-limited, so we cannot be used to reflect traffic at a third party.
        rate = self.config.reset_rate_per_s
        self._reset_tokens = min(rate, self._reset_tokens + (now - self._reset_time) * rate)
        self._reset_time = now
        last = self._reset_last.get(addr)
        if self._reset_tokens < 1 or (last is not None and now - last < RESET_MIN_INTERVAL):
            self.stats.resets_suppressed += 1
            return
        self._reset_tokens -= 1
        if len(self._reset_last) > 4096:
            self._reset_last.clear()
        self._reset_last[addr] = now
        self.stats.resets_sent += 1
        self._out.append(
            (encode_header(RESET, FLAG_UNKNOWN_CONNECTION, cid, 0, 0, 0, 0, int(now * 1e6) & 0xFFFFFFFF, 0), addr)
        )

    # ------------------------------------------------------------------ sending and timers

    def datagrams_to_send(self, now: float) -> list[Datagram]:
        """Everything the connections that had events want to send now, in one list."""
        out = self._out
        self._out = []
        uplink = self.uplink
        if (uplink is not None and now >= uplink.next_tick and not self._configured_limit
                and self.wire_bytes_sent - self._tick_wire_bytes >= uplink.datagram):
            self._uplink_tick(now, uplink)
        if now >= self._ack_cadence_at:
            self._adapt_acks(now)
        if self._dirty:
            dirty = list(self._dirty)
            self._dirty.clear()
            for conn in dirty:
                self._collect(conn, now, out)
        shaper = self.shaper
        if shaper.waiting:
            turn = shaper.next_in_turn(now)
            while turn is not None:
                self._dirty.pop(turn, None)
                self._collect(turn, now, out, its_turn=True)
                turn = shaper.next_in_turn(now)
        return out

    def datagrams_for(self, conn: Connection, now: float) -> list[Datagram]:
        """What one connection (plus the multiplexer itself) wants to send now: the cheap
        flush after an application call that touched only that connection."""
        out = self._out
        self._out = []
        self._dirty.pop(conn, None)
        self._collect(conn, now, out)
        return out

    def _collect(self, conn: Connection, now: float, out: list[Datagram], its_turn: bool = False) -> None:
        shaper = self.shaper
        limited = shaper.rate > 0
        if limited:
            conn.node_budget = shaper.budget(now, its_turn=its_turn)
            conn.node_starved = False
        bytes_before, packets_before = conn.bytes_sent, conn.packets_sent
        conn.datagrams_to_send(now, out)
        wire = conn.bytes_sent - bytes_before + (conn.packets_sent - packets_before) * IP_UDP_HEADER_BYTES
        self.wire_bytes_sent += wire
        if limited:
            shaper.charge(conn, wire, starved=conn.node_starved and conn.state is not CLOSED)
        if conn.state is CLOSED:
            self._forget(conn)
            return
        t = conn.get_timer()
        if conn.timer_armed_at != t:
            conn.timer_armed_at = t
            if t < math.inf:
                self._timer_seq += 1
                _heappush(self._timers, (t, self._timer_seq, conn))

    def get_timer(self) -> float:
        """Earliest time any connection needs ``handle_timer`` (``inf`` if none)."""
        if self._dirty:  # not yet re-armed: they may want to run at once
            return -math.inf
        turn = self.shaper.deadline()
        timers = self._timers
        while timers:
            t, _, conn = timers[0]
            if conn.timer_armed_at == t:
                return t if t < turn else turn
            _heappop(timers)  # stale: the connection re-armed or is gone
        return turn

    def handle_timer(self, now: float) -> None:
        timers = self._timers
        heartbeat = False
        while timers and timers[0][0] <= now:
            t, _, conn = _heappop(timers)
            if conn.timer_armed_at != t:
                continue
            conn.timer_armed_at = math.nan
            self._dirty[conn] = None  # re-armed by the flush that follows
            if conn.get_timer() <= now:
                heartbeat = heartbeat or conn.heartbeat_deadline <= now
                conn.handle_timer(now)
        # Only a heartbeat's own wake-up takes the others along: a bulk session's pacing
        # timer fires hundreds of times a second and would send every quiet session's PING
        # early each time (a PING every heartbeat minus slack instead of every heartbeat).
        if heartbeat and self._heartbeat_slack:
            self._send_heartbeats_due_soon(now + self._heartbeat_slack)

    def _send_heartbeats_due_soon(self, horizon: float) -> None:
        """This wake-up also sends every PING due by ``horizon`` (timer slack): after a few
        rounds a node's quiet sessions ping together, one wake-up per group, instead of
        one per session. A heartbeat only ever moves earlier, never later."""
        timers = self._timers
        now = horizon - self._heartbeat_slack
        other: list[tuple[float, int, Connection]] = []
        while timers and timers[0][0] <= horizon:
            entry = _heappop(timers)
            t, _, conn = entry
            if conn.timer_armed_at != t:
                continue
            if conn.heartbeat_deadline != t:  # due for something else: keep its time
                other.append(entry)
                continue
            conn.timer_armed_at = math.nan
            self._dirty[conn] = None
            conn.send_heartbeat(now)
        for entry in other:
            _heappush(timers, entry)

    def _forget(self, conn: Connection) -> None:
        self._delivered_closed += _carried(conn)
        self.connections.pop(conn.local_cid, None)
        self.shaper.waiting.pop(conn, None)
        conn.timer_armed_at = math.nan
        self._dirty.pop(conn, None)
        if conn.peer_cid:
            key = (conn.remote, conn.peer_cid)
            if self._by_peer.get(key) is conn:
                del self._by_peer[key]
        if conn in self._pending:
            ip = self._pending.pop(conn)
            self._pending_by_ip[ip] -= 1
            if self._pending_by_ip[ip] <= 0:
                del self._pending_by_ip[ip]
        if conn in self.accept_queue:  # (remove() of an absent one formats its repr to raise)
            self.accept_queue.remove(conn)
        # by category only ("protocol error", "idle timeout"...): details vary without bound
        self._closed_total[(conn.close_reason or "closed").split(":", 1)[0]] += 1

    # ------------------------------------------------------------------ stats

    def totals(self, now: float) -> dict[str, float]:
        """Aggregates over live connections plus the multiplexer's own counters."""
        keys = ("bytes_sent", "bytes_received", "packets_sent", "packets_received",
                "send_rate_Bps", "recv_rate_Bps", "retransmits", "lost_packets", "bytes_in_flight")
        total: dict[str, float] = dict.fromkeys(keys, 0.0)
        for conn in self.connections.values():
            st = conn.stats(now)
            for key in keys:
                total[key] += float(st[key])
        total["connections"] = float(sum(1 for c in self.connections.values() if c.state is ESTABLISHED))
        total["handshakes_pending"] = float(len(self._pending))
        total["malformed"] = float(self.stats.malformed)
        total["unknown_connection"] = float(self.stats.unknown_connection)
        total["syn_dropped"] = float(self.stats.syn_dropped)
        total["resets_sent"] = float(self.stats.resets_sent)
        total["upload_limit_waits"] = float(self.shaper.waits)
        total["upload_limit_Bps"] = self.shaper.rate
        if self.uplink is not None:
            total["uplink_found_Bps"] = self.uplink.rate
            total["uplink_cuts"] = float(self.uplink.cuts)
            total["uplink_queue_ms"] = self.uplink.queue * 1000 if self.uplink.queue >= 0 else -1.0
        return total

