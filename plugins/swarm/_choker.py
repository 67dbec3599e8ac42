"""Who may download from us: tit-for-tat choking (sans-IO).

BitTorrent's reference algorithm: a few *regular* upload slots go to the interested peers
that give us the best rates (while we download: their upload to us; while we seed: what
we manage to send them, so the fastest receivers spread the file fastest), re-evaluated
every ``interval`` seconds, plus one *optimistic* slot that rotates every
``optimistic_interval`` seconds through the other interested peers, so newcomers get a
first piece to trade and better partners are discovered. A free regular slot is filled at
once rather than at the next round, so a swarm starts without waiting.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import attrs

REGULAR_SLOTS = 4
INTERVAL = 10.0
OPTIMISTIC_INTERVAL = 30.0


@attrs.frozen
class PeerView:
    """What the choker needs to know about a peer."""

    interested: bool
    rate: float  # bytes/s: from them while we download, to them while we seed


class Choker:
    def __init__(
        self, *, slots: int = REGULAR_SLOTS, interval: float = INTERVAL,
        optimistic_interval: float = OPTIMISTIC_INTERVAL, rng: random.Random | None = None,
    ) -> None:
        self.slots = slots
        self.interval = interval
        self.optimistic_interval = optimistic_interval
        self._rng = rng or random.Random()
        self.regular: set[str] = set()
        self.optimistic: str | None = None
        self._next_regular = float("-inf")
        self._next_optimistic = float("-inf")

    @property
    def unchoked(self) -> set[str]:
        out = set(self.regular)
        if self.optimistic is not None:
            out.add(self.optimistic)
        return out

    def next_timer(self) -> float:
        return min(self._next_regular, self._next_optimistic)

    def update(self, now: float, peers: Mapping[str, PeerView]) -> set[str]:
        """Re-evaluate as far as the clock allows; returns the set of unchoked peers.

        Call it on every timer and whenever a peer comes, goes or changes its interest;
        between rounds, it only drops departed/uninterested peers and fills free slots.
        """
        interested = {p for p, v in peers.items() if v.interested}
        self.regular &= interested
        if self.optimistic not in interested:
            self.optimistic = None
        if now >= self._next_optimistic:
            self._rotate_optimistic(interested)
            self._next_optimistic = now + self.optimistic_interval
        if now >= self._next_regular:
            ranked = sorted(interested - {self.optimistic},
                            key=lambda p: (-peers[p].rate, self._rng.random()))
            self.regular = set(ranked[: self.slots])
            self._next_regular = now + self.interval
        elif len(self.regular) < self.slots:
            spare = sorted(interested - self.regular - {self.optimistic},
                           key=lambda p: (-peers[p].rate, self._rng.random()))
            self.regular |= set(spare[: self.slots - len(self.regular)])
        if self.optimistic is None:
            self._rotate_optimistic(interested)
        return self.unchoked

    def _rotate_optimistic(self, interested: set[str]) -> None:
        candidates = sorted(interested - self.regular - {self.optimistic})
        if candidates:
            self.optimistic = self._rng.choice(candidates)
        elif self.optimistic not in interested:
            self.optimistic = None


__all__ = ["INTERVAL", "OPTIMISTIC_INTERVAL", "REGULAR_SLOTS", "Choker", "PeerView"]
