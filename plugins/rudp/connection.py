"""One rudp connection, sans-IO: bytes and ``now`` in, datagrams and a timer out.

Driven by :class:`p2pkit.plugins.rudp.mux.Multiplexer`, which owns the connection-id
table; the trio driver and the simulator only ever talk to the multiplexer.

States (seed 004 §4.6.1)::

    SYN_SENT ──SYN_ACK──▶ ESTABLISHED ──close(), all acked: FIN──▶ FIN_WAIT ──FIN_ACK──▶ CLOSED
       │ SYN (simultaneous open)  ▲            │ FIN received: FIN_ACK
       ▼                          │            ▼
    SYN_RECEIVED ──ACK/DATA───────┘         TIME_WAIT ──linger──▶ CLOSED
    (any state) ── RESET / abort() / idle timeout / protocol error ──▶ CLOSED
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Callable
from typing import Final

from p2pkit._exceptions import LocalProtocolError, RemoteProtocolError, SessionClosed
from p2pkit.endpoint import Address

from .config import RudpConfig
from .congestion import CongestionFactory
from .packet import (
    ACK,
    DATA,
    FIN,
    FIN_ACK,
    H_ACK,
    H_BITS,
    H_ECHO,
    H_MAXDATA,
    H_SEQ,
    H_TS,
    H_TYPE,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    MAX_SACK_RANGES,
    PING,
    RESET,
    SEQ_HALF,
    SEQ_MASK,
    STREAM_FRAME,
    STREAM_HEADER,
    STREAM_HEADER_SIZE,
    SYN,
    SYN_ACK,
    VERSION,
    Header,
    decode_frames,
    decode_handshake,
    encode_handshake,
    encode_header,
    encode_sack_frame,
    unwrap,
)
from .ranges import ReceivedRanges
from .recovery import P_DATA, P_SEQ, P_SIZE, LossRecovery
from .rtt import MAX_ACK_DELAY, RttEstimator
from .stats import RateMeter
from .streams import RecvStreams, SendStreams

MAX_REORDER: Final = 1 << 20
FAST_FRAME_MIN: Final = HEADER_SIZE + STREAM_HEADER_SIZE
DATA_FRAME_HEADER: Final = struct.Struct(HEADER.format + STREAM_HEADER.format.lstrip(">"))
ACK_RANGES: Final = 32  # SACK ranges per ACK packet (8 bytes each)  # sequence numbers further ahead than this are refused
HANDSHAKE_RETRIES: Final = 12
FIN_RETRIES: Final = 6
MICROS: Final = 1_000_000
FWD_BASE_PERIOD_S: Final = 30.0
PACING_MIN_WAIT: Final = 20e-6  # below this a timer would not advance time at all


class ConnectionState(enum.Enum):
    SYN_SENT = "SynSent"  # we sent SYN, waiting for SYN_ACK
    SYN_RECEIVED = "SynReceived"  # we answered a SYN, waiting for the handshake's last ACK
    ESTABLISHED = "Established"  # data flows both ways
    FIN_WAIT = "FinWait"  # we sent FIN after everything was acked, waiting for FIN_ACK
    TIME_WAIT = "TimeWait"  # the peer closed; we linger to re-answer a retransmitted FIN
    CLOSED = "Closed"  # gone; the reason is in ``close_reason``


SYN_SENT: Final = ConnectionState.SYN_SENT
SYN_RECEIVED: Final = ConnectionState.SYN_RECEIVED
ESTABLISHED: Final = ConnectionState.ESTABLISHED
FIN_WAIT: Final = ConnectionState.FIN_WAIT
TIME_WAIT: Final = ConnectionState.TIME_WAIT
CLOSED: Final = ConnectionState.CLOSED


class Connection:
    """Reliable, ordered, multi-channel messages with one peer."""

    def __init__(
        self,
        config: RudpConfig,
        *,
        local_cid: int,
        remote: Address,
        isn: int,
        cc_factory: CongestionFactory,
        now: float,
        initiator: bool,
        on_change: Callable[[Connection], None] | None = None,
        on_activity: Callable[[Connection], None] | None = None,
        hold_large_messages: bool = False,
    ) -> None:
        self.config = config
        self.local_cid = local_cid
        self.peer_cid = 0
        self.remote = remote
        self.initiator = initiator
        self.state = SYN_SENT if initiator else SYN_RECEIVED
        self.close_reason: str | None = None
        self.created = now
        self._on_change = on_change
        # An application call left work for datagrams_to_send (the multiplexer only asks
        # connections that had events, so it must hear of these).
        self._on_activity = on_activity
        self.max_datagram = config.mtu
        self.rtt = RttEstimator(
            config.initial_rto_ms / 1000, config.min_rto_ms / 1000, config.max_rto_ms / 1000
        )
        self.cc = cc_factory(config.mtu, config.initial_cwnd_packets * config.mtu)
        self.recovery = LossRecovery(self.cc, self.rtt, isn)
        self.isn = isn
        self.rcv: ReceivedRanges | None = None
        self.send_streams = SendStreams()
        self.recv_streams = RecvStreams(config.receive_window, config.max_message_size,
                                        config.max_channels, held=hold_large_messages)
        self.peer_max_data = 0
        self.send_buffer = config.send_buffer
        # Keep-alive is the initiator's job (as QUIC clients and WireGuard do it): its PING
        # each heartbeat and the responder's ACK prove both ends alive, 2 datagrams a
        # second. The responder pings only after two heartbeats without sending anything,
        # i.e. once the initiator's PINGs stopped arriving. With equal timers both ends'
        # PINGs would cross in flight and a quiet session would cost 4 datagrams a second.
        hb = config.heartbeat_ms / 1000
        self._heartbeat = hb if initiator else 2 * hb
        self._idle_timeout = config.idle_timeout_ms / 1000
        self._connect_timeout = config.connect_timeout_ms / 1000
        self._pacing = config.pacing
        self._tokens = 0.0
        self._pace_time = now
        self._pace_wait = 0.0
        # The node's uplink shaper (shaper.py), through the multiplexer: bytes of data this
        # connection may send in the current flush (inf: no node limit), and whether it
        # stopped short of what it wanted for want of them.
        self.node_budget = math.inf
        self.node_starved = False
        self._ack_pending = False  # an ACK goes out with the next flush
        self._acks_owed = 0  # in-order data packets received and not yet acknowledged
        # in-order data packets per ACK: config.ack_every, doubled by the multiplexer while
        # the node's uplink is its bottleneck (mux.py, _adapt_acks)
        self.ack_every = config.ack_every
        self._ack_deadline = math.inf  # when owed acks must go even if fewer than ack_every
        self._echo = 0
        self._echo_at = now  # when _echo arrived: the hold time is added to what we echo
        # How long our latest acknowledged datagram queued on its way (s; -1: unknown): the
        # peer's clock minus our echoed one, above its minimum (see _sample_forward_delay),
        # and the least such delay since the multiplexer's uplink control last took it.
        self.fwd_delay = -1.0
        self.fwd_delay_least = math.inf
        self._fwd_ref = -1  # the first raw sample: later ones are kept relative to it
        self._fwd_min = SEQ_HALF  # the least sample of this period and of the last one
        self._fwd_min_before = SEQ_HALF
        self._fwd_period_end = -math.inf
        self._control: list[bytes] = []  # handshake/close/ping packets to send next
        self._hs_deadline = now
        self._hs_attempts = 0
        self._close_requested = False
        self._fin_deadline = math.inf
        self._fin_attempts = 0
        self._linger_until = math.inf
        self._reset_pending = False
        self.last_recv_time = now
        self.last_send_time = now
        # The multiplexer's bookkeeping (mux.py): the timer it last pushed on its heap for
        # this connection, NaN while none. A field, not a dict keyed by connection: read
        # at every timer event of every session.
        self.timer_armed_at = math.nan
        # counters
        self.bytes_sent = 0
        self.ack_bytes_sent = 0  # of bytes_sent, in ACK packets (never acknowledged themselves)
        self.acks_sent = 0
        self.bytes_received = 0
        self.packets_sent = 0
        self.packets_received = 0
        self.duplicates = 0
        self.invalid = 0
        self.rates = RateMeter(now)
        if initiator:
            self._queue_syn(now)

    def __repr__(self) -> str:
        return f"<Connection {self.local_cid:08x}->{self.peer_cid:08x} {self.remote} {self.state.value}>"

    # ------------------------------------------------------------------ app side

    @property
    def is_established(self) -> bool:
        return self.state is ESTABLISHED

    @property
    def can_send(self) -> bool:
        """Whether ``send`` would accept a message now (the send buffer has room)."""
        return self.send_streams.queued_bytes < self.send_buffer

    def send(self, message: bytes, channel: int = 1) -> memoryview:
        """Queue a message (any size up to the limit); data goes out via datagrams_to_send.
        Returns the token :meth:`withdraw` takes."""
        if self.state not in (ESTABLISHED, SYN_SENT, SYN_RECEIVED) or self._close_requested:
            raise SessionClosed(f"cannot send: connection is {self.close_reason or self.state.value}")
        if not 0 <= channel < self.config.max_channels:
            raise LocalProtocolError(f"channel {channel} is outside 0..{self.config.max_channels - 1}")
        if len(message) > self.config.max_message_size:
            raise LocalProtocolError(
                f"message of {len(message)} bytes exceeds the {self.config.max_message_size}-byte limit"
            )
        token = self.send_streams.push(channel, message)
        if self._on_activity is not None:
            self._on_activity(self)
        return token

    def withdraw(self, channel: int, token: memoryview) -> bool:
        """Take back a queued message none of whose bytes has left (see SendStreams)."""
        return self.send_streams.withdraw(channel, token)

    def hold_large_messages(self, held: bool) -> None:
        """See RecvStreams.hold_large_messages; released, the larger window is advertised
        with the next packet, which is due at once."""
        rs = self.recv_streams
        rs.hold_large_messages(held)
        if not held and rs.update_max_data() - rs.advertised >= rs.window // 4:
            self._ack_pending = True  # a window update, so a sender held back goes on
            if self._on_activity is not None:
                self._on_activity(self)

    def next_message(self) -> tuple[int, bytes] | None:
        """Take the next received message (lowest channel first), or None."""
        item = self.recv_streams.pop()
        if item is not None:
            rs = self.recv_streams
            if rs.update_max_data() - rs.advertised >= rs.window // 4:
                self._ack_pending = True  # window update so a blocked sender resumes
                if self._on_activity is not None:
                    self._on_activity(self)
        return item

    @property
    def has_messages(self) -> bool:
        return self.recv_streams.inbox_count > 0

    def close(self) -> None:
        """Graceful close: FIN once everything queued has been sent and acknowledged."""
        if self.state in (SYN_SENT, SYN_RECEIVED):
            self.abort("closed before established")
            return
        self._close_requested = True
        if self._on_activity is not None:
            self._on_activity(self)

    def abort(self, reason: str = "aborted") -> None:
        """Close now and tell the peer with a RESET."""
        if self.state is CLOSED:
            return
        if self.peer_cid:
            self._reset_pending = True
        self._set_closed(reason)

    def abort_silently(self, reason: str) -> None:
        """Close without telling the peer (it already forgot us, or is gone)."""
        self._set_closed(reason)

    @property
    def wants_output(self) -> bool:
        return bool(
            self._control or self._ack_pending or self._reset_pending or self.recovery.lost
            or self.send_streams.queued_bytes or self._close_requested
        )

    # ------------------------------------------------------------------ state changes

    def _set_state(self, state: ConnectionState) -> None:
        if state is not self.state:
            self.state = state
            self._touch()

    def _set_closed(self, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
        self.send_streams.clear()
        self._set_state(CLOSED)

    def _touch(self) -> None:
        if self._on_change is not None:
            self._on_change(self)

    def protocol_error(self, exc: RemoteProtocolError) -> None:
        """The peer broke the protocol inside this connection: reset it."""
        self.invalid += 1
        self.abort(f"protocol error: {exc}")

    # ------------------------------------------------------------------ handshake

    def _queue_syn(self, now: float) -> None:
        self._control.append(
            encode_header(SYN, 0, 0, self.isn, 0, 0, self.recv_streams.max_data, self._ts(now), 0)
            + encode_handshake(self.local_cid, self.config.mtu)
        )
        self._hs_attempts += 1
        self._hs_deadline = now + self._handshake_interval()

    def _queue_syn_ack(self, now: float) -> None:
        assert self.rcv is not None
        self._control.append(
            encode_header(
                SYN_ACK, 0, self.peer_cid, self.isn, self.rcv.next, 0, self.recv_streams.max_data,
                self._ts(now), self._echo,
            )
            + encode_handshake(self.local_cid, self.config.mtu)
        )
        self._hs_attempts += 1
        self._hs_deadline = now + self._handshake_interval()

    def _handshake_interval(self) -> float:
        # Doubling from the initial RTO but capped at 2 s: a peer behind a lossy link or a
        # NAT being punched gets several more tries within the connect timeout.
        return min(self.rtt.rto * (1 << min(self._hs_attempts - 1, 6)), max(2.0, self.rtt.rto))

    def accept_syn(self, h: Header, data: bytes, now: float) -> None:
        """Take the peer's SYN (as responder, or in a simultaneous open)."""
        peer_cid, peer_mtu = decode_handshake(data)
        self.peer_cid = peer_cid
        self.max_datagram = min(self.config.mtu, peer_mtu)
        self.rcv = ReceivedRanges(h[H_SEQ])
        self.peer_max_data = h[H_MAXDATA]
        self._echo = h[H_TS]
        self._echo_at = now
        self.last_recv_time = now
        if self.state is SYN_SENT:
            self._hs_attempts = 0
        self._set_state(SYN_RECEIVED)
        self._queue_syn_ack(now)

    def _on_syn_ack(self, h: Header, data: bytes, now: float) -> None:
        if h[H_ACK] != self.isn & SEQ_MASK:
            self.invalid += 1  # does not answer our SYN: blind spoofing or garbage
            return
        peer_cid, peer_mtu = decode_handshake(data)
        if self.state is ESTABLISHED or self.state is FIN_WAIT:
            if peer_cid == self.peer_cid:
                self._ack_pending = True  # our handshake ACK was lost: repeat it
            return
        if self.state is SYN_RECEIVED and peer_cid != self.peer_cid:
            self.invalid += 1
            return
        if self.state not in (SYN_SENT, SYN_RECEIVED):
            return
        self.peer_cid = peer_cid
        self.max_datagram = min(self.config.mtu, peer_mtu)
        if self.rcv is None:
            self.rcv = ReceivedRanges(h[H_SEQ])
        self.peer_max_data = max(self.peer_max_data, h[H_MAXDATA])
        self._echo = h[H_TS]
        self._echo_at = now
        self._control.clear()
        self._ack_pending = True
        self._establish(h, now)

    def _establish(self, h: Header, now: float) -> None:
        if self.rtt.srtt == 0 and h[H_ECHO]:
            self.rtt.update(self._rtt_from_echo(h[H_ECHO], now))
        self._set_state(ESTABLISHED)

    # ------------------------------------------------------------------ receiving

    def _ts(self, now: float) -> int:
        return int(now * MICROS) & SEQ_MASK

    def _rtt_from_echo(self, echo: int, now: float) -> float:
        rtt = ((int(now * MICROS) - echo) & SEQ_MASK) / MICROS
        return rtt if rtt < 60.0 else 0.0

    def _sample_forward_delay(self, ts: int, echo: int, now: float) -> None:
        """The peer's clock when it acknowledged, minus our timestamp it echoes (with its
        hold time added): the clocks' offset plus the one-way delay of our datagram. The
        offset is constant, so what exceeds the least sample is time spent queued — on our
        uplink, or on the peer's downlink. The least is taken over the last one to two
        FWD_BASE_PERIOD_S, so that clock drift does not accumulate (LEDBAT's base delay)."""
        raw = (ts - echo) & SEQ_MASK
        if self._fwd_ref < 0:
            self._fwd_ref = raw
        rel = ((raw - self._fwd_ref + SEQ_HALF) & SEQ_MASK) - SEQ_HALF
        if now >= self._fwd_period_end:
            self._fwd_min_before = self._fwd_min
            self._fwd_min = rel
            self._fwd_period_end = now + FWD_BASE_PERIOD_S
        elif rel < self._fwd_min:
            self._fwd_min = rel
        base = min(self._fwd_min, self._fwd_min_before)
        delay = (rel - base) / MICROS
        self.fwd_delay = delay
        if delay < self.fwd_delay_least:
            self.fwd_delay_least = delay

    def on_packet(self, h: Header, data: bytes, now: float) -> None:
        """Handle one datagram addressed to this connection (header already decoded)."""
        self.packets_received += 1
        self.bytes_received += len(data)
        self.last_recv_time = now
        ptype = h[H_TYPE]
        state = self.state
        if ptype == DATA:
            # The per-packet hot path of a bulk receiver: kept flat on purpose.
            if state is not ESTABLISHED and not self._handshake_done_by(h, now):
                return
            rcv = self.rcv
            assert rcv is not None
            nxt = rcv.next
            seq = nxt + ((h[H_SEQ] - nxt + SEQ_HALF) & SEQ_MASK) - SEQ_HALF
            if seq - nxt >= MAX_REORDER:
                self.invalid += 1
                return
            # Ack fields that say nothing new (the usual case for a one-way transfer) are
            # skipped without a call.
            if (
                h[H_ACK] != self.recovery.snd_una & SEQ_MASK or h[H_BITS]
                or h[H_MAXDATA] > self.peer_max_data
            ) and not self._on_ack_fields(h, None, now):
                return
            self._echo = h[H_TS]
            self._echo_at = now
            if seq == nxt and not rcv.ranges:
                rcv.next = seq + 1
                new = True
                self._acks_owed += 1
                if self._acks_owed >= self.ack_every:
                    self._ack_pending = True
                elif self._acks_owed == 1:
                    self._ack_deadline = now + MAX_ACK_DELAY
            else:
                # out of order, filling a gap or a duplicate: acknowledged at once
                new = rcv.add(seq)
                self._ack_pending = True
            if new:
                size = len(data)
                if size > FAST_FRAME_MIN and data[HEADER_SIZE] == STREAM_FRAME:
                    _, channel, offset, length = STREAM_HEADER.unpack_from(data, HEADER_SIZE)
                    if length and FAST_FRAME_MIN + length == size:  # exactly one stream frame
                        if self.recv_streams.on_frame(channel, offset, data[FAST_FRAME_MIN:]):
                            self._touch()
                        return
                streams, sacks = decode_frames(data)
                if sacks or not streams:
                    raise RemoteProtocolError("a DATA packet carries stream frames, and only those")
                on_frame = self.recv_streams.on_frame
                delivered = False
                for channel, offset, chunk in streams:
                    if on_frame(channel, offset, chunk):
                        delivered = True
                if delivered:
                    self._touch()
            else:
                self.duplicates += 1
        elif ptype == ACK:
            if state is not ESTABLISHED and not self._handshake_done_by(h, now):
                return
            if len(data) > HEADER_SIZE:
                streams, sacks = decode_frames(data)
                if streams:
                    raise RemoteProtocolError("stream frame in an ACK packet")
            else:
                sacks = []
            self._on_ack_fields(h, sacks, now)
        elif ptype == PING:
            if state is not ESTABLISHED and not self._handshake_done_by(h, now):
                return
            self._on_ack_fields(h, None, now)
            self._ack_pending = True
            self._echo = h[H_TS]
            self._echo_at = now
        elif ptype == SYN_ACK:
            self._on_syn_ack(h, data, now)
        elif ptype == FIN:
            # FIN is sent once everything is acknowledged, so its seq is exactly our next.
            if self.rcv is not None and unwrap(h[H_SEQ], self.rcv.next) == self.rcv.next:
                self._on_fin(now)
            else:
                self.invalid += 1
        elif ptype == FIN_ACK:
            if state is FIN_WAIT:
                self._set_closed("closed")
        elif ptype == RESET:
            # the sender's next sequence number: never below what we have, never far above
            rcv = self.rcv
            if rcv is None or 0 <= unwrap(h[H_SEQ], rcv.next) - rcv.next < MAX_REORDER:
                self.abort_silently("reset by peer")
            else:
                self.invalid += 1
        elif ptype == SYN:
            # a retransmitted SYN for this connection: our SYN_ACK was lost
            if state is SYN_RECEIVED:
                self._queue_syn_ack(now)
            else:
                self.duplicates += 1

    def _handshake_done_by(self, h: Header, now: float) -> bool:
        """A packet from the initiator completes our SYN_RECEIVED (its ack must echo our isn)."""
        if self.state is SYN_RECEIVED and h[H_ACK] == self.isn & SEQ_MASK:
            self._control.clear()
            self._establish(h, now)
            return True
        # in FIN_WAIT the peer may still be sending until our FIN arrives
        return self.state is FIN_WAIT

    def _on_ack_fields(self, h: Header, sacks: list[tuple[int, int]] | None, now: float) -> bool:
        recovery = self.recovery
        max_data = h[H_MAXDATA]
        if max_data > self.peer_max_data:
            self.peer_max_data = max_data
        ack_wire = h[H_ACK]
        bits = h[H_BITS]
        if (ack_wire == recovery.snd_una & SEQ_MASK and not bits and not sacks) or not recovery.sent:
            if ack_wire != recovery.snd_una & SEQ_MASK:
                cum = unwrap(ack_wire, recovery.snd_una)
                if cum > recovery.snd_nxt or cum < recovery.snd_una - SEQ_HALF // 2:
                    self.invalid += 1  # acks data never sent
                    return False
                recovery.snd_una = max(cum, recovery.snd_una)
            return True
        cum = unwrap(ack_wire, recovery.snd_una)
        full_sacks: list[tuple[int, int]] = []
        if sacks:
            for lo, hi in sacks[:MAX_SACK_RANGES]:
                lo_full = unwrap(lo, cum)
                full_sacks.append((lo_full, lo_full + ((hi - lo) & SEQ_MASK)))
        echo = h[H_ECHO]
        rtt = 0.0
        if echo:
            rtt = self._rtt_from_echo(echo, now)
            self._sample_forward_delay(h[H_TS], echo, now)
        if recovery.on_ack(cum, bits, full_sacks, rtt, now) < 0:
            self.invalid += 1
            return False
        if self._close_requested and not recovery.sent:
            self._touch()
        return True

    def _on_fin(self, now: float) -> None:
        state = self.state
        if state in (ESTABLISHED, FIN_WAIT, TIME_WAIT):
            self._control.append(self._small_packet(FIN_ACK, now))
            if state is not TIME_WAIT:
                if self.close_reason is None:
                    self.close_reason = "closed by peer"
                self.send_streams.clear()
                self._linger_until = now + min(3 * self.rtt.rto, 5.0)
                self._set_state(TIME_WAIT)

    # ------------------------------------------------------------------ sending

    def _small_packet(self, ptype: int, now: float) -> bytes:
        rcv = self.rcv
        ack = rcv.next if rcv is not None else 0
        return encode_header(
            ptype, 0, self.peer_cid, self.recovery.snd_nxt, ack, 0, self.recv_streams.max_data,
            self._ts(now), self._echo_value(now),
        )

    def _echo_value(self, now: float) -> int:
        """The peer's last timestamp plus how long we held it, so the RTT it computes from
        our echo leaves out our ACK delay (what QUIC's ack_delay field does)."""
        if not self._echo:
            return 0
        return (self._echo + int((now - self._echo_at) * MICROS)) & SEQ_MASK

    def _acked_now(self) -> None:
        """A packet carrying our ack fields is leaving: nothing is owed any more."""
        self._ack_pending = False
        self._acks_owed = 0
        self._ack_deadline = math.inf

    def datagrams_to_send(self, now: float, out: list[tuple[bytes, Address]]) -> None:
        """Append everything this connection wants to send now to ``out``."""
        anything_but_an_ack = (
            self._reset_pending or self._control or self.recovery.lost
            or self.send_streams.queued_bytes or self._close_requested
        )
        if not (anything_but_an_ack or self._ack_pending):
            # the common case once an ACK has been taken in: nothing at all to say
            self._pace_wait = 0.0
            return
        addr = self.remote
        n_before = len(out)
        state = self.state
        if not anything_but_an_ack and state is ESTABLISHED and not self.rcv.ranges:  # type: ignore[union-attr]
            self._send_bare_ack(now, out)
        else:
            if self._reset_pending:
                self._reset_pending = False
                out.append((self._small_packet(RESET, now), addr))
            if self._control:
                for packet in self._control:
                    out.append((packet, addr))
                self._control.clear()
            if state is ESTABLISHED or state is FIN_WAIT:
                if self._ack_pending or self.recovery.lost or self.send_streams.queued_bytes:
                    self._send_data(now, out)
                else:
                    self._pace_wait = 0.0  # nothing waits for the pacer
                if self._close_requested and state is ESTABLISHED:
                    self._maybe_send_fin(now, out)
        if len(out) > n_before:
            self.last_send_time = now
            self.packets_sent += len(out) - n_before
            for i in range(n_before, len(out)):
                packet = out[i][0]
                self.bytes_sent += len(packet)
                if packet[2] == ACK:
                    self.ack_bytes_sent += len(packet)
                    self.acks_sent += 1
        rates = self.rates
        if now >= rates.next_sample:  # checked here: this runs once per flush
            rates.sample(now, self.bytes_sent, self.bytes_received)

    def _send_bare_ack(self, now: float, out: list[tuple[bytes, Address]]) -> None:
        """Only an ACK to send, nothing lost or queued, no gaps to report: the answer to a
        heartbeat PING. The same packet as ``_send_data`` would produce, without its pacing
        and window set-up."""
        recovery = self.recovery
        if recovery.bytes_in_flight < self.cc.cwnd:
            recovery.mark_app_limited()
        self._acked_now()
        self._pace_wait = 0.0
        max_data = self.recv_streams.update_max_data()
        self.recv_streams.advertised = max_data
        rcv = self.rcv
        assert rcv is not None  # narrowed: a native field read, not a generic attribute lookup
        packet = HEADER.pack(
            MAGIC, VERSION, ACK, 0, self.peer_cid, recovery.snd_nxt & SEQ_MASK,
            rcv.next & SEQ_MASK, 0, max_data, int(now * MICROS) & SEQ_MASK,
            self._echo_value(now),
        )
        out.append((packet, self.remote))

    def _send_data(self, now: float, out: list[tuple[bytes, Address]]) -> None:
        recovery = self.recovery
        streams = self.send_streams
        cc = self.cc
        addr = self.remote
        rcv = self.rcv
        assert rcv is not None
        ack = rcv.next & SEQ_MASK
        bits = rcv.ack_bits()
        max_data = self.recv_streams.update_max_data()
        ts = int(now * MICROS) & SEQ_MASK
        echo = self._echo_value(now)
        cid = self.peer_cid
        mtu = self.max_datagram
        room = mtu - HEADER_SIZE
        rate = cc.pacing_rate if self._pacing else 0.0
        if rate > 0:
            burst = max(16 * mtu, rate * 0.002)
            # Wake up for a quantum of about 1 ms of data (2..48 datagrams), not for every
            # datagram: like Linux's TSO autosizing, it keeps timer wake-ups under ~1000/s.
            quantum = min(max(rate * 0.001, 2 * mtu), 48 * mtu)
            tokens = self._tokens + (now - self._pace_time) * rate
            tokens = min(tokens, burst)
        else:
            tokens = math.inf
            quantum = 0.0
        self._pace_time = now
        self._pace_wait = 0.0
        pack = HEADER.pack
        pack_data = DATA_FRAME_HEADER.pack
        bulk_chunks = streams.bulk_chunks
        full = room - STREAM_HEADER_SIZE  # stream bytes of a full-size datagram
        sent_any = False
        budget = self.node_budget
        while True:
            if budget <= 0 and (recovery.lost or streams.queued_bytes):
                self.node_starved = True  # the multiplexer gives it a turn later
                break
            p = recovery.next_lost() if recovery.lost else None
            if p is not None:
                size = p[P_SIZE]
                if recovery.bytes_in_flight + size > cc.cwnd:
                    break
                if tokens < size:
                    self._pace_wait = now + max((quantum - tokens) / rate, PACING_MIN_WAIT)
                    break
                tokens -= size
                budget -= size
                recovery.lost.popleft()
                buf = bytearray(p[P_DATA])
                HEADER.pack_into(buf, 0, MAGIC, VERSION, DATA, 0, cid, p[P_SEQ] & SEQ_MASK, ack, bits, max_data, ts, echo)
                datagram = bytes(buf)
                recovery.on_retransmitted(p, datagram, now)
                out.append((datagram, addr))
                sent_any = True
                continue
            if not streams.queued_bytes:
                if recovery.bytes_in_flight < cc.cwnd:
                    recovery.mark_app_limited()
                break
            credit = self.peer_max_data - streams.sent_bytes
            if credit <= 0:
                break
            if recovery.bytes_in_flight + mtu > cc.cwnd:
                break
            if tokens < mtu:
                # The queue's last bytes make a short datagram that needs only its own size
                # in tokens: on a session paced slowly (its samples were small messages) a
                # 60-byte request or an 800-byte reply otherwise waited for two full
                # datagrams' worth (the wake-up quantum), 100+ ms at 20 KB/s.
                queued = streams.queued_bytes
                need = min(mtu, HEADER_SIZE + STREAM_HEADER_SIZE + queued)
                if tokens < need:
                    want = need if need < mtu else quantum
                    self._pace_wait = now + max((want - tokens) / rate, PACING_MIN_WAIT)
                    break
            if credit >= full:
                # A run of full-size datagrams, as many as the window, the pacer and the
                # credit allow — the same limits as the checks above, evaluated once for
                # the run instead of once per datagram.
                count = min(int(cc.cwnd - recovery.bytes_in_flight) // mtu, credit // full)
                if rate > 0:
                    count = min(count, int(tokens // mtu))
                if budget < math.inf:  # a node limit: at least one (budget > 0 here)
                    count = min(count, max(1, int(budget // mtu)))
                chunks = bulk_chunks(full, count)
                if chunks:
                    channel = streams.chunk_channel
                    offset = streams.chunk_offset
                    on_sent = recovery.on_sent
                    for chunk in chunks:
                        # header and frame header in one pack, the payload in one copy
                        datagram = pack_data(
                            MAGIC, VERSION, DATA, 0, cid, recovery.snd_nxt & SEQ_MASK, ack, bits,
                            max_data, ts, echo, STREAM_FRAME, channel, offset, full,
                        ) + chunk
                        offset += full
                        on_sent(datagram, now)
                        out.append((datagram, addr))
                    tokens -= len(chunks) * mtu  # each datagram is exactly mtu bytes
                    budget -= len(chunks) * mtu
                    sent_any = True
                    continue
            parts: list[bytes | memoryview] = [b""]
            streams.fill(parts, room, credit)
            parts[0] = pack(MAGIC, VERSION, DATA, 0, cid, recovery.snd_nxt & SEQ_MASK, ack, bits, max_data, ts, echo)
            datagram = b"".join(parts)
            tokens -= len(datagram)
            budget -= len(datagram)
            recovery.on_sent(datagram, now)
            out.append((datagram, addr))
            sent_any = True
        if rate > 0:
            self._tokens = tokens
        self.recv_streams.advertised = max_data
        if self._ack_pending:
            sacks = rcv.ack_ranges(ACK_RANGES) if rcv.ranges else []
            if sacks or not sent_any:
                payload = encode_sack_frame(sacks) if sacks else b""
                out.append((pack(MAGIC, VERSION, ACK, 0, cid, recovery.snd_nxt & SEQ_MASK, ack, bits, max_data, ts, echo) + payload, addr))
            self._acked_now()
        elif sent_any and self._acks_owed:
            self._acked_now()  # the data packets carried the acks

    def _maybe_send_fin(self, now: float, out: list[tuple[bytes, Address]]) -> None:
        if self.send_streams.queued_bytes or self.recovery.sent:
            return
        out.append((self._small_packet(FIN, now), self.remote))
        self._fin_attempts = 1
        self._fin_deadline = now + self.rtt.rto
        self._set_state(FIN_WAIT)

    # ------------------------------------------------------------------ timers

    def get_timer(self) -> float:
        """The next time ``handle_timer`` must be called (``inf`` = never)."""
        state = self.state
        if state is CLOSED:
            return math.inf
        if state is TIME_WAIT:
            return self._linger_until
        idle = self.last_recv_time + self._idle_timeout
        if state is SYN_SENT or state is SYN_RECEIVED:
            return min(self._hs_deadline, self.created + self._connect_timeout, idle)
        t = idle
        if self.recovery.bytes_in_flight:  # else the recovery timer is inf
            loss = self.recovery.get_timer()
            if loss < t:
                t = loss
        if self._acks_owed and self._ack_deadline < t:
            t = self._ack_deadline
        if state is FIN_WAIT:
            return min(t, self._fin_deadline)
        heartbeat = self.last_send_time + self._heartbeat
        if heartbeat < t:
            t = heartbeat
        if self._pace_wait and self._pace_wait < t:
            t = self._pace_wait
        if (
            self.send_streams.queued_bytes
            and self.peer_max_data <= self.send_streams.sent_bytes
            and not self.recovery.bytes_in_flight
        ):
            t = min(t, self.last_send_time + self.rtt.rto)  # window probe
        return t

    @property
    def heartbeat_deadline(self) -> float:
        """When this connection's next keep-alive PING is due (``inf`` when none is)."""
        return self.last_send_time + self._heartbeat if self.state is ESTABLISHED else math.inf

    def send_heartbeat(self, now: float) -> None:
        """Queue the keep-alive PING now, ahead of its deadline (the multiplexer's slack)."""
        if self.state is ESTABLISHED:
            self._control.append(self._small_packet(PING, now))

    def handle_timer(self, now: float) -> None:
        state = self.state
        if state is CLOSED:
            return
        if state is TIME_WAIT:
            if now >= self._linger_until:
                self._set_state(CLOSED)
            return
        if now >= self.last_recv_time + self._idle_timeout:
            self._set_closed("idle timeout")
            return
        if state is SYN_SENT or state is SYN_RECEIVED:
            if now >= self.created + self._connect_timeout or self._hs_attempts >= HANDSHAKE_RETRIES:
                self._set_closed("handshake timed out")
            elif now >= self._hs_deadline:
                if state is SYN_SENT:
                    self._queue_syn(now)
                else:
                    self._queue_syn_ack(now)
            return
        if self._acks_owed and now >= self._ack_deadline:
            self._ack_pending = True
        if state is FIN_WAIT and now >= self._fin_deadline:
            if self._fin_attempts >= FIN_RETRIES:
                self._set_closed("close timed out")
                return
            self._fin_attempts += 1
            self._fin_deadline = now + self.rtt.rto * (1 << self._fin_attempts)
            self._control.append(self._small_packet(FIN, now))
        action = self.recovery.on_timer(now)
        if action == "tlp":
            self.recovery.probe_newest()
        if state is ESTABLISHED and (now >= self.last_send_time + self._heartbeat or (
            self.send_streams.queued_bytes
            and self.peer_max_data <= self.send_streams.sent_bytes
            and not self.recovery.bytes_in_flight
            and now >= self.last_send_time + self.rtt.rto
        )):
            self._control.append(self._small_packet(PING, now))

    # ------------------------------------------------------------------ stats

    def stats(self, now: float) -> dict[str, float | int | str]:
        send_rate, recv_rate = self.rates.rates(now, self.bytes_sent, self.bytes_received)
        recovery = self.recovery
        sent_packets = max(1, recovery.snd_nxt - self.isn)
        return {
            "state": self.state.value,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "packets_sent": self.packets_sent,
            "packets_received": self.packets_received,
            "send_rate_Bps": send_rate,
            "recv_rate_Bps": recv_rate,
            "srtt_ms": self.rtt.srtt * 1000,
            "rttvar_ms": self.rtt.rttvar * 1000,
            "min_rtt_ms": self.rtt.min_rtt * 1000,
            "fwd_queue_ms": self.fwd_delay * 1000 if self.fwd_delay >= 0 else -1.0,
            "rto_ms": self.rtt.rto * 1000,
            "cwnd": self.cc.cwnd,
            "pacing_rate_Bps": self.cc.pacing_rate,
            "congestion": self.cc.name,
            "congestion_state": self.cc.state,
            "bytes_in_flight": recovery.bytes_in_flight,
            "loss_rate": recovery.lost_packets / sent_packets,
            "lost_packets": recovery.lost_packets,
            "retransmits": recovery.retransmits,
            "rto_count": recovery.rto_count,
            "tlp_count": recovery.tlp_count,
            "duplicates": self.duplicates,
            "invalid_packets": self.invalid,
            "messages_sent": self.send_streams.messages,
            "messages_received": self.recv_streams.messages,
            "send_queue_bytes": self.send_streams.queued_bytes,
            "recv_window": self.recv_streams.window,
            "max_datagram": self.max_datagram,
        }
