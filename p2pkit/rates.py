"""Rates over a sliding window, computed from snapshots of monotonic counters.

No per-packet work: callers keep counting bytes as they do; a meter samples the counter
(on a periodic tick or when read) and reports the change over the last ``window`` seconds.
"""

from __future__ import annotations

from collections import deque


class RateMeter:
    def __init__(self, window: float = 5.0, resolution: float = 0.25) -> None:
        self.window = window
        self.resolution = resolution
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, now: float, counter: int) -> None:
        samples = self._samples
        if samples and now - samples[-1][0] < self.resolution:
            return
        samples.append((now, counter))
        # keep one sample at or before the window's start so the rate spans the window
        while len(samples) > 2 and samples[1][0] <= now - self.window:
            samples.popleft()

    def rate(self, now: float, counter: int) -> float:
        """Units per second over (about) the last ``window`` seconds."""
        self.sample(now, counter)
        samples = self._samples
        if not samples:
            return 0.0
        t0, c0 = samples[0]
        elapsed = now - t0
        if elapsed <= 0:
            return 0.0
        return (counter - c0) / elapsed
