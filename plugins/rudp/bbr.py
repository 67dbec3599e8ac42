"""A BBR-style controller (after BBR v1): model the path, pace at the bottleneck rate.

It estimates the bottleneck bandwidth (max delivery rate over the last ten rounds) and the
minimum RTT (over ten seconds), paces at ``gain x bandwidth`` and caps the data in flight
at about two bandwidth-delay products. Random loss does not shrink the model, which is
why it is the default: on a lossy wireless or long-haul path NewReno halves its window at
every loss and leaves the link idle, BBR keeps it busy.

States: startup (double the rate each round until the bandwidth stops growing, or until
a round loses too much, as in BBR v3), drain
(empty the queue startup built), probe_bw (cycle gains 1.25, 0.75, 1 x 6 around the
estimate so a bigger share is noticed), probe_rtt (briefly shrink to 4 packets when the
minimum RTT is 10 s old so queues drain and the true RTT is seen again).

Loss does not change the model, but like Linux's BBR (``bbr_set_cwnd``,
``bbr_set_cwnd_to_recover_or_restore``) the window answers it: a loss takes its bytes
off the window, the first round of a recovery episode sends only what is acknowledged
(packet conservation), and the window only ever moves toward its target by what each
ack delivers (after a loss it grows back like slow start, doubling per round). Unlike
Linux, the window from before the episode is not restored at its end: several sessions
that share one uplink queue (a swarm node) then jumped back together and overflowed it
again (swarm N = 100: 157 000 queue drops instead of 376 000, ratio 3.53 -> 3.41;
restoring gave less). Random loss costs little: the window loses a packet and regains
it within the same round.
"""

from __future__ import annotations

from typing import Final

from .congestion import RateSample, register_congestion_controller

STARTUP_GAIN: Final = 2.885  # 2/ln 2: doubles the delivery rate every round
DRAIN_GAIN: Final = 1 / STARTUP_GAIN
CWND_GAIN: Final = 2.0
PROBE_GAINS = (1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
BW_WINDOW_ROUNDS: Final = 10
MIN_RTT_WINDOW: Final = 10.0
PROBE_RTT_DURATION: Final = 0.2
FULL_BW_GROWTH: Final = 1.25
FULL_BW_ROUNDS: Final = 3
MIN_CWND_PACKETS: Final = 4
# A few packets of window beyond the model so tiny BDPs (loopback) still flow.
AGGREGATION_PACKETS: Final = 16
# Ack aggregation (Linux BBR's extra_acked): acks of a whole received batch arrive
# together, and a receiver process that is descheduled acks nothing for a while. The
# window must cover what arrives in such a burst beyond what the bandwidth explains, or
# the sender idles between bursts. Capped like Linux, at 100 ms of the estimated rate.
EXTRA_ACKED_WINDOW_ROUNDS: Final = 10
EXTRA_ACKED_MAX_TIME: Final = 0.1
# Startup ends on loss too (Linux BBR v3's bbr_check_loss_too_high_in_startup, same
# values): a round with at least STARTUP_LOSS_EVENTS separate losses costing more than
# LOSS_THRESH of what it carried means the doubling rate found a queue's end. Several
# losses are required so that random drops on a lossy path do not end startup early.
STARTUP_LOSS_EVENTS: Final = 6
LOSS_THRESH: Final = 0.02


class Bbr:
    name = "bbr"

    def __init__(self, max_datagram: int, initial_cwnd: int) -> None:
        self.mss = max_datagram
        self.cwnd = initial_cwnd
        self.pacing_rate = 0.0
        self._initial_cwnd = initial_cwnd
        self._state = "startup"
        self._pacing_gain = STARTUP_GAIN
        self._cwnd_gain = STARTUP_GAIN
        self._bw_samples: list[tuple[int, float]] = []  # (round, max rate in that round)
        self.btl_bw = 0.0
        self._bw_measured = False  # a sample that was not app-limited arrived
        self.min_rtt = 0.0
        self._min_rtt_stamp = 0.0
        self._round = 0
        self._next_round_delivered = 0
        self._full_bw = 0.0
        self._full_bw_rounds = 0
        self._cycle_index = 0
        self._cycle_stamp = 0.0
        self._probe_rtt_done = 0.0
        self._prior_state = "probe_bw"
        self._epoch_start = 0.0
        self._epoch_acked = 0
        self._extra_samples: list[tuple[int, int]] = []  # (round, max extra acked)
        self.extra_acked = 0
        self._full_bw_reached = False
        self.in_recovery = False
        self._recovery_start = -1.0  # send time of the newest packet before the episode
        self._conservation_round = -1  # packet conservation until this round starts
        self._round_lost = 0  # bytes declared lost in the current round
        self._round_loss_events = 0
        self._round_start_delivered = 0

    @property
    def state(self) -> str:
        return self._state

    def on_packet_sent(self, now: float, size: int, bytes_in_flight: int) -> None:
        pass

    def _update_bw(self, sample: RateSample) -> bool:
        """Feed the windowed-max filter; True when a new round started."""
        new_round = False
        if sample.prior_delivered >= self._next_round_delivered:
            self._next_round_delivered = sample.total_delivered
            self._round += 1
            new_round = True
        rate = sample.delivery_rate
        if rate > 0 and not sample.is_app_limited:
            self._bw_measured = True
        if rate > 0 and (not sample.is_app_limited or rate >= self.btl_bw):
            samples = self._bw_samples
            if samples and samples[-1][0] == self._round:
                if rate > samples[-1][1]:
                    samples[-1] = (self._round, rate)
            else:
                samples.append((self._round, rate))
            oldest = self._round - BW_WINDOW_ROUNDS
            while samples and samples[0][0] <= oldest:
                samples.pop(0)
            self.btl_bw = max(r for _, r in samples)
        return new_round

    def _update_ack_aggregation(self, now: float, acked_bytes: int) -> None:
        if self.btl_bw <= 0:
            return
        expected = self.btl_bw * (now - self._epoch_start)
        if self._epoch_acked <= expected:
            self._epoch_start = now  # acks are not ahead of the rate: start a new epoch
            self._epoch_acked = 0
            expected = 0.0
        self._epoch_acked += acked_bytes
        extra = min(int(self._epoch_acked - expected), self.cwnd)
        samples = self._extra_samples
        if samples and samples[-1][0] == self._round:
            if extra > samples[-1][1]:
                samples[-1] = (self._round, extra)
        else:
            samples.append((self._round, extra))
        oldest = self._round - EXTRA_ACKED_WINDOW_ROUNDS
        while samples and samples[0][0] <= oldest:
            samples.pop(0)
        self.extra_acked = min(max(x for _, x in samples), int(self.btl_bw * EXTRA_ACKED_MAX_TIME))

    def on_ack(self, now: float, acked_bytes: int, sample: RateSample, bytes_in_flight: int) -> None:
        new_round = self._update_bw(sample)
        if self.in_recovery and sample.newest_sent_time > self._recovery_start:
            self.in_recovery = False  # a packet sent after the losses arrived: repaired
        self._update_ack_aggregation(now, acked_bytes)
        if sample.rtt > 0 and (
            self.min_rtt == 0 or sample.rtt <= self.min_rtt or now - self._min_rtt_stamp > MIN_RTT_WINDOW
        ):
            if self.min_rtt and sample.rtt > self.min_rtt and self._state != "probe_rtt":
                self._enter_probe_rtt(now)  # the old minimum expired: drain queues, re-measure
            self.min_rtt = sample.rtt
            self._min_rtt_stamp = now
        state = self._state
        if state == "startup":
            if new_round and self._startup_loss_too_high(sample):
                self._end_startup()
            # a round the application left idle says nothing about the path's bandwidth
            elif new_round and self.btl_bw > 0 and not sample.is_app_limited:
                if self.btl_bw >= self._full_bw * FULL_BW_GROWTH:
                    self._full_bw = self.btl_bw
                    self._full_bw_rounds = 0
                else:
                    self._full_bw_rounds += 1
                    if self._full_bw_rounds >= FULL_BW_ROUNDS:
                        self._end_startup()
        elif state == "drain":
            if bytes_in_flight <= self._bdp():
                self._enter_probe_bw(now)
        elif state == "probe_bw":
            if self.min_rtt > 0 and now - self._cycle_stamp > self.min_rtt:
                self._cycle_index = (self._cycle_index + 1) % len(PROBE_GAINS)
                self._cycle_stamp = now
                self._pacing_gain = PROBE_GAINS[self._cycle_index]
        elif state == "probe_rtt" and now >= self._probe_rtt_done:
            self._enter_probe_bw(now)
        self._set_outputs(acked_bytes, bytes_in_flight)

    def _startup_loss_too_high(self, sample: RateSample) -> bool:
        """At a round's start: did the round just ended lose too much? (resets the count)"""
        lost, events = self._round_lost, self._round_loss_events
        delivered = sample.total_delivered - self._round_start_delivered
        self._round_lost = self._round_loss_events = 0
        self._round_start_delivered = sample.total_delivered
        return events >= STARTUP_LOSS_EVENTS and lost > LOSS_THRESH * (lost + delivered)

    def _end_startup(self) -> None:
        self._full_bw_reached = True
        self._state = "drain"
        self._pacing_gain = DRAIN_GAIN
        self._cwnd_gain = CWND_GAIN

    def _enter_probe_bw(self, now: float) -> None:
        self._state = "probe_bw"
        self._cwnd_gain = CWND_GAIN
        self._cycle_index = 2  # start at gain 1: no probing right after draining
        self._pacing_gain = PROBE_GAINS[self._cycle_index]
        self._cycle_stamp = now

    def _enter_probe_rtt(self, now: float) -> None:
        if self._state == "startup":
            return
        self._state = "probe_rtt"
        self._probe_rtt_done = now + max(PROBE_RTT_DURATION, self.min_rtt)

    def _bdp(self) -> float:
        return self.btl_bw * self.min_rtt

    def _set_outputs(self, acked_bytes: int = 0, bytes_in_flight: int = 0) -> None:
        if self.btl_bw <= 0 or self.min_rtt <= 0:
            return  # no model yet: keep the initial window, unpaced
        floor = MIN_CWND_PACKETS * self.mss
        if self._state == "probe_rtt":
            self.cwnd = floor
        else:
            target = int(self._cwnd_gain * self._bdp()) + self.extra_acked + AGGREGATION_PACKETS * self.mss
            if self._state == "startup":
                target = max(target, self._initial_cwnd)
            # Linux's rule: the window moves toward the target by what each ack delivers
            # (it never jumps up: after a loss the repair grows like slow start)
            if self._full_bw_reached:
                cwnd = min(self.cwnd + acked_bytes, target)
            else:
                cwnd = self.cwnd + acked_bytes if self.cwnd < target else self.cwnd
            if self.in_recovery and self._round < self._conservation_round:
                cwnd = max(cwnd, bytes_in_flight + acked_bytes)  # packet conservation
            self.cwnd = max(cwnd, floor)
        rate = self._pacing_gain * self.btl_bw
        if not self._bw_measured and self.min_rtt > 0:
            # Only app-limited samples so far (small messages): they say how fast the
            # application talked, not how fast the path is. Pace at least like the initial
            # window per round trip (Linux starts there) — one small request measured at
            # ~1 KB/s paced the next message seconds behind.
            rate = max(rate, STARTUP_GAIN * self._initial_cwnd / self.min_rtt)
        if not self._full_bw_reached:
            # Linux's rule for all of startup: the rate only grows until the bottleneck is
            # found. One low sample that was not app-limited otherwise paced a fresh session
            # at a few KB/s until more data taught it better.
            rate = max(rate, self.pacing_rate)
        self.pacing_rate = rate

    def on_loss(self, now: float, lost_bytes: int, newest_lost_sent_time: float, bytes_in_flight: int) -> None:
        # The model ignores loss (random loss must not shrink the rate); the window only
        # stops the repair from adding to whatever queue overflowed.
        floor = MIN_CWND_PACKETS * self.mss
        if self._state == "startup":  # what _startup_loss_too_high judges
            self._round_lost += lost_bytes
            self._round_loss_events += 1
        if not self.in_recovery:
            self.in_recovery = True
            self._recovery_start = now
            self._conservation_round = self._round + 1
            self.cwnd = max(bytes_in_flight, floor)
        else:
            self.cwnd = max(self.cwnd - lost_bytes, floor)

    def on_rto(self, now: float) -> None:
        # A whole RTO without acks. Like Linux BBR (which keeps its model through
        # TCP_CA_Loss), only the window collapses: everything in flight was declared lost
        # and is repaired from the minimum window, growing by what is acknowledged. The
        # model stays: on a swarm node's shared uplink most RTOs come from a queue that
        # briefly held the acks, and a restart from startup (the old rule) then paced at
        # 2.9x the initial window per RTT into that very queue. A model that did go stale
        # (path change) ages out of the max filter within ten rounds.
        self.cwnd = MIN_CWND_PACKETS * self.mss
        self.in_recovery = True
        self._recovery_start = now
        self._conservation_round = self._round + 1
        self._full_bw = 0.0
        self._full_bw_rounds = 0


register_congestion_controller("bbr", Bbr)
