"""Initial seeding: the origin's uplink injects new pieces, not copies (sans-IO).

At the start of a swarm only the origin seeder has the content, and its uplink is the
only way pieces enter the swarm. If it answers whatever is asked, several downloaders ask
it for the same pieces (each sees only its own neighbours, and pieces in flight are
invisible), the swarm soon holds many copies of a few pieces, the downloaders have
nothing to trade with each other, and their uplinks idle while the origin sends
duplicates. BitTorrent's answer is super-seeding; this is a simple form of it:

* while some piece is held by none of our peers, a newcomer is shown only a few pieces
  (``per_peer``): those offered least so far and held by fewest peers — a truthful but
  partial bitfield, so every downloader that asks us asks for a different piece;
* each time a peer announces (Have) a piece it was offered, it is offered one more;
* once every piece is held by some peer, everything is revealed to everyone and the
  origin behaves like any seed (the receivers treat the full bitfield as news).

A peer that leaves releases its offers. Nothing here touches the network.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

PER_PEER = 4  # pieces shown to a peer at a time: enough to fill a fast path's pipeline


class InitialSeeding:
    def __init__(self, num_pieces: int, *, per_peer: int = PER_PEER,
                 tiebreak: Sequence[int] | None = None) -> None:
        self.num_pieces = num_pieces
        self.per_peer = max(1, per_peer)
        self._tiebreak = list(tiebreak) if tiebreak is not None else list(range(num_pieces))
        self.offers: dict[str, set[int]] = {}  # peer → pieces shown and not yet announced
        self._offered: Counter[int] = Counter()  # piece → peers it is shown to now
        self.done = False

    def active(self, availability: Sequence[int]) -> bool:
        """Still injecting: some piece is held by none of our peers."""
        if not self.done and all(a > 0 for a in availability):
            self.done = True
        return not self.done

    def shown(self, peer: str) -> set[int] | None:
        """Pieces ``peer`` may know we have (None: all of them)."""
        return None if self.done else self.offers.get(peer)

    def offer(self, peer: str, peer_has: Sequence[bool] | None,
              availability: Sequence[int]) -> list[int]:
        """Pieces to show a newcomer (its first bitfield from us)."""
        self.offers.setdefault(peer, set())
        return self._more(peer, peer_has, availability, self.per_peer)

    def on_have(self, peer: str, piece: int, peer_has: Sequence[bool] | None,
                availability: Sequence[int]) -> list[int]:
        """``peer`` announced ``piece``: returns the pieces to show it next (as Haves)."""
        mine = self.offers.get(peer)
        if mine is None or piece not in mine:
            return []
        mine.discard(piece)
        self._offered[piece] -= 1
        return self._more(peer, peer_has, availability, self.per_peer - len(mine))

    def peer_gone(self, peer: str) -> None:
        for piece in self.offers.pop(peer, set()):
            self._offered[piece] -= 1

    def _more(self, peer: str, peer_has: Sequence[bool] | None,
              availability: Sequence[int], count: int) -> list[int]:
        mine = self.offers[peer]
        candidates = [i for i in range(self.num_pieces)
                      if i not in mine and not (peer_has is not None and peer_has[i])]
        candidates.sort(key=lambda i: (self._offered[i] + availability[i], self._tiebreak[i]))
        chosen = candidates[:max(0, count)]
        for i in chosen:
            mine.add(i)
            self._offered[i] += 1
        return chosen


__all__ = ["PER_PEER", "InitialSeeding"]
