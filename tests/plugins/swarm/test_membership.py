"""Swarm membership rules that need no network (sans-IO)."""

from __future__ import annotations

from typing import Any, cast

from p2pkit.plugins.swarm._state import Link, PeerState, room_victim, stale_members

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
