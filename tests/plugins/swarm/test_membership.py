"""Swarm membership rules that need no network (sans-IO)."""

from __future__ import annotations

from typing import Any, cast

from p2pkit.plugins.swarm import _messages as msg
from p2pkit.plugins.swarm._state import (
    Link,
    PeerState,
    block_updates,
    piece_news,
    room_victim,
    stale_members,
)

from p2pkit.peers import Peer


def _member(*, pieces: list[bool] | None, asked_at: float = 0.0, am_interested: bool = False,
            peer_interested: bool = False, am_choking: bool = True,
            joined_at: float = 0.0) -> PeerState:
    # the rule reads only the member's state; the link is never used
    ps = PeerState(Link(cast(Peer, cast(Any, None))), pieces=pieces, joined_at=joined_at,
                   am_interested=am_interested, peer_interested=peer_interested,
                   am_choking=am_choking)
    ps.asked_at = asked_at
    return ps


def test_a_member_of_no_use_either_way_is_asked_again_after_a_while() -> None:
    """A member that dropped us from its own full swarm only said Choke and then stopped
    sending us its Haves: to us it still holds its few old pieces. Showing it our bitfield
    again (every couple of seconds) lets it take us back and tell us what it has now —
    at N = 100 the last leechers sat among 24 such members out of 30 while the swarm
    was full of seeds (last finish 18.9 s -> 15.6 s)."""
    peers = {
        "stale": _member(pieces=[True, False, False]),
        "useful": _member(pieces=[True, True, False], am_interested=True),
        "wants_us": _member(pieces=[False, False, False], peer_interested=True),
        "seed": _member(pieces=[True, True, True]),
        "refuser": _member(pieces=None),  # never answered: handled as a refusal instead
        "asked_recently": _member(pieces=[True, False, False], asked_at=9.5),
    }
    assert stale_members(peers, 10.0, after=2.0) == ["stale"]
    assert sorted(stale_members(peers, 11.5, after=2.0)) == ["asked_recently", "stale"]


def _victim(peers: dict[str, PeerState], *, seeding: bool = False, now: float = 1.0) -> str | None:
    # nothing any member holds is of interest to us unless it is named "has_news"
    return room_victim(peers, now, interesting=lambda pid: pid == "has_news",
                       seeding=seeding, refused_after=2.0)


def test_an_unchoked_member_is_not_dropped_before_it_can_say_it_is_interested() -> None:
    """An origin shows an injection target its piece and unchokes it at once; the target
    says Interested a round trip later. Dropped for the next newcomer in between, the
    piece went to the next target, and the next: at N = 100 the first four pieces went to
    sixteen targets in 50 ms, and what had been sent to the dropped ones was wasted."""
    peers = {
        "target": _member(pieces=[False, False], am_choking=False),
        "idle": _member(pieces=[False, False]),
    }
    assert _victim(peers) == "idle"
    del peers["idle"]
    assert _victim(peers) is None  # a full swarm of useful members refuses the newcomer


def test_room_is_made_in_order_refused_then_seeds_then_idle() -> None:
    peers = {
        "idle": _member(pieces=[True, False]),
        "has_news": _member(pieces=[True, False]),  # holds what we lack (interesting)
        "seed": _member(pieces=[True, True]),
        "interested": _member(pieces=[False, False], peer_interested=True),
        "new": _member(pieces=None, joined_at=0.5),  # has had no time to answer yet
    }
    assert _victim(peers, seeding=True) == "seed"
    assert _victim(peers) == "idle"  # not seeding: the first member of no use
    peers["refuser"] = _member(pieces=None, joined_at=0.0)
    assert _victim(peers, now=2.5) == "refuser"
    assert _victim(peers, now=1.0) == "idle"


def test_a_verified_piece_is_news_only_to_members_that_lack_it() -> None:
    """A Have to a member that holds the piece tells it nothing it can use (41 % of all
    Haves at N = 100); once we are complete every member that is not a seed gets our
    whole bitfield instead, so that those we did not tell learn that we are a seed."""
    key = bytes(32)
    lacks = _member(pieces=[False, False, False])
    holds = _member(pieces=[False, True, False])
    seed = _member(pieces=[True, True, True])
    unknown = _member(pieces=None)  # its bitfield has not come yet
    assert piece_news(lacks, key, 1, None) == msg.Have(key, 1)
    assert piece_news(holds, key, 1, None) is None
    assert piece_news(seed, key, 1, None) is None
    assert piece_news(unknown, key, 1, None) == msg.Have(key, 1)
    whole = msg.Bitfield(key, msg.pack_bits([True, True, True]))  # the last piece came
    assert piece_news(holds, key, 2, whole) == whole
    assert piece_news(lacks, key, 2, whole) == whole
    assert piece_news(seed, key, 2, whole) is None


def test_the_blocks_updates_due_together_reach_each_member_in_one_message() -> None:
    """Updates go to the members we unchoke that are interested, each with every due
    piece it lacks at once: one message instead of one per piece."""
    peers = {
        "asks": _member(pieces=[False, False, False], peer_interested=True, am_choking=False),
        "has_one": _member(pieces=[False, True, False], peer_interested=True, am_choking=False),
        "has_all": _member(pieces=[True, True, False], peer_interested=True, am_choking=False),
        "choked": _member(pieces=[False, False, False], peer_interested=True),
        "not_interested": _member(pieces=[False, False, False], am_choking=False),
        "no_bitfield": _member(pieces=None, peer_interested=True, am_choking=False),
    }
    assert block_updates(peers, [0, 1]) == {"asks": [0, 1], "has_one": [0]}
    assert block_updates(peers, []) == {}
