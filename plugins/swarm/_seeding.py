"""Initial seeding: the origin's uplink injects every piece once, a piece at a time per
target, before anything twice (sans-IO).

At the start of a swarm only the origin has the content and its uplink is the only way
pieces enter the swarm: every byte it sends that the swarm already holds, or that sits in
a half-sent piece nobody can pass on yet, is a byte the leechers cannot trade. If it
answers whatever is asked, many downloaders fetch the same few pieces in parallel, each
slowly; the leechers' uplinks idle for seconds with nothing to trade. BitTorrent's answer
is super-seeding (BEP 16); this is a form of it:

* At most ``targets`` peers are being injected to at a time. A target is shown one
  piece — one that no peer holds and no other target is shown — as a Have (or in its
  first bitfield); everyone else sees none of our pieces, so only targets ask us and each
  injected piece completes at a share of our uplink, quickly, and can be passed on.
* When all of a target's piece has been handed to the transport (or it announces the
  piece), the next target is the member injected to least so far (so pieces land on
  different peers, which pass them on to each other) and gets the next fresh piece; the
  piece sent whole counts as out and is not injected again.
* A target whose piece is not sent whole ``stall_after`` seconds after it was shown is
  given up (the piece may be shown to another target); a departed peer likewise.
* Once no fresh piece is left, a piece no peer holds and not yet sent whole may be shown
  to a second target (the first may be slow); once every piece is held by some peer or
  was sent whole, everything is revealed to everyone and the origin behaves like any
  seed. (It cannot wait for every Have: a member that dropped us from its full swarm does
  not tell us what it gets.)

Nothing here touches the network; the caller shows what :meth:`next_offers` returns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

TARGETS = 4  # peers injected to at once (N = 100: 8 were no better)
STALL_AFTER_S = 2.0  # a target whose piece is not sent whole by then is given up
GROW_INTERVAL_S = 0.25  # extra targets are added at most this often
BUSY_FOR_S = 1.0  # an extra target is given back when the uplink was busy this long


class InitialSeeding:
    def __init__(self, num_pieces: int, *, targets: int = TARGETS, max_extra: int = 0,
                 stall_after: float = STALL_AFTER_S, tiebreak: Sequence[int] | None = None) -> None:
        self.num_pieces = num_pieces
        self.targets = max(1, targets)
        self.max_extra = max(0, max_extra)
        self.extra = 0  # more targets while our uplink has nothing queued (see spare)
        self._next_grow = float("-inf")
        self._last_spare = float("-inf")
        self.stall_after = stall_after
        self._tiebreak = list(tiebreak) if tiebreak is not None else list(range(num_pieces))
        self.offers: dict[str, tuple[int, float]] = {}  # target -> (piece shown, when)
        self._sent: dict[str, int] = {}  # target -> bytes of its piece handed to the transport
        self._sent_once: set[int] = set()  # pieces sent whole to some target: they are out
        self._shown: dict[str, set[int]] = {}  # member -> every piece ever shown to it
        self._served: Counter[str] = Counter()  # member -> pieces injected to it
        self.done = False

    def active(self, availability: Sequence[int]) -> bool:
        """Still injecting: some piece is held by none of our peers and was never sent
        whole. (Members that dropped us do not tell us what they get, so the swarm may hold
        a piece we think nobody has: once we sent it, it is out.)"""
        if not self.done and all(a > 0 or i in self._sent_once
                                 for i, a in enumerate(availability)):
            self.done = True
            self.offers.clear()
        return not self.done

    def shown(self, peer: str) -> set[int] | None:
        """Pieces ``peer`` may know we have (None: all of them)."""
        return None if self.done else self._shown.get(peer, set())

    def join(self, peer: str) -> None:
        """``peer`` is a member now (it has our, maybe empty, bitfield)."""
        self._shown.setdefault(peer, set())

    def on_have(self, peer: str, piece: int) -> None:
        """``peer`` announced ``piece``: a target whose piece that was is free again."""
        offer = self.offers.get(peer)
        if offer is not None and offer[0] == piece:
            self.release(peer)

    def uploaded(self, peer: str, piece: int, nbytes: int, piece_length: int) -> bool:
        """``nbytes`` of ``piece`` went to ``peer``. True when that completes a target's
        piece: its place is free for the next target while the last bytes travel, and the
        piece is out (never injected again)."""
        offer = self.offers.get(peer)
        if offer is None or offer[0] != piece:
            return False
        sent = self._sent[peer] = self._sent.get(peer, 0) + nbytes
        if sent < piece_length:
            return False
        self.release(peer)
        self._sent_once.add(piece)
        return True

    def spare(self, now: float) -> None:
        """Our uplink has nothing queued: one more target (at most one per GROW_INTERVAL_S
        and ``max_extra`` in all); places freed while the uplink was busy for a second
        give extra ones back."""
        self._last_spare = now
        if self.extra < self.max_extra and now >= self._next_grow:
            self.extra += 1
            self._next_grow = now + GROW_INTERVAL_S

    def _shrink(self, now: float) -> None:
        if self.extra > 0 and now - self._last_spare > BUSY_FOR_S:
            self.extra -= 1

    def release(self, peer: str) -> None:
        """``peer`` is no longer a target (done, silent, stalled or gone): its place is
        free, and its piece may go elsewhere unless it was sent whole."""
        self._sent.pop(peer, None)
        self.offers.pop(peer, None)

    def peer_gone(self, peer: str) -> None:
        self.release(peer)
        self._shown.pop(peer, None)
        self._served.pop(peer, None)

    def next_offers(self, now: float, availability: Sequence[int],
                    lacks: Mapping[str, Sequence[bool] | None]) -> list[tuple[str, int]]:
        """New (target, piece) pairs to show, filling free target places. ``lacks``: the
        members that may be injected to, with what they hold (None: unknown), preferred
        first; among them the ones injected to least come first."""
        for peer, (_piece, since) in list(self.offers.items()):
            if now - since >= self.stall_after or peer not in lacks:
                self.release(peer)
        if len(self.offers) < self.targets + self.extra:
            self._shrink(now)
        if self.done:
            return []
        out: list[tuple[str, int]] = []
        order = sorted((p for p in lacks if p not in self.offers),
                       key=lambda p: self._served[p])  # stable: the caller's preference
        for peer in order:
            if len(self.offers) >= self.targets + self.extra:
                break
            has = lacks[peer]
            piece = self._pick(availability, has)
            if piece is None:
                continue
            self.offers[peer] = (piece, now)
            self._served[peer] += 1
            self._shown.setdefault(peer, set()).add(piece)
            out.append((peer, piece))
        return out

    def _pick(self, availability: Sequence[int], has: Sequence[bool] | None) -> int | None:
        """A piece nobody holds and never sent whole: one no target is shown first, then
        the least shown."""
        candidates = [i for i in range(self.num_pieces)
                      if availability[i] == 0 and not (has is not None and has[i])
                      and i not in self._sent_once]
        if not candidates:
            return None
        offered = Counter(piece for piece, _since in self.offers.values())
        return min(candidates, key=lambda i: (offered[i], self._tiebreak[i]))


__all__ = ["STALL_AFTER_S", "TARGETS", "InitialSeeding"]
