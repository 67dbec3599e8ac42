import random

import pytest
from p2pkit.plugins.swarm._picker import Block, PiecePicker

K = 1024


def picker(pieces: int = 10, piece: int = 64 * K, block: int = 16 * K, **kw: object) -> PiecePicker:
    return PiecePicker([piece] * pieces, block_size=block, rng=random.Random(1), **kw)  # type: ignore[arg-type]


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


def test_unrequested_block_is_not_expected() -> None:
    p = picker(pieces=2)
    p.add_peer("a", [True, True])
    assert p.on_block("a", Block(0, 0, 16 * K))[0] is False
    assert p.on_block("a", Block(7, 0, 16 * K))[0] is False


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


def test_mixed_bad_piece_is_refetched_from_one_peer() -> None:
    p = picker(pieces=1)
    p.add_peer("a", [True])
    p.add_peer("b", [True])
    for b in p.pick("a", 2):
        p.on_block("a", b)
    for b in p.pick("b", 2):
        p.on_block("b", b)
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


def test_stale_requests_are_also_asked_of_another_peer() -> None:
    p = picker(pieces=8, random_first=0)
    p.add_peer("slow", [True] * 8)
    slow = p.pick("slow", 16, now=0.0)  # four pieces in flight from the slow peer
    taken = {b.piece for b in slow}
    assert len(slow) == 16 and len(taken) == 4 and not p.in_endgame()
    p.add_peer("fast", [i in taken for i in range(8)])  # has only what slow is sending
    assert p.pick("fast", 4, now=1.0, stale_after=2.0) == []  # not stale yet
    again = p.pick("fast", 4, now=3.0, stale_after=2.0)
    assert len(again) == 4 and set(again) <= set(slow)
    assert p.pick("fast", 4, now=3.0, stale_after=2.0)[0] not in again  # next ones
    expected, cancels, _ = p.on_block("fast", again[0])
    assert expected and cancels == [("slow", again[0])]  # the slow copy is cancelled
