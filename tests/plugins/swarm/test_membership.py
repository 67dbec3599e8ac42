"""Swarm membership rules that need no network (sans-IO)."""

from __future__ import annotations

from typing import Any, cast

from p2pkit.plugins.swarm._state import Link, PeerState, stale_members

from p2pkit.peers import Peer


def _member(*, pieces: list[bool] | None, asked_at: float = 0.0, am_interested: bool = False,
            peer_interested: bool = False) -> PeerState:
    # the rule reads only the member's state; the link is never used
    ps = PeerState(Link(cast(Peer, cast(Any, None))), pieces=pieces,
                   am_interested=am_interested, peer_interested=peer_interested)
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
