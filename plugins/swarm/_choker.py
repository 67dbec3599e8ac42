"""Who may download from us: tit-for-tat choking (sans-IO).

BitTorrent's reference algorithm: a few *regular* upload slots go to the interested peers
that give us the best rates (while we download: their upload to us), re-evaluated every
``interval`` seconds, plus one *optimistic* slot that rotates every
``optimistic_interval`` seconds through the other interested peers, so newcomers get a
first piece to trade and better partners are discovered. A free regular slot is filled at
once rather than at the next round, so a swarm starts without waiting.

Two additions, both only ever spend upload capacity that would otherwise be wasted:

* **Spare-capacity slots.** BitTorrent's four slots assume every unchoked peer keeps our
  uplink busy. In a swarm where the unchoked peers already get most of what we have from
  others, they ask us for little and the uplink idles while other interested peers wait.
  So when the caller reports ``spare`` (nothing queued for upload), one more interested
  peer is unchoked — at most one per ``grow_interval`` seconds and at most ``max_extra``
  of them. At each regular round, if the uplink was never found spare during the round,
  one extra slot is given back. Tit-for-tat still decides who gets the regular slots and
  who is first in line for an extra one.
* **Seeding order.** While we seed, nobody can reciprocate; the regular slots then go to
  the peers that miss the most of the content (ties: the best rate we reach), so the
  last downloaders — usually the slowest uploaders, whom tit-for-tat starves — are
  served by the seeds and the swarm finishes together.
* **Young order.** While we hold only a few pieces (``young``: the picker's random-first
  phase) no rate is known yet, and tit-for-tat would rank at random. The slots then go
  in seeding order too: a peer that holds nothing becomes a new source of our piece
  once it has it, which is how a young swarm's pieces spread (N = 100: mean leecher
  11.15 -> 10.92 s over three seeds, docs/plugins/swarm-benchmark-log.md). When we stop being young,
  the regular slots are re-ranked by rate at once, not at the next round: a round is
  10 s, longer than many downloads, and the slots young order gave (before any rate was
  known) would otherwise stay — at N = 100, 3–7 s in, peers that sent us 2 KB/s held
  slots while peers sending 43 KB/s were choked.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import attrs

REGULAR_SLOTS = 4
INTERVAL = 10.0
OPTIMISTIC_INTERVAL = 30.0
MAX_EXTRA = 8
GROW_INTERVAL = 0.25


@attrs.frozen
class PeerView:
    """What the choker needs to know about a peer."""

    interested: bool
    rate: float  # bytes/s: from them while we download, to them while we seed
    missing: float = 0.0  # the fraction of the content they still lack (seeding order)


class Choker:
    def __init__(
        self, *, slots: int = REGULAR_SLOTS, interval: float = INTERVAL,
        optimistic_interval: float = OPTIMISTIC_INTERVAL, max_extra: int = MAX_EXTRA,
        grow_interval: float = GROW_INTERVAL, rng: random.Random | None = None,
    ) -> None:
        self.slots = slots
        self.interval = interval
        self.optimistic_interval = optimistic_interval
        self.max_extra = max_extra
        self.grow_interval = grow_interval
        self._rng = rng or random.Random()
        self.regular: set[str] = set()
        self.extra: set[str] = set()
        self.optimistic: str | None = None
        self._next_regular = float("-inf")
        self._next_optimistic = float("-inf")
        self._next_grow = float("-inf")
        self._spare_this_round = False
        self._young = False  # the last update ranked young (by need, no rates yet)

    @property
    def unchoked(self) -> set[str]:
        out = self.regular | self.extra
        if self.optimistic is not None:
            out.add(self.optimistic)
        return out

    def next_timer(self) -> float:
        return min(self._next_regular, self._next_optimistic)

    def update(self, now: float, peers: Mapping[str, PeerView], *, spare: bool = False,
               seeding: bool = False, young: bool = False) -> set[str]:
        """Re-evaluate as far as the clock allows; returns the set of unchoked peers.

        Call it on every timer and whenever a peer comes, goes or changes its interest;
        between rounds, it only drops departed/uninterested peers, fills free slots and,
        with ``spare`` (our uplink has nothing queued), adds an extra slot. ``seeding``
        or ``young`` rank by need instead of rate (see the module docstring).
        """
        by_need = seeding or young
        if self._young and not young:
            self._next_regular = now  # grown up: tit-for-tat now, not at the next round
        self._young = young
        interested = {p for p, v in peers.items() if v.interested}
        self.regular &= interested
        self.extra &= interested
        if self.optimistic not in interested:
            self.optimistic = None
        if spare:
            self._spare_this_round = True

        def rank(candidates: set[str]) -> list[str]:
            # sorted first: the random tie-breaks must not depend on set order (string
            # hashing differs per process, and the simulator promises same seed, same run)
            ordered = sorted(candidates)
            if by_need:
                return sorted(ordered, key=lambda p: (-peers[p].missing, -peers[p].rate,
                                                      self._rng.random()))
            return sorted(ordered, key=lambda p: (-peers[p].rate, self._rng.random()))

        if now >= self._next_optimistic:
            self._rotate_optimistic(interested)
            self._next_optimistic = now + self.optimistic_interval
        if now >= self._next_regular:
            ranked = rank(interested - {self.optimistic})
            self.regular = set(ranked[: self.slots])
            keep = len(self.extra) - (0 if self._spare_this_round else 1)
            self.extra = set([p for p in ranked[self.slots:] if p in self.extra][:max(0, keep)])
            self._spare_this_round = spare
            self._next_regular = now + self.interval
        elif len(self.regular) < self.slots:
            spare_peers = rank(interested - self.regular - self.extra - {self.optimistic})
            self.regular |= set(spare_peers[: self.slots - len(self.regular)])
        if self.optimistic is None:
            self._rotate_optimistic(interested)
        if spare and now >= self._next_grow and len(self.extra) < self.max_extra:
            waiting = rank(interested - self.unchoked)
            if waiting:
                self.extra.add(waiting[0])
                self._next_grow = now + self.grow_interval
        return self.unchoked

    def _rotate_optimistic(self, interested: set[str]) -> None:
        candidates = sorted(interested - self.regular - self.extra - {self.optimistic})
        if candidates:
            self.optimistic = self._rng.choice(candidates)
        elif self.optimistic not in interested:
            self.optimistic = None


__all__ = ["GROW_INTERVAL", "INTERVAL", "MAX_EXTRA", "OPTIMISTIC_INTERVAL", "REGULAR_SLOTS",
           "Choker", "PeerView"]
