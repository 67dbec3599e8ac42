"""NewReno (RFC 6582 / RFC 9002 style): slow start, congestion avoidance, fast recovery.

This is the seed's sender state machine: 慢启动 → 拥塞避免 on growth, 快速重传/恢复 on loss,
back to avoidance once the recovery episode's packets are acknowledged.
"""

from __future__ import annotations

import math
from typing import Final

from .congestion import RateSample, register_congestion_controller

LOSS_REDUCTION: Final = 0.5
MIN_WINDOW_PACKETS: Final = 2
PACING_GAIN: Final = 1.25  # pace a little faster than cwnd/srtt so pacing never limits the window


class NewReno:
    name = "newreno"

    def __init__(self, max_datagram: int, initial_cwnd: int) -> None:
        self.mss = max_datagram
        self.cwnd = initial_cwnd
        self.ssthresh = math.inf
        self.pacing_rate = 0.0
        self._recovery_start = -math.inf
        self._in_recovery = False
        self._avoidance_acc = 0

    @property
    def state(self) -> str:
        if self._in_recovery:
            return "recovery"
        return "slow_start" if self.cwnd < self.ssthresh else "congestion_avoidance"

    def on_packet_sent(self, now: float, size: int, bytes_in_flight: int) -> None:
        pass

    def on_ack(self, now: float, acked_bytes: int, sample: RateSample, bytes_in_flight: int) -> None:
        if sample.srtt > 0:
            self.pacing_rate = PACING_GAIN * self.cwnd / sample.srtt
        if sample.newest_sent_time <= self._recovery_start:
            return  # still acknowledging packets sent before the loss: no growth
        self._in_recovery = False
        if sample.prior_in_flight + acked_bytes < self.cwnd // 2:
            return  # application-limited: the window was not the constraint, do not grow it
        if self.cwnd < self.ssthresh:
            self.cwnd += acked_bytes
        else:
            self._avoidance_acc += acked_bytes
            if self._avoidance_acc >= self.cwnd:
                self._avoidance_acc -= self.cwnd
                self.cwnd += self.mss

    def on_loss(self, now: float, lost_bytes: int, newest_lost_sent_time: float, bytes_in_flight: int) -> None:
        if newest_lost_sent_time <= self._recovery_start:
            return  # one reduction per window of data
        self._recovery_start = now
        self._in_recovery = True
        self.cwnd = max(int(self.cwnd * LOSS_REDUCTION), MIN_WINDOW_PACKETS * self.mss)
        self.ssthresh = float(self.cwnd)

    def on_rto(self, now: float) -> None:
        self.ssthresh = float(max(self.cwnd // 2, MIN_WINDOW_PACKETS * self.mss))
        self.cwnd = MIN_WINDOW_PACKETS * self.mss
        self._recovery_start = now
        self._in_recovery = False


register_congestion_controller("newreno", NewReno)
