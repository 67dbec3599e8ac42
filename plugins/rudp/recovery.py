"""Loss recovery of one connection's sender: what is in flight, what was lost, timers.

Packets keep their sequence number when retransmitted (the seed's seq/ack/ackBits), and
RTT comes from echoed timestamps, so retransmissions never confuse the RTT estimate.
Loss is detected RACK-style: a packet is lost once a packet transmitted at least three
transmissions later has been acknowledged, or one transmitted later was acknowledged and
9/8 RTT have passed. A tail-loss probe (one retransmission of the newest packet after
about two RTTs) recovers a lost last packet without waiting for the RTO; the RTO
(RFC 6298, with backoff) is the last resort and tells the congestion controller.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from typing import Final

from .congestion import CongestionController, RateSample
from .rtt import CLOCK_GRANULARITY, RttEstimator

PACKET_THRESHOLD: Final = 3
TIME_THRESHOLD: Final = 9 / 8


# A sent packet is a plain tuple, not an object: tuples of numbers and bytes are untracked
# by Python's cyclic GC, while thousands of packet objects alive for an RTT each made the
# full collections a sixth of the sender's CPU time.
#   (seq, datagram, size, sent_time, tx, in_flight, delivered, delivered_time,
#    first_sent_time, app_limited)
# tx is the transmission counter at the last (re)transmission; the delivered* fields are
# the sender's delivery-rate state when it was sent (BBR draft).
SentPacket = tuple[int, bytes, int, float, int, bool, int, float, float, bool]
P_SEQ: Final = 0
P_DATA: Final = 1
P_SIZE: Final = 2
P_SENT: Final = 3
P_TX: Final = 4
P_IN_FLIGHT: Final = 5
P_DELIVERED: Final = 6
P_DELIVERED_TIME: Final = 7
P_FIRST_SENT: Final = 8
P_APP_LIMITED: Final = 9


def _not_in_flight(p: SentPacket) -> SentPacket:
    return (p[0], p[1], p[2], p[3], p[4], False, p[6], p[7], p[8], p[9])


class LossRecovery:
    def __init__(self, cc: CongestionController, rtt: RttEstimator, first_seq: int) -> None:
        self.cc = cc
        self.rtt = rtt
        self.sent: OrderedDict[int, SentPacket] = OrderedDict()  # unacked, by last transmission
        self.lost: deque[int] = deque()  # sequence numbers waiting for retransmission
        self.snd_una = first_seq
        self.snd_nxt = first_seq
        self.bytes_in_flight = 0
        # Packets sent while the application had nothing more to send are marked, so their
        # delivery rate is not taken for the path's (Linux tcp_rate_check_app_limited).
        # The mark ends once everything in flight at that moment has been delivered: a
        # sticky flag kept every later bulk packet marked, and BBR never left startup
        # properly on sessions that began with a few small messages.
        self.app_limited = False
        self._app_limited_until = 0
        self._tx = 0
        self._rack_tx = -1
        self._loss_time = 0.0
        self._last_send_time = 0.0
        self._tlp_sent = False
        self._delivered = 0
        self._delivered_time = 0.0
        self._first_sent_time = 0.0
        self._sample = RateSample()
        # counters
        self.retransmits = 0
        self.lost_packets = 0
        self.rto_count = 0
        self.tlp_count = 0
        self.acked_bytes = 0
        self.acked_packets = 0

    # ------------------------------------------------------------------ sending

    def mark_app_limited(self) -> None:
        """The sender ran out of data with room in the window: mark until what is in
        flight now has been delivered."""
        self.app_limited = True
        self._app_limited_until = self._delivered + max(self.bytes_in_flight, 1)

    def on_sent(self, data: bytes, now: float) -> None:
        """Record a new packet with sequence number ``snd_nxt``."""
        seq = self.snd_nxt
        self.snd_nxt = seq + 1
        if not self.bytes_in_flight:
            self._first_sent_time = now
            self._delivered_time = now
        size = len(data)
        self.sent[seq] = (seq, data, size, now, self._tx, True, self._delivered,
                          self._delivered_time, self._first_sent_time, self.app_limited)
        self._tx += 1
        self.bytes_in_flight += size
        self._last_send_time = now
        self.cc.on_packet_sent(now, size, self.bytes_in_flight)

    def on_retransmitted(self, p: SentPacket, data: bytes, now: float) -> None:
        if not self.bytes_in_flight:
            self._first_sent_time = now
            self._delivered_time = now
        seq, size = p[P_SEQ], p[P_SIZE]
        if not p[P_IN_FLIGHT]:
            self.bytes_in_flight += size
        self.sent[seq] = (seq, data, size, now, self._tx, True, self._delivered,
                          self._delivered_time, self._first_sent_time, p[P_APP_LIMITED])
        self._tx += 1
        self.sent.move_to_end(seq)
        self._last_send_time = now
        self.retransmits += 1
        self.cc.on_packet_sent(now, size, self.bytes_in_flight)

    def next_lost(self) -> SentPacket | None:
        """The next packet to retransmit (skipping ones acknowledged meanwhile)."""
        lost = self.lost
        sent = self.sent
        while lost:
            p = sent.get(lost[0])
            if p is not None and not p[P_IN_FLIGHT]:
                return p
            lost.popleft()
        return None

    def probe_newest(self) -> None:
        """Tail-loss probe: queue the newest packet for one more transmission."""
        if not self.sent:
            return
        seq = next(reversed(self.sent))
        p = self.sent[seq]
        if p[P_IN_FLIGHT]:
            self.sent[seq] = _not_in_flight(p)
            self.bytes_in_flight -= p[P_SIZE]
            self.lost.appendleft(seq)

    # ------------------------------------------------------------------ acknowledgements

    def on_ack(
        self, cum: int, bits: int, sacks: list[tuple[int, int]], rtt_sample: float, now: float,
    ) -> int:
        """Apply an acknowledgement; returns bytes newly acknowledged, or -1 if it acks
        sequence numbers never sent (the packet must be dropped)."""
        snd_una = self.snd_una
        snd_nxt = self.snd_nxt
        if cum > snd_nxt or cum < snd_una - (1 << 30):
            return -1
        sent = self.sent
        pop = sent.pop
        acked: list[SentPacket] = []
        if cum > snd_una:
            for seq in range(snd_una, cum):
                p = pop(seq, None)
                if p is not None:
                    acked.append(p)
            self.snd_una = cum
        if bits and sent:
            seq = cum + 1
            while bits and seq < snd_nxt:
                if bits & 1:
                    p = pop(seq, None)
                    if p is not None:
                        acked.append(p)
                bits >>= 1
                seq += 1
        if sacks and sent:
            for lo, hi in sacks:
                lo = max(lo, cum)
                hi = min(hi, snd_nxt)
                # Walk the shorter of the range and what is outstanding, so an ACK full of
                # huge ranges costs no more than the packets actually in flight.
                seqs = range(lo, hi) if hi - lo <= len(sent) else [s for s in sent if lo <= s < hi]
                for seq in seqs:
                    p = pop(seq, None)
                    if p is not None:
                        acked.append(p)
        if not acked:
            return 0
        newest = acked[0]
        newest_tx = newest[P_TX]
        acked_bytes = 0
        in_flight = self.bytes_in_flight
        prior_in_flight = in_flight
        for p in acked:
            acked_bytes += p[P_SIZE]
            if p[P_IN_FLIGHT]:
                in_flight -= p[P_SIZE]
            if p[P_TX] > newest_tx:
                newest = p
                newest_tx = p[P_TX]
        self.bytes_in_flight = in_flight
        self.acked_bytes += acked_bytes
        self.acked_packets += len(acked)
        self._delivered += acked_bytes
        if self.app_limited and self._delivered > self._app_limited_until:
            self.app_limited = False
        self._delivered_time = now
        if newest_tx > self._rack_tx:
            self._rack_tx = newest_tx
        rtt = self.rtt
        if rtt_sample > 0:
            rtt.update(rtt_sample)
        rtt.on_progress()
        self._tlp_sent = False
        # Rate sample (BBR draft): delivered over the longer of send and ack intervals.
        sample = self._sample
        newest_sent = newest[P_SENT]
        interval = max(newest_sent - newest[P_FIRST_SENT], now - newest[P_DELIVERED_TIME])
        sample.delivered = self._delivered - newest[P_DELIVERED]
        sample.interval = interval
        # An interval shorter than the path's minimum RTT cannot be real: it comes from an
        # ack of the original transmission of a packet just retransmitted (Linux
        # tcp_rate_gen discards these too). Such a sample would inflate the bandwidth.
        valid = interval > 0 and interval >= rtt.min_rtt
        sample.delivery_rate = sample.delivered / interval if valid else 0.0
        sample.prior_delivered = newest[P_DELIVERED]
        sample.total_delivered = self._delivered
        sample.rtt = rtt_sample
        sample.min_rtt = rtt.min_rtt
        sample.srtt = rtt.srtt
        sample.newest_sent_time = newest_sent
        sample.is_app_limited = newest[P_APP_LIMITED]
        sample.prior_in_flight = prior_in_flight
        self._first_sent_time = newest_sent
        self.cc.on_ack(now, acked_bytes, sample, in_flight)
        self.detect_losses(now)
        return acked_bytes

    def detect_losses(self, now: float) -> None:
        rack_tx = self._rack_tx
        self._loss_time = 0.0
        if rack_tx < 0:
            return
        rtt = self.rtt
        reo = max(TIME_THRESHOLD * max(rtt.srtt, rtt.latest), CLOCK_GRANULARITY)
        lost_bytes = 0
        newest_lost = -math.inf
        sent = self.sent
        marked: list[SentPacket] = []
        for p in sent.values():
            tx = p[P_TX]
            if tx >= rack_tx:
                break
            if not p[P_IN_FLIGHT]:
                continue
            sent_time = p[P_SENT]
            if tx + PACKET_THRESHOLD <= rack_tx or sent_time + reo <= now:
                marked.append(p)
                lost_bytes += p[P_SIZE]
                if sent_time > newest_lost:
                    newest_lost = sent_time
            else:
                self._loss_time = sent_time + reo
                break
        for p in marked:
            seq = p[P_SEQ]
            sent[seq] = _not_in_flight(p)
            self.lost.append(seq)
        self.lost_packets += len(marked)
        self.bytes_in_flight -= lost_bytes
        if lost_bytes:
            self.cc.on_loss(now, lost_bytes, newest_lost, self.bytes_in_flight)

    # ------------------------------------------------------------------ timers

    def _oldest_in_flight(self) -> SentPacket | None:
        for p in self.sent.values():
            if p[P_IN_FLIGHT]:
                return p
        return None

    def get_timer(self) -> float:
        if not self.bytes_in_flight:
            return math.inf
        t = self._loss_time or math.inf
        oldest = self._oldest_in_flight()
        if oldest is not None:
            t = min(t, oldest[P_SENT] + self.rtt.rto)
        if not self._tlp_sent:
            t = min(t, self._last_send_time + self.rtt.pto)
        return t

    def on_timer(self, now: float) -> str | None:
        """Fire whatever is due: "loss", "rto" (all in flight declared lost), "tlp" (the
        caller retransmits the newest packet), or None."""
        if not self.bytes_in_flight:
            return None
        if self._loss_time and now >= self._loss_time:
            self.detect_losses(now)
            return "loss"
        oldest = self._oldest_in_flight()
        if oldest is not None and now >= oldest[P_SENT] + self.rtt.rto:
            sent = self.sent
            for p in [p for p in sent.values() if p[P_IN_FLIGHT]]:
                seq = p[P_SEQ]
                sent[seq] = _not_in_flight(p)
                self.lost.append(seq)
                self.lost_packets += 1
            self.bytes_in_flight = 0
            self.rto_count += 1
            self.rtt.on_timeout()
            self._tlp_sent = False
            self.cc.on_rto(now)
            return "rto"
        if not self._tlp_sent and now >= self._last_send_time + self.rtt.pto:
            self._tlp_sent = True
            self.tlp_count += 1
            return "tlp"
        return None
