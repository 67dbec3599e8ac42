"""Which block to ask which peer for next: the piece picker (sans-IO, synchronous).

Order of preference when a peer can take more requests:

1. **Deadline mode** (streaming): missing pieces inside the window ahead of the playhead,
   nearest first, so playback never waits on a rare piece far ahead.
2. **Random first**: until a few pieces are complete, random ones — a new peer needs
   something to trade, and the rarest piece is the slowest to get — except that pieces
   only the asked peer holds come first (early on that is the seeder, whose uplink is the
   only way new pieces enter the swarm; spending it on copies others can give is waste).
3. **Rarest first**: fewest peers have it; ties broken by a per-node random order, so
   different peers start on different pieces.
4. **Partial pieces** already started are finished first among equally rare ones, so
   pieces complete (and can be shared) quickly instead of many being half done; a
   started piece that others hold too does not take a rare peer's uplink.
5. **Stealing**: a block asked of another peer longer than ``stale_after`` seconds ago
   (the caller sizes that to how fast *this* peer would deliver it) is moved to this
   peer: the old request goes into :attr:`PiecePicker.stolen`, for the caller to cancel,
   so a fast uploader with spare capacity is not left idle while a slow one sits on the
   blocks it could send, and the slow one's uplink is freed for other requests. The
   caller may veto a move (``may_steal``): a block the old peer is about to deliver
   anyway (the head of its queue) would only be sent twice.
6. **Relayed blocks**: blocks of pieces a peer does not hold whole yet but has told us
   (``set_peer_blocks``) it holds and has checked, after the whole pieces it offers: a
   piece starts spreading while its first copy is still being fetched.
7. **Endgame**: once every missing block is requested, blocks already in flight from other
   peers are requested again from this one; the first copy wins and the caller cancels
   the others (``on_block`` returns them). The caller's ``may_steal`` vetoes a copy as it
   vetoes a move: a block its holder sends sooner than this peer could is not asked twice.

A block that arrives although nobody asked for it any more (it was already on its way
when we were choked, cancelled or stole it) is kept if we still miss it: the uploader
spent its uplink on it, throwing it away would waste that twice.

Blame: a piece fetched from one peer that fails its hash convicts that peer, which is not
asked for that piece again. A piece assembled from several peers convicts nobody; it becomes *suspect* and is fetched again
whole from a single peer, so a corrupting peer is soon caught alone and honest peers never
take the blame for it; that peer gives the piece up as soon as it does not deliver (chokes
us, refuses, times out, says it lost the piece) and another is chosen.

A piece is split into blocks of at most ``block_size`` bytes. Nothing here touches the
network or a clock; the caller feeds peer bitfields, haves, arrivals and failures.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

import attrs
from p2pkit.plugins.store import LEAF_SIZE

from ._assembly import leaf_bits

DEFAULT_BLOCK = 64 * 1024
RANDOM_FIRST_PIECES = 4


@attrs.frozen(order=True)
class Block:
    piece: int
    offset: int
    length: int


@attrs.frozen
class MissingBlocks:
    """Where each block we still miss stands (see :meth:`PiecePicker.missing_blocks`)."""

    asked: int  # blocks asked of some peer that have not arrived
    requested: dict[str, int]  # peer → blocks asked of it (endgame: one block, several peers)
    askable: list[tuple[Block, tuple[str, ...]]]  # not asked for; the askable peers holding it
    choked: int  # not asked for; held only by members we may not ask
    unseen: int  # not asked for; no member is known to hold it

    @property
    def total(self) -> int:
        return self.asked + len(self.askable) + self.choked + self.unseen


@attrs.define
class _Partial:
    """A piece being fetched: per block, who has it in flight and whether it arrived."""

    blocks: list[Block]
    requested: list[set[str]]
    received: list[bool]
    sources: list[str | None]
    asked_at: list[float]  # when each block was last requested
    owner: str | None = None  # suspect pieces: the one peer allowed to send it

    def missing(self) -> int:
        return self.received.count(False)


class PiecePicker:
    def __init__(
        self, piece_lengths: list[int], *, block_size: int = DEFAULT_BLOCK,
        have: Iterable[int] = (), rng: random.Random | None = None,
        random_first: int = RANDOM_FIRST_PIECES,
    ) -> None:
        if block_size <= 0:
            raise ValueError("block_size must be > 0")
        self.num_pieces = len(piece_lengths)
        self.piece_lengths = list(piece_lengths)
        self.block_size = block_size
        self.random_first = random_first
        self._rng = rng or random.Random()
        order = list(range(self.num_pieces))
        self._rng.shuffle(order)
        self._tiebreak = [0] * self.num_pieces  # random rank of each piece among equals
        for rank, piece in enumerate(order):
            self._tiebreak[piece] = rank
        self.tiebreak: list[int] = self._tiebreak  # read-only for others (initial seeding)
        self.have = [False] * self.num_pieces
        for piece in have:
            self.have[piece] = True
        self.availability = [0] * self.num_pieces
        self.peer_pieces: dict[str, list[bool]] = {}
        self.peer_blocks: dict[str, dict[int, int]] = {}  # peer → piece → mask of leaves
        self._partial: dict[int, _Partial] = {}
        self._suspect: set[int] = set()
        self._tainted: dict[int, set[str]] = {}  # piece -> peers that sent a bad copy of it alone
        self._now = 0.0
        self.stolen: list[tuple[str, Block]] = []  # (peer, block) requests moved away: cancel
        self.playhead: int | None = None
        self.deadline_window = 0

    # ------------------------------------------------------------------ state

    @property
    def complete(self) -> bool:
        return all(self.have)

    @property
    def have_count(self) -> int:
        return self.have.count(True)

    def missing(self) -> list[int]:
        return [i for i, h in enumerate(self.have) if not h]

    def missing_offered(self) -> bool:
        """Whether some member holds (whole, or checked blocks of) a piece we miss."""
        partly = {piece for blocks in self.peer_blocks.values() for piece, mask in blocks.items() if mask}
        return any(not has and (self.availability[i] > 0 or i in partly)
                   for i, has in enumerate(self.have))

    def in_endgame(self) -> bool:
        """Every missing block is requested from someone (nothing fresh is left)."""
        for piece in self.missing():
            partial = self._partial.get(piece)
            if partial is None:
                return False
            if any(not r and not got for r, got in zip(partial.requested, partial.received)):
                return False
        return not self.complete

    def outstanding(self, peer: str) -> list[Block]:
        """Blocks in flight from ``peer``."""
        out = []
        for partial in self._partial.values():
            for block, who, got in zip(partial.blocks, partial.requested, partial.received):
                if peer in who and not got:
                    out.append(block)
        return out

    def missing_blocks(self, askable: Callable[[str], bool]) -> MissingBlocks:
        """Every block we lack, by what it waits for: a peer it was asked of (a block
        asked of several, in endgame, counts once per peer), a free place in the pipeline
        of a peer we may ask (``askable``: it unchokes us) that holds it, a member that
        chokes us, or a member that has it at all. Diagnostics: nothing changes."""
        requested: dict[str, int] = {}
        offered: list[tuple[Block, tuple[str, ...]]] = []
        asked = choked = unseen = 0
        for piece in self.missing():
            partial = self._partial.get(piece)
            blocks = partial.blocks if partial is not None else self._grid(piece)
            for i, block in enumerate(blocks):
                if partial is not None and partial.received[i]:
                    continue
                who = partial.requested[i] if partial is not None else set()
                if who:
                    asked += 1
                    for peer in who:
                        requested[peer] = requested.get(peer, 0) + 1
                    continue
                holders = sorted(peer for peer in self.peer_pieces
                                 if self._holds(peer, piece, block))
                mine = tuple(peer for peer in holders if askable(peer))
                if mine:
                    offered.append((block, mine))
                elif holders:
                    choked += 1
                else:
                    unseen += 1
        return MissingBlocks(asked, requested, offered, choked, unseen)

    def _holds(self, peer: str, piece: int, block: Block) -> bool:
        """``peer`` holds ``block``: the whole piece, or the block checked (its Blocks)."""
        if self.peer_pieces[peer][piece]:
            return True
        mask = self.peer_blocks.get(peer, {}).get(piece)
        return mask is not None and self._offered(mask, block)

    def set_deadline(self, playhead_piece: int | None, window: int = 8) -> None:
        """Streaming: prefer the ``window`` pieces from ``playhead_piece`` on (None = off)."""
        self.playhead = playhead_piece
        self.deadline_window = max(0, window)

    # ------------------------------------------------------------------ peers

    def add_peer(self, peer: str, pieces: list[bool]) -> None:
        if len(pieces) != self.num_pieces:
            raise ValueError("bitfield length does not match the piece count")
        self.remove_peer(peer)
        self.peer_pieces[peer] = list(pieces)
        for i, has in enumerate(pieces):
            if has:
                self.availability[i] += 1

    def peer_has(self, peer: str, piece: int) -> None:
        pieces = self.peer_pieces.setdefault(peer, [False] * self.num_pieces)
        if not pieces[piece]:
            pieces[piece] = True
            self.availability[piece] += 1
        blocks = self.peer_blocks.get(peer)
        if blocks is not None:
            blocks.pop(piece, None)

    def peer_lacks(self, peer: str, piece: int) -> None:
        """``peer`` said it does not hold ``piece`` after all (``Lost``)."""
        pieces = self.peer_pieces.get(peer)
        if pieces is not None and pieces[piece]:
            pieces[piece] = False
            self.availability[piece] -= 1
        blocks = self.peer_blocks.get(peer)
        if blocks is not None:
            blocks.pop(piece, None)
        partial = self._partial.get(piece)
        if partial is not None and partial.owner == peer:
            del self._partial[piece]  # a suspect piece it was to send starts over elsewhere

    def set_peer_blocks(self, peer: str, piece: int, mask: int) -> None:
        """``peer`` holds (checked) the leaves of ``piece`` in ``mask`` (bit j: leaf j)."""
        pieces = self.peer_pieces.get(peer)
        if pieces is None or pieces[piece] or self.have[piece]:
            return
        self.peer_blocks.setdefault(peer, {})[piece] = mask

    def remove_peer(self, peer: str) -> None:
        """The peer left: its pieces no longer count, its requests go back to the pool."""
        pieces = self.peer_pieces.pop(peer, None)
        if pieces is not None:
            for i, has in enumerate(pieces):
                if has:
                    self.availability[i] -= 1
        self.peer_blocks.pop(peer, None)
        self.forget_requests(peer)

    def forget_requests(self, peer: str, blocks: Iterable[Block] | None = None) -> bool:
        """``peer`` will not deliver these blocks (choked us, rejected, timed out); with
        ``blocks`` None, none of them. Any of these means a suspect piece it was to send
        starts over from another peer: the one allowed to send it would otherwise hold
        it for ever (a peer that corrupted it and went silent stalled the download)."""
        wanted = None if blocks is None else set(blocks)
        released = False
        for piece, partial in list(self._partial.items()):
            if partial.owner == peer:
                del self._partial[piece]
                released = True
                continue
            for block, who in zip(partial.blocks, partial.requested):
                if peer in who and (wanted is None or block in wanted):
                    who.discard(peer)
        return released  # True: a suspect piece is free for another peer

    def interesting(self, peer: str) -> bool:
        """Does ``peer`` have a piece we lack, or a block of one that we still miss?"""
        pieces = self.peer_pieces.get(peer)
        if pieces is None:
            return False
        if any(p and not h for p, h in zip(pieces, self.have)):
            return True
        return any(self._relayable(piece, mask) for piece, mask
                   in self.peer_blocks.get(peer, {}).items())

    def _relayable(self, piece: int, mask: int) -> bool:
        """Does ``mask`` hold a block of ``piece`` we have not received?"""
        if self.have[piece]:
            return False
        partial = self._partial.get(piece)
        if partial is None:
            return any(self._offered(mask, b) for b in self._grid(piece))
        return any(not got and self._offered(mask, b)
                   for b, got in zip(partial.blocks, partial.received))

    @staticmethod
    def _offered(mask: int, block: Block) -> bool:
        """Does a leaf mask hold every leaf of ``block``?"""
        bits = leaf_bits(range(block.offset // LEAF_SIZE,
                               -(-(block.offset + block.length) // LEAF_SIZE)))
        return mask & bits == bits

    def started(self, piece: int) -> bool:
        """A block of ``piece`` was asked for or received (and the piece is not done)."""
        return piece in self._partial

    # ------------------------------------------------------------------ picking

    def pick(self, peer: str, count: int, *, now: float = 0.0,
             stale_after: float | None = None, endgame_count: int | None = None,
             may_steal: Callable[[Iterable[str], Block], bool] | None = None) -> list[Block]:
        """Up to ``count`` blocks to request from ``peer`` (marked as requested by it at
        ``now``); with ``stale_after``, also blocks others were asked for that long ago
        (moved to ``peer``, see :attr:`stolen`) unless ``may_steal(old peers, block)`` says
        no; in endgame, at most ``endgame_count`` duplicates (None: up to ``count``)."""
        pieces = self.peer_pieces.get(peer)
        if pieces is None or count <= 0:
            return []
        self._now = now
        picked: list[Block] = []
        for piece in self._candidate_order(pieces):
            self._take_fresh(piece, peer, count - len(picked), picked)
            if len(picked) >= count:
                return picked
        if len(picked) < count and peer in self.peer_blocks:
            self._take_relayed(peer, count - len(picked), picked)
        if stale_after is not None:
            self._take_stale(peer, pieces, count - len(picked), picked, now - stale_after,
                             may_steal)
        if self.in_endgame():
            left = count - len(picked)
            if endgame_count is not None:
                left = min(left, endgame_count)
            self._take_endgame(peer, pieces, left, picked, may_steal)
        return picked

    def _take_stale(self, peer: str, pieces: list[bool], count: int, out: list[Block],
                    before: float,
                    may_steal: Callable[[Iterable[str], Block], bool] | None = None) -> None:
        """Steal the oldest requests (asked before ``before``) from other peers."""
        stale = []
        for piece, partial in self._partial.items():
            if not pieces[piece] or self.have[piece] or partial.owner not in (None, peer):
                continue
            for i, (who, got) in enumerate(zip(partial.requested, partial.received)):
                if not got and who and peer not in who and partial.asked_at[i] < before:
                    stale.append((partial.asked_at[i], piece, i))
        stale.sort()
        taken = 0
        for _, piece, i in stale:
            if taken >= count:
                break
            partial = self._partial[piece]
            who = partial.requested[i]
            if may_steal is not None and not may_steal(who, partial.blocks[i]):
                continue  # a vetoed block does not use up a place
            taken += 1
            if not self._allowed(partial, piece, peer):
                continue
            self.stolen.extend((old, partial.blocks[i]) for old in sorted(who))
            who.clear()
            who.add(peer)
            partial.asked_at[i] = self._now
            out.append(partial.blocks[i])

    def _take_relayed(self, peer: str, count: int, out: list[Block]) -> None:
        """Blocks ``peer`` holds of pieces it does not hold whole, rarest piece first."""
        masks = self.peer_blocks[peer]
        goal = len(out) + count
        for piece in sorted(masks, key=lambda i: (self.availability[i], self._tiebreak[i])):
            if len(out) >= goal:
                return
            if not self.have[piece]:
                self._take_fresh(piece, peer, goal - len(out), out, mask=masks[piece])

    def _candidate_order(self, pieces: list[bool]) -> list[int]:
        wanted = [i for i, (p, h) in enumerate(zip(pieces, self.have)) if p and not h]
        if not wanted:
            return []
        first: list[int] = []
        if self.playhead is not None and self.deadline_window:
            end = self.playhead + self.deadline_window
            first = [i for i in wanted if self.playhead <= i < end]
        chosen = set(first)
        rest = [i for i in wanted if i not in chosen]
        tb = self._tiebreak
        av = self.availability
        partial = self._partial
        if self.have_count < self.random_first:
            # random first — except that a piece only this peer holds comes before one
            # we could also get elsewhere: early on that peer is usually the seeder, and
            # its uplink is the only way new pieces enter the swarm
            rest.sort(key=lambda i: (av[i] > 1, i not in partial, tb[i]))
        else:
            # rarest first; among equally rare pieces a started one is finished first (a
            # common partial piece is not worth a rare peer's uplink)
            rest.sort(key=lambda i: (av[i], i not in partial, tb[i]))
        return first + rest

    def _grid(self, piece: int) -> list[Block]:
        length = self.piece_lengths[piece]
        return [Block(piece, off, min(self.block_size, length - off))
                for off in range(0, length, self.block_size)]

    def _partial_for(self, piece: int) -> _Partial:
        partial = self._partial.get(piece)
        if partial is None:
            blocks = self._grid(piece)
            partial = _Partial(blocks, [set() for _ in blocks], [False] * len(blocks),
                               [None] * len(blocks), [0.0] * len(blocks))
            self._partial[piece] = partial
        return partial

    def _allowed(self, partial: _Partial, piece: int, peer: str) -> bool:
        tainted = self._tainted.get(piece)
        if tainted is not None and peer in tainted:
            return False  # it sent us a bad copy of this piece: never again from it
        if piece not in self._suspect:
            return True
        if partial.owner is None:
            partial.owner = peer
        return partial.owner == peer

    def _take_fresh(self, piece: int, peer: str, count: int, out: list[Block],
                    mask: int | None = None) -> None:
        """Blocks of ``piece`` nobody was asked for (with ``mask``: only the leaves set)."""
        partial = self._partial_for(piece)
        if not self._allowed(partial, piece, peer):
            return
        for i, (block, who, got) in enumerate(zip(partial.blocks, partial.requested,
                                                  partial.received)):
            if count <= 0:
                return
            if not got and not who and (mask is None or self._offered(mask, block)):
                who.add(peer)
                partial.asked_at[i] = self._now
                out.append(block)
                count -= 1

    def _take_endgame(self, peer: str, pieces: list[bool], count: int, out: list[Block],
                      may_steal: Callable[[Iterable[str], Block], bool] | None = None) -> None:
        """Duplicates: blocks with the fewest holders first, then the longest outstanding."""
        if count <= 0:
            return
        wanted = []
        for piece, partial in self._partial.items():
            if not pieces[piece] or self.have[piece] or partial.owner not in (None, peer):
                continue
            for i, (who, got) in enumerate(zip(partial.requested, partial.received)):
                if not got and peer not in who:
                    wanted.append((len(who), partial.asked_at[i], self._tiebreak[piece], piece, i))
        wanted.sort()
        taken = 0
        for *_, piece, i in wanted:
            if taken >= count:
                break
            partial = self._partial[piece]
            if may_steal is not None and not may_steal(partial.requested[i], partial.blocks[i]):
                continue  # its holder sends it sooner than we would: a copy only doubles it
            taken += 1
            if self._allowed(partial, piece, peer):
                partial.requested[i].add(peer)
                out.append(partial.blocks[i])

    # ------------------------------------------------------------------ arrivals

    def on_block(self, peer: str, block: Block) -> tuple[bool, list[tuple[str, Block]], bool]:
        """A block arrived from ``peer``. Returns (expected, cancels, piece_complete):
        ``expected`` is False for a block we did not ask anyone for (or already have);
        ``cancels`` are the other peers still fetching it (endgame); ``piece_complete``
        means every block of the piece is here and it can be verified."""
        if not 0 <= block.piece < self.num_pieces or self.have[block.piece]:
            return False, [], False
        partial = self._partial.get(block.piece)
        if partial is None:
            # Nobody was asked for any of this piece (asking starts it): taking the block
            # would let a peer make us hold a piece-sized buffer for every piece of the file
            return False, [], False
        try:
            index = partial.blocks.index(block)
        except ValueError:
            return False, [], False
        if partial.received[index]:
            partial.requested[index].discard(peer)
            return False, [], False
        if not self._allowed(partial, block.piece, peer):
            return False, [], False  # a suspect piece takes blocks from its owner only
        partial.received[index] = True
        partial.sources[index] = peer
        others = [(p, block) for p in sorted(partial.requested[index]) if p != peer]
        partial.requested[index].clear()
        return True, others, partial.missing() == 0

    def block_failed(self, peer: str, block: Block) -> None:
        """A received block failed its leaf hash: it is fetched again, not from ``peer``,
        which takes the blame (the caller decides what that costs it) and is not asked for
        this piece again (a block just sent is not served twice: asking the sender again
        at once would wait for its request to time out)."""
        partial = self._partial.get(block.piece)
        if partial is None:
            return
        self._tainted.setdefault(block.piece, set()).add(peer)
        try:
            index = partial.blocks.index(block)
        except ValueError:
            return
        if partial.sources[index] == peer:
            partial.received[index] = False
            partial.sources[index] = None

    def piece_verified(self, piece: int) -> list[tuple[str, Block]]:
        """The piece passed its hash check. Returns requests still out for it (to cancel)."""
        self.have[piece] = True
        self._suspect.discard(piece)
        self._tainted.pop(piece, None)
        for masks in self.peer_blocks.values():
            masks.pop(piece, None)
        partial = self._partial.pop(piece, None)
        if partial is None:
            return []
        return [(p, b) for b, who in zip(partial.blocks, partial.requested) for p in sorted(who)]

    def piece_unstored(self, piece: int) -> list[tuple[str, Block]]:
        """The piece passed its hash check but could not be stored (the disk is full):
        it is fetched again, nobody is blamed. Returns requests still out for it (to cancel)."""
        partial = self._partial.pop(piece, None)
        if partial is None:
            return []
        return [(p, b) for b, who in zip(partial.blocks, partial.requested) for p in sorted(who)]

    def piece_failed(self, piece: int) -> tuple[str | None, list[tuple[str, Block]]]:
        """The piece failed its hash check: every block is fetched again. Returns (the peer
        to blame — the only one that sent blocks of it — or None, requests to cancel).
        The blamed peer is never asked for the piece again; with nobody to blame the piece
        turns suspect (fetched whole from one peer, so the next failure names someone)."""
        partial = self._partial.pop(piece, None)
        senders = {s for s in partial.sources if s is not None} if partial is not None else set()
        blame = senders.pop() if len(senders) == 1 else None
        if blame is None:
            self._suspect.add(piece)
        else:
            self._tainted.setdefault(piece, set()).add(blame)
        if partial is None:
            return blame, []
        cancels = [(p, b) for b, who in zip(partial.blocks, partial.requested) for p in sorted(who)]
        return blame, cancels


__all__ = ["DEFAULT_BLOCK", "Block", "MissingBlocks", "PiecePicker"]
