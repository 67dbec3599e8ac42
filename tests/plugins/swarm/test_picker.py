import random

import pytest
from p2pkit.plugins.swarm._picker import Block, PiecePicker

K = 1024


def picker(pieces: int = 10, piece: int = 64 * K, block: int = 16 * K, **kw: object) -> PiecePicker:
    return PiecePicker([piece] * pieces, block_size=block, rng=random.Random(1), **kw)  # type: ignore[arg-type]


def one_piece_from_two_peers() -> PiecePicker:
    """One 64 KiB piece, its first two blocks from peer "a", the last two from "b"."""
    p = picker(pieces=1)
    p.add_peer("a", [True])
    p.add_peer("b", [True])
    for b in p.pick("a", 2):
        p.on_block("a", b)
    for b in p.pick("b", 2):
        p.on_block("b", b)
    return p


def test_blocks_cover_pieces_and_short_last_piece() -> None:
    p = PiecePicker([64 * K, 64 * K, 10 * K], block_size=16 * K, rng=random.Random(0), random_first=0)
    p.add_peer("a", [True] * 3)
    blocks = p.pick("a", 100)
    assert sorted(blocks) == [Block(0, o, 16 * K) for o in range(0, 64 * K, 16 * K)] + [
        Block(1, o, 16 * K) for o in range(0, 64 * K, 16 * K)] + [Block(2, 0, 10 * K)]
    assert p.pick("a", 5) == []  # endgame never asks a peer twice for the same block


def test_rarest_first_after_random_first() -> None:
    p = picker(pieces=5, random_first=0)
    p.add_peer("a", [True] * 5)
    p.add_peer("b", [True, True, False, True, True])
    p.add_peer("c", [True, False, False, True, False])
    # piece 2 is held by one peer only: rarest
    assert p.pick("a", 1)[0].piece == 2


def test_random_first_pieces_spread_over_nodes() -> None:
    firsts = set()
    for seed in range(20):
        p = PiecePicker([64 * K] * 50, block_size=64 * K, rng=random.Random(seed))
        p.add_peer("seed", [True] * 50)
        firsts.add(p.pick("seed", 1)[0].piece)
    assert len(firsts) > 5


def test_started_piece_is_finished_first() -> None:
    p = picker(random_first=0)
    p.add_peer("a", [True] * 10)
    first = p.pick("a", 1)[0]
    p.add_peer("b", [True] * 10)
    assert p.pick("b", 3) == [Block(first.piece, o, 16 * K) for o in (16 * K, 32 * K, 48 * K)]


def test_piece_complete_and_verified() -> None:
    p = picker(pieces=1)
    p.add_peer("a", [True])
    blocks = p.pick("a", 10)
    results = [p.on_block("a", b) for b in blocks]
    assert [r[2] for r in results] == [False, False, False, True]
    assert all(r[0] for r in results)
    p.piece_verified(0)
    assert p.complete and not p.interesting("a")
    assert p.on_block("a", blocks[0]) == (False, [], False)  # late duplicate ignored


def test_late_block_of_a_missing_piece_is_kept_but_not_garbage() -> None:
    # A block already on its way when we were choked (or moved the request) still fills
    # a hole: the uploader paid for it. Off-grid, out-of-range or owned blocks are not.
    p = picker(pieces=2, random_first=0)
    p.add_peer("a", [True, False])
    p.add_peer("b", [True, True])
    assert p.pick("a", 1) == [Block(0, 0, 16 * K)]
    p.forget_requests("a")  # choked: "a" will not deliver it
    assert p.on_block("a", Block(0, 0, 16 * K)) == (True, [], False)
    assert p.on_block("a", Block(0, 0, 16 * K))[0] is False  # now a duplicate
    assert p.on_block("a", Block(7, 0, 16 * K))[0] is False
    assert p.on_block("a", Block(0, 8 * K, 16 * K))[0] is False  # not on the block grid
    assert p.on_block("a", Block(0, 48 * K, 32 * K))[0] is False  # past the piece end
    # the late block counts: the rest of the piece is what is still asked for
    assert sorted(b.offset for b in p.pick("a", 3)) == [16 * K, 32 * K, 48 * K]


def test_a_block_of_a_piece_nobody_was_asked_for_is_not_taken() -> None:
    # each one would have made us hold a piece-sized buffer: a peer sending one block of
    # every piece had the downloader hold the whole file in memory
    p = picker(pieces=2)
    p.add_peer("a", [True, True])
    assert p.on_block("a", Block(1, 0, 16 * K)) == (False, [], False)
    assert p.pick("a", 100) and p.on_block("a", Block(1, 0, 16 * K))[0] in (True, False)


def test_late_block_of_a_suspect_piece_only_from_its_owner() -> None:
    p = one_piece_from_two_peers()
    p.piece_failed(0)  # mixed sources: suspect, refetched whole from one peer
    owned = p.pick("a", 4)
    assert len(owned) == 4
    assert p.on_block("b", owned[0])[0] is False


def test_endgame_duplicates_requests_and_cancels_the_losers() -> None:
    p = picker(pieces=1)
    p.add_peer("a", [True])
    p.add_peer("b", [True])
    blocks = p.pick("a", 10)
    assert not p.in_endgame() or len(blocks) == 4
    assert p.in_endgame()
    dup = p.pick("b", 10)
    assert sorted(dup) == sorted(blocks)
    expected, cancels, _ = p.on_block("b", blocks[0])
    assert expected and cancels == [("a", blocks[0])]
    assert p.on_block("a", blocks[0])[0] is False  # the loser's copy is a duplicate


def test_peer_leaving_returns_its_requests() -> None:
    p = picker(pieces=2, random_first=0)
    p.add_peer("a", [True, True])
    p.add_peer("b", [True, True])
    got = p.pick("a", 8)
    assert len(got) == 8 and p.pick("b", 8) != [] and p.in_endgame()
    p.remove_peer("a")
    assert p.availability == [1, 1]
    assert p.outstanding("a") == []
    p.pick("b", 100)
    assert set(p.outstanding("b")) == set(got)  # b now fetches everything a had


def test_peer_leaving_outside_endgame_frees_its_blocks_for_others() -> None:
    p = picker(pieces=4, random_first=0)
    p.add_peer("a", [True] * 4)
    got = p.pick("a", 4)
    p.remove_peer("a")
    p.add_peer("b", [True] * 4)
    assert p.pick("b", 4) == got


def test_choke_forgets_only_given_blocks() -> None:
    p = picker(pieces=1)
    p.add_peer("a", [True])
    got = p.pick("a", 4)
    p.forget_requests("a", got[:2])
    assert sorted(p.outstanding("a")) == sorted(got[2:])


def test_deadline_mode_prefers_pieces_at_the_playhead() -> None:
    p = picker(pieces=20, random_first=0)
    p.add_peer("a", [True] * 20)
    p.add_peer("b", [True] * 10 + [False] * 10)  # makes 10..19 rarer
    p.set_deadline(5, window=2)
    picked = p.pick("a", 8)
    assert [b.piece for b in picked] == [5] * 4 + [6] * 4
    p.set_deadline(None)
    assert p.pick("a", 1)[0].piece >= 10  # back to rarest first


def test_single_sender_of_a_bad_piece_is_blamed() -> None:
    p = picker(pieces=1)
    p.add_peer("evil", [True])
    for b in p.pick("evil", 4):
        p.on_block("evil", b)
    blame, _ = p.piece_failed(0)
    assert blame == "evil" and not p.have[0]


def test_the_sender_of_a_bad_piece_is_never_asked_for_it_again() -> None:
    """It served the piece corrupted, then went silent: the honest seeder that joined
    after must be asked for it (the liar kept the piece to itself and the download
    stalled for good)."""
    p = picker(pieces=1)
    p.add_peer("liar", [True])
    for b in p.pick("liar", 4):
        p.on_block("liar", b)
    assert p.piece_failed(0)[0] == "liar"
    assert p.pick("liar", 4) == []
    p.add_peer("honest", [True])
    again = p.pick("honest", 4)
    assert len(again) == 4
    assert p.on_block("liar", again[0])[0] is False  # nor is a copy taken from it
    for b in again:
        p.on_block("honest", b)
    p.piece_verified(0)
    assert p.complete


@pytest.mark.parametrize("gives_up", ["choke", "timeout", "lost"])
def test_the_one_peer_a_suspect_piece_is_refetched_from_can_lose_it(gives_up: str) -> None:
    """The peer chosen to send a suspect piece whole chokes us, lets its requests time
    out or says it lost the piece: another takes the piece (it was held by the first
    for ever)."""
    p = one_piece_from_two_peers()
    p.piece_failed(0)
    owned = p.pick("a", 4)
    assert len(owned) == 4 and p.pick("b", 4) == []
    if gives_up == "choke":
        assert p.forget_requests("a", [])  # a Choke with nothing asked of it
    elif gives_up == "timeout":
        assert p.forget_requests("a", owned[:1])
    else:
        p.peer_lacks("a", 0)
    assert len(p.pick("b", 4)) == 4


def test_mixed_bad_piece_is_refetched_from_one_peer() -> None:
    p = one_piece_from_two_peers()
    blame, _ = p.piece_failed(0)
    assert blame is None  # nobody convicted on mixed evidence
    first = p.pick("a", 4)
    assert len(first) == 4 and p.pick("b", 4) == []  # the retry comes from one peer only
    for b in first[:3]:
        p.on_block("a", b)
    p.remove_peer("a")  # the owner left: the suspect piece starts over with someone else
    assert len(p.pick("b", 4)) == 4


def test_bad_bitfield_length() -> None:
    with pytest.raises(ValueError):
        picker(pieces=3).add_peer("a", [True])


def test_stale_requests_are_moved_to_an_idle_peer_oldest_first() -> None:
    p = picker(pieces=8, random_first=0)
    p.add_peer("slow", [True] * 8)
    early = p.pick("slow", 8, now=0.0)
    late = p.pick("slow", 8, now=0.5)  # four pieces in flight from the slow peer
    taken = {b.piece for b in early + late}
    assert len(taken) == 4 and not p.in_endgame()
    p.add_peer("fast", [i in taken for i in range(8)])  # has only what slow is sending
    assert p.pick("fast", 4, now=1.0, stale_after=2.0) == []  # not stale yet
    assert p.stolen == []
    moved = p.pick("fast", 4, now=2.2, stale_after=2.0)
    assert sorted(moved) == sorted(early[:4])  # the oldest requests, not the newer ones
    # moved, not duplicated: the slow peer's requests are handed back for cancelling
    assert sorted(p.stolen) == sorted(("slow", b) for b in moved)
    assert all(b not in p.outstanding("slow") for b in moved)
    assert all(b in p.outstanding("fast") for b in moved)
    p.stolen.clear()
    # a late copy from the slow peer still counts if it wins the race
    expected, cancels, _ = p.on_block("slow", moved[0])
    assert expected and cancels == [("fast", moved[0])]


def test_a_vetoed_move_leaves_the_request_where_it_is() -> None:
    """The caller may refuse to move a stale request (the old peer is about to send it):
    it stays with the old peer, and the next stale block takes its place."""
    p = picker(pieces=8, random_first=0)
    p.add_peer("slow", [True] * 8)
    asked = p.pick("slow", 8, now=0.0)
    p.add_peer("fast", [i in {b.piece for b in asked} for i in range(8)])  # only those
    head = asked[0]
    moved = p.pick("fast", 2, now=3.0, stale_after=2.0, may_steal=lambda olds, b: b != head)
    assert head not in moved and len(moved) == 2
    assert head in p.outstanding("slow") and head not in p.outstanding("fast")
    assert sorted(p.stolen) == sorted(("slow", b) for b in moved)


def test_endgame_duplicates_are_limited_and_go_to_the_least_covered_blocks() -> None:
    p = picker(pieces=1)
    for peer in "abc":
        p.add_peer(peer, [True])
    blocks = p.pick("a", 2, now=0.0) + p.pick("b", 2, now=1.0)
    assert p.in_endgame()
    dup = p.pick("c", 10, now=2.0, endgame_count=1)
    assert dup == [blocks[0]]  # one duplicate only, the longest outstanding block
    assert p.pick("c", 10, now=2.0, endgame_count=0) == []
    dup2 = p.pick("c", 10, now=2.0, endgame_count=1)
    assert dup2 == [blocks[1]]  # then the next oldest block held by a single peer
    # without a limit, every block in flight from others is duplicated (the old rule)
    assert sorted(p.pick("c", 10, now=2.0)) == sorted(blocks[2:])


def test_endgame_does_not_duplicate_a_block_its_holder_sends_sooner() -> None:
    """The caller vetoes a duplicate that the peer it was asked of would deliver before
    the idle one could (the head of its queue): the copy would only arrive second. The
    next block takes its place."""
    p = picker(pieces=1)
    for peer in "abc":
        p.add_peer(peer, [True])
    blocks = p.pick("a", 2, now=0.0) + p.pick("b", 2, now=1.0)
    assert p.in_endgame()
    dup = p.pick("c", 10, now=2.0, endgame_count=1, may_steal=lambda olds, b: b != blocks[0])
    assert dup == [blocks[1]]
    assert p.pick("c", 10, now=2.0, endgame_count=1, may_steal=lambda olds, b: False) == []


def test_piece_only_the_asked_peer_holds_comes_before_a_common_partial_one() -> None:
    # Early on the seeder's uplink is the only source of new pieces: a piece we started
    # from another peer (who has it too) must not take it.
    p = picker(pieces=4)  # random first (no piece complete yet)
    p.add_peer("seed", [True] * 4)
    p.add_peer("leech", [True, False, False, False])
    assert p.pick("leech", 1)[0].piece == 0  # piece 0 is now partial
    assert all(b.piece != 0 for b in p.pick("seed", 4))


def test_rarest_piece_beats_a_partial_common_one_after_random_first() -> None:
    p = picker(pieces=6, random_first=0)
    p.add_peer("a", [True] * 6)
    p.add_peer("b", [True, True, True, True, True, False])
    p.add_peer("c", [True, True, True, True, True, False])
    started = p.pick("b", 1)[0].piece  # availability 3
    assert started != 5
    assert p.pick("a", 1)[0].piece == 5  # held by "a" alone


# ---------------------------------------------------------------- relayed blocks


def relay_picker() -> PiecePicker:
    """Two 64 KiB pieces (four 16 KiB blocks each); "r" holds neither whole."""
    p = picker(pieces=2, random_first=0)
    p.add_peer("r", [False, False])
    return p


def test_relayed_blocks_are_asked_only_as_far_as_offered() -> None:
    p = relay_picker()
    assert not p.interesting("r") and p.pick("r", 10) == []
    p.set_peer_blocks("r", 1, 0b0011)  # leaves (= blocks) 0 and 1 of piece 1
    assert p.interesting("r")
    assert p.pick("r", 10) == [Block(1, 0, 16 * K), Block(1, 16 * K, 16 * K)]
    assert p.pick("r", 10) == []  # both in flight; nothing else offered
    p.set_peer_blocks("r", 1, 0b0111)
    assert p.pick("r", 10) == [Block(1, 32 * K, 16 * K)]


def test_interest_in_a_relay_ends_when_its_blocks_came_from_elsewhere() -> None:
    p = relay_picker()
    p.add_peer("s", [True, True])
    p.set_peer_blocks("r", 0, 0b0001)
    assert p.interesting("r")
    assert p.pick("r", 10) == [Block(0, 0, 16 * K)]
    p.forget_requests("r")  # say it choked us
    assert p.on_block("s", Block(0, 0, 16 * K))[0]  # a late block (a moved request): kept
    assert not p.interesting("r")
    assert p.pick("r", 10) == []


def test_wider_blocks_need_every_leaf_offered() -> None:
    p = picker(pieces=1, block=32 * K, random_first=0)
    p.add_peer("r", [False])
    p.set_peer_blocks("r", 0, 0b0111)  # leaves 0-2: block 0 (leaves 0-1) only
    assert p.pick("r", 10) == [Block(0, 0, 32 * K)]


def test_masks_go_when_the_piece_is_whole_somewhere() -> None:
    p = relay_picker()
    p.set_peer_blocks("r", 0, 0b1111)
    p.peer_has("r", 0)  # its Have supersedes the mask
    assert p.peer_blocks["r"] == {}
    p.set_peer_blocks("r", 0, 0b1)  # a late mask for a piece it holds is ignored
    assert p.peer_blocks["r"] == {}
    p.add_peer("x", [False, False])
    p.set_peer_blocks("x", 1, 0b1111)
    p.remove_peer("x")
    assert "x" not in p.peer_blocks


def test_a_block_that_failed_its_leaf_hash_is_asked_again() -> None:
    p = relay_picker()
    p.set_peer_blocks("r", 0, 0b1111)
    first = p.pick("r", 1)[0]
    p.on_block("r", first)
    p.block_failed("r", first)
    p.add_peer("s", [True, True])
    assert first in p.pick("s", 10)
    p.block_failed("s", Block(0, 0, 5))  # not a block of the grid: ignored


def test_missing_blocks_are_told_apart_by_what_they_wait_for() -> None:
    """The diagnostic behind SwarmProvider.diagnose: every block we lack is asked of a
    peer, held by a peer we may ask, held only by members that choke us, or held by no
    member — each exactly once, and looking changes nothing."""
    p = picker(pieces=3, random_first=0)
    p.add_peer("a", [True, False, False])  # unchokes us
    p.add_peer("b", [False, True, False])  # chokes us
    p.add_peer("c", [False, False, False])  # unchokes us; holds one checked block of piece 1
    p.set_peer_blocks("c", 1, 0b0001)
    asked = p.pick("a", 1)
    assert asked == [Block(0, 0, 16 * K)]
    missing = p.missing_blocks(lambda peer: peer in {"a", "c"})
    assert missing.asked == 1 and missing.requested == {"a": 1}
    assert missing.askable == [(Block(0, o, 16 * K), ("a",)) for o in (16 * K, 32 * K, 48 * K)] + [
        (Block(1, 0, 16 * K), ("c",))]
    assert missing.choked == 3  # piece 1's other blocks: only "b"
    assert missing.unseen == 4  # piece 2: nobody
    assert missing.total == 12 == 3 * 4
    assert p.missing_blocks(lambda peer: True).choked == 0  # "b" may be asked once it unchokes
    p.on_block("a", asked[0])
    after = p.missing_blocks(lambda peer: peer in {"a", "c"})
    assert after.asked == 0 and after.total == 11
    assert p.pick("a", 1) == [Block(0, 16 * K, 16 * K)]  # the picker went on as before
