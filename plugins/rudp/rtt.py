"""Round-trip time estimation and the retransmission timeout (RFC 6298)."""

from __future__ import annotations

from typing import Final

CLOCK_GRANULARITY: Final = 0.001  # G in RFC 6298: timers are not more precise than 1 ms
MAX_ACK_DELAY: Final = 0.025  # the longest a receiver holds an ACK (QUIC's default; connection.py)


class RttEstimator:
    """srtt / rttvar / RTO with exponential backoff and a floor and ceiling."""

    def __init__(self, initial_rto: float, min_rto: float, max_rto: float) -> None:
        self.srtt = 0.0
        self.rttvar = 0.0
        self.latest = 0.0
        self.min_rtt = 0.0
        self.min_rto = min_rto
        self.max_rto = max_rto
        self._initial_rto = initial_rto
        self._base_rto = initial_rto
        self.backoff = 1

    def update(self, sample: float) -> None:
        if sample <= 0:
            return
        self.latest = sample
        if self.min_rtt == 0 or sample < self.min_rtt:
            self.min_rtt = sample
        if self.srtt == 0:
            self.srtt = sample
            self.rttvar = sample / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - sample)
            self.srtt = 0.875 * self.srtt + 0.125 * sample
        # Linux's rule (tcp_set_rto), not RFC 6298's max(rto, min_rto): the floor bounds
        # the variance term, so the timeout always leaves min_rto beyond the smoothed RTT.
        rto = self.srtt + max(CLOCK_GRANULARITY, 4 * self.rttvar, self.min_rto)
        self._base_rto = min(rto, self.max_rto)

    @property
    def rto(self) -> float:
        """Current retransmission timeout including backoff."""
        return min(self._base_rto * self.backoff, self.max_rto)

    @property
    def pto(self) -> float:
        """Probe timeout for a tail-loss probe: about two RTTs, far sooner than the RTO."""
        if self.srtt == 0:
            return self._initial_rto
        return min(self.srtt + max(4 * self.rttvar, CLOCK_GRANULARITY) + MAX_ACK_DELAY, self.rto)

    def on_timeout(self) -> None:
        self.backoff = min(self.backoff * 2, 64)

    def on_progress(self) -> None:
        self.backoff = 1
