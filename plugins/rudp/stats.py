"""Per-session counters and rates over a sliding window."""

from __future__ import annotations

from collections import deque

RATE_WINDOW = 2.0  # seconds the byte rates are averaged over
SAMPLE_EVERY = 0.25


class RateMeter:
    """Byte rates each way over the last ``RATE_WINDOW`` seconds, sampled lazily."""

    def __init__(self, now: float) -> None:
        self._samples: deque[tuple[float, int, int]] = deque([(now, 0, 0)])
        self.next_sample = now + SAMPLE_EVERY

    def sample(self, now: float, sent: int, received: int) -> None:
        if now < self.next_sample:
            return
        self.next_sample = now + SAMPLE_EVERY
        samples = self._samples
        samples.append((now, sent, received))
        while len(samples) > 2 and samples[1][0] <= now - RATE_WINDOW:
            samples.popleft()

    def rates(self, now: float, sent: int, received: int) -> tuple[float, float]:
        """(send, receive) bytes per second up to ``now``."""
        t0, s0, r0 = self._samples[0]
        for t, s, r in self._samples:
            if t >= now - RATE_WINDOW:
                break
            t0, s0, r0 = t, s, r
        elapsed = now - t0
        if elapsed <= 0:
            return 0.0, 0.0
        return (sent - s0) / elapsed, (received - r0) / elapsed
