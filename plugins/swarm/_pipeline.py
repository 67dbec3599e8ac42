"""How many requests to keep in flight to one peer: sized to the path (sans-IO).

To keep a path busy, the bytes requested but not yet received must cover the
bandwidth-delay product: rate × RTT. The rate we measure can never exceed what the
pipeline lets through (depth × block / RTT), so the depth is set to twice the measured
product plus a margin: a pipeline that is the bottleneck doubles each round, like slow
start, until the path itself is; then it stays at about twice what the path needs. It is
bounded below (a fresh peer gets a few requests) and above (one peer cannot hog us).
"""

from __future__ import annotations

import math
from collections import deque

MIN_DEPTH = 2
MAX_DEPTH = 64
HEADROOM = 2.0


def pipeline_depth(
    rate: float, rtt: float, block_size: int, *, lo: int = MIN_DEPTH, hi: int = MAX_DEPTH,
) -> int:
    """Requests to keep outstanding for a path delivering ``rate`` bytes/s with ``rtt`` s."""
    if block_size <= 0:
        raise ValueError("block_size must be > 0")
    if not math.isfinite(rate) or not math.isfinite(rtt) or rate <= 0 or rtt <= 0:
        return lo
    need = math.ceil(HEADROOM * rate * rtt / block_size) + lo
    return max(lo, min(hi, need))


def steal_pays(ahead: int, old_rate: float, my_delay: float, block_size: int) -> bool:
    """Whether a request is worth moving to another peer: the peer it was asked of serves
    its requests in order, so it sends the block after the ``ahead`` blocks asked of it
    before, at ``old_rate`` bytes/s (0: it has sent nothing lately); the other peer would
    deliver it ``my_delay`` seconds from now. Moving a block the old peer is about to send
    anyway (the head of its queue, already in its transport or on its wire) only gets it
    sent twice, and the moved copy usually arrives second."""
    if old_rate <= 0:
        return True
    return (ahead + 1) * block_size / old_rate > my_delay


class RateMeter:
    """Bytes per second over the last ``window`` seconds.

    Samples are kept individually, so the estimate is right from the first round trip
    (a meter with 1 s buckets would understate a fresh peer and keep its pipeline short).
    """

    MIN_SPAN = 0.05  # seconds: below this a rate is mostly noise

    def __init__(self, window: float = 3.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()
        self._sum = 0
        self.total = 0
        self._start: float | None = None

    def add(self, n: int, now: float) -> None:
        if self._start is None:
            self._start = now
        self._samples.append((now, n))
        self._sum += n
        self.total += n
        self._trim(now)

    def withdraw(self, n: int, now: float) -> None:
        """Take back ``n`` bytes counted by :meth:`add` that were never sent after all
        (an upload withdrawn from the transport on a Cancel)."""
        self.add(-n, now)

    def _trim(self, now: float) -> None:
        cutoff = now - self.window
        while self._samples and self._samples[0][0] < cutoff:
            self._sum -= self._samples.popleft()[1]

    def rate(self, now: float) -> float:
        if self._start is None:
            return 0.0
        self._trim(now)
        span = min(self.window, max(now - self._start, self.MIN_SPAN))
        # a withdrawal outlives its sample by the few ms between them: never below zero
        return max(0.0, self._sum / span)


__all__ = ["MAX_DEPTH", "MIN_DEPTH", "RateMeter", "pipeline_depth", "steal_pays"]
