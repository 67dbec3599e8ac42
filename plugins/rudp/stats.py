"""Per-session counters and rates over a sliding window."""

from __future__ import annotations

from typing import Final

CHECKPOINT_EVERY: Final = 1.0  # seconds between the counter snapshots the rates are taken from


class RateMeter:
    """Byte rates each way over the last two to three seconds, sampled lazily.

    Three snapshots of the byte counters, at least ``CHECKPOINT_EVERY`` apart, in plain
    attributes: the connection offers one at each flush, so this runs for nearly every
    packet a quiet session sends, and a queue of sample tuples cost a few percent of a
    1000-node simulation (compiled, these are unboxed fields: nothing is allocated).
    """

    def __init__(self, now: float) -> None:
        # oldest (0) to newest (2)
        self._t0 = self._t1 = self._t2 = now
        self._sent0 = self._sent1 = self._sent2 = 0
        self._received0 = self._received1 = self._received2 = 0
        self.next_sample = now + CHECKPOINT_EVERY

    def sample(self, now: float, sent: int, received: int) -> None:
        if now < self.next_sample:
            return
        self.next_sample = now + CHECKPOINT_EVERY
        self._t0 = self._t1
        self._sent0 = self._sent1
        self._received0 = self._received1
        self._t1 = self._t2
        self._sent1 = self._sent2
        self._received1 = self._received2
        self._t2 = now
        self._sent2 = sent
        self._received2 = received

    def rates(self, now: float, sent: int, received: int) -> tuple[float, float]:
        """(send, receive) bytes per second since the oldest snapshot (two to three
        seconds ago while the session is busy; longer after a quiet spell)."""
        elapsed = now - self._t0
        if elapsed <= 0:
            return 0.0, 0.0
        return (sent - self._sent0) / elapsed, (received - self._received0) / elapsed
