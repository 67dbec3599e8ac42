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


class RateMeter:
    """Bytes per second over a sliding window of ``window`` seconds (1 s buckets)."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._buckets: dict[int, int] = {}
        self.total = 0
        self._start: float | None = None

    def add(self, n: int, now: float) -> None:
        if self._start is None:
            self._start = now
        key = int(now)
        self._buckets[key] = self._buckets.get(key, 0) + n
        self.total += n
        if len(self._buckets) > self.window + 2:
            cutoff = int(now - self.window)
            for k in [k for k in self._buckets if k < cutoff]:
                del self._buckets[k]

    def rate(self, now: float) -> float:
        if self._start is None:
            return 0.0
        span = min(self.window, max(now - self._start, 1.0))
        cutoff = now - span
        total = sum(n for k, n in self._buckets.items() if k + 1 > cutoff)
        return total / span


__all__ = ["MAX_DEPTH", "MIN_DEPTH", "RateMeter", "pipeline_depth"]
