"""Upload limit: a token bucket (sans-IO; the caller sleeps for the delay it returns)."""

from __future__ import annotations


class TokenBucket:
    """``rate`` bytes per second with bursts up to ``burst`` bytes; rate 0 = unlimited.

    ``reserve(n, now)`` takes ``n`` bytes at once, even more than the bucket holds (a block
    is never split), and returns how long to wait before sending them so the long-run
    rate holds: the bucket may go into debt, and the debt is the wait.
    """

    def __init__(self, rate: float, burst: float | None = None, *, now: float = 0.0) -> None:
        self.rate = 0.0
        self.burst = 0.0
        self._tokens = 0.0
        self._stamp = now
        self.set_rate(rate, burst, now=now)

    def set_rate(self, rate: float, burst: float | None = None, *, now: float | None = None) -> None:
        if rate < 0:
            raise ValueError("rate must be >= 0")
        if now is not None:
            self._refill(now)
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(rate * 0.25, 64 * 1024))
        self._tokens = min(self._tokens, self.burst)

    @classmethod
    def from_kbps(cls, kbps: int, *, now: float = 0.0) -> TokenBucket:
        """``cfg.upload_limit_kbps`` (KiB/s, 0 = unlimited) → a bucket."""
        return cls(kbps * 1024, now=now)

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def reserve(self, n: int, now: float) -> float:
        """Take ``n`` bytes; returns the seconds to wait before sending (0 = now)."""
        if self.rate <= 0:
            return 0.0
        self._refill(now)
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


__all__ = ["TokenBucket"]
