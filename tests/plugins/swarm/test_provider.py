"""The swarm provider without a network: its pacing of uploads into the transport, when it
rejects a request for its backlog, what it tells a newcomer about the other members, and
when it sends a piece's leaf hashes."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
import trio
from p2pkit.plugins.swarm import _messages as msg
from p2pkit.plugins.swarm._provider import (
    PEX_TOLD,
    SESSION_BACKLOG_S,
    UPLOAD_BACKLOG_MIN,
    UPLOAD_BACKLOG_S,
    SwarmProvider,
)
from p2pkit.plugins.swarm._state import Link, PeerState


class StatsPeer:
    """A peer whose session reports fixed transport statistics."""

    def __init__(self, **stats: Any) -> None:
        self._stats = stats

    def stats(self) -> dict[str, Any]:
        return self._stats


def session(**stats: Any) -> Any:  # a Peer as far as _session_backlog looks
    return StatsPeer(**stats)


def provider() -> SwarmProvider:
    return SwarmProvider(SimpleNamespace(id="ab" * 32))  # no config: the defaults


def test_a_short_session_queue_takes_the_next_block_at_once() -> None:
    peer = session(send_queue_bytes=10_000, pacing_rate_Bps=1e6, send_rate_Bps=1e6)
    assert provider()._session_backlog(peer) == 0.0


def test_a_long_session_queue_waits_until_it_has_drained_to_the_mark() -> None:
    # 2 MB/s: the mark is 100 kB (SESSION_BACKLOG_S of the rate); 50 kB above it
    peer = session(send_queue_bytes=150_000, pacing_rate_Bps=2e6, send_rate_Bps=1e6)
    assert provider()._session_backlog(peer) == pytest.approx(0.025)


def test_a_momentarily_slow_session_is_looked_at_again_soon() -> None:
    """At N = 100 a seed priced the two blocks in a session's queue at its pacing rate of
    the moment (12 kB/s: it had been sending little) and slept 0.76 s; the session sent them
    in milliseconds, and a last leecher's last block sat in the seed's upload queue the
    whole time. The writer now looks again after at most SESSION_BACKLOG_S."""
    peer = session(send_queue_bytes=28_826, pacing_rate_Bps=12_680.0, send_rate_Bps=10_188.0)
    assert 0 < provider()._session_backlog(peer) <= SESSION_BACKLOG_S


def uploading(queued: int, rate: float) -> SwarmProvider:
    """A provider that has sent ``rate`` bytes/s for a second and has ``queued`` bytes of
    requests waiting to be uploaded."""
    p = provider()
    p._now = lambda: 10.0  # type: ignore[method-assign]
    for i in range(10):
        p.up.add(int(rate / 10), 9.0 + i / 10)
    p.links["x"] = SimpleNamespace(upload_bytes=queued)  # type: ignore[assignment]
    return p


def test_a_request_that_would_wait_longer_than_the_backlog_allows_is_rejected() -> None:
    """At N = 100 the last blocks waited 0.2 s (median) between request and arrival in
    seeds' queues of 0.1 s of their rate, while other uplinks had room; a round trip is
    0.05-0.09 s. A request that would wait behind more than UPLOAD_BACKLOG_S of our
    uploads is rejected, so that it is asked of a peer that can send it sooner."""
    rate = 2e6
    assert UPLOAD_BACKLOG_S < 0.1 and rate * UPLOAD_BACKLOG_S > UPLOAD_BACKLOG_MIN
    fits = uploading(int(rate * UPLOAD_BACKLOG_S * 0.95), rate)
    assert not fits._upload_backlog_full()
    full = uploading(int(rate * UPLOAD_BACKLOG_S * 1.05), rate)
    assert full._upload_backlog_full()
    assert full.counters["rejects_backlog"] == 1


def test_a_small_backlog_is_never_rejected_however_fast_the_uplink() -> None:
    p = uploading(UPLOAD_BACKLOG_MIN - 1, rate=50e6)  # 1.3 ms of a fast uplink
    assert not p._upload_backlog_full()


def members(n: int) -> Any:  # a torrent as far as _pex looks: its members' addresses
    return SimpleNamespace(peers={
        f"p{i}": SimpleNamespace(peer=SimpleNamespace(listen_address=(f"10.0.0.{i}", 7700)))
        for i in range(n)})


def test_a_newcomer_is_told_a_random_few_members_not_the_whole_swarm() -> None:
    """At N = 100 every newcomer was told fifty addresses by each member: 3.5 MB of lists
    in the first 0.75 s, and nodes dialling into full swarms that answered with fifty more.
    A handful from each member is enough to find the rest."""
    p = provider()
    swarm = members(40)
    told = [p._pex(swarm, exclude="p0") for _ in range(20)]
    for addresses in told:
        assert len(addresses) == PEX_TOLD < 39
        assert len(set(addresses)) == PEX_TOLD
        assert ("10.0.0.0", 7700) not in addresses  # not the newcomer itself
    assert len({a for addresses in told for a in addresses}) > 2 * PEX_TOLD  # not always the same few


def test_a_small_swarm_is_told_in_full() -> None:
    assert sorted(provider()._pex(members(4), exclude="p3")) == [
        ("10.0.0.0", 7700), ("10.0.0.1", 7700), ("10.0.0.2", 7700)]


class RecordingPeer:
    """A session that keeps what the provider sends on it."""

    id = "cd" * 32
    enabled = True

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.closed = trio.Event()

    async def send(self, protocol: str, data: bytes, *, channel: int) -> None:
        self.sent.append(msg.decode(data))


def uploads_to(requests: list[msg.Request]) -> list[str]:
    """The messages a provider sends a peer for ``requests`` of one piece it holds: the
    leaf hashes are sent once, and only to a peer that asked for them."""
    p = provider()
    p.node.settings = SimpleNamespace(p2p_enabled=True)
    peer = RecordingPeer()
    ps = PeerState(Link(peer))  # type: ignore[arg-type]
    ps.am_choking = False
    t = SimpleNamespace(peers={peer.id: ps}, injection=None, bytes_to=Counter())
    p.torrents["r" * 64] = t  # type: ignore[assignment]
    p._block_to_send = lambda t, m: (b"x" * m.length, [b"h" * 32] * 16)  # type: ignore[method-assign]

    async def main() -> None:
        for request in requests:
            await p._upload(ps.link, "r" * 64, request)

    trio.run(main)
    return [type(m).__name__ for m in peer.sent]


def test_a_peer_that_holds_a_piece_s_leaf_hashes_is_not_sent_them_again() -> None:
    """Two thirds of the Leaves messages (548 bytes each) told a downloader the hashes it
    already had from the piece's first source (benchmark, --quick); it now says so in its
    request."""
    rid = bytes.fromhex("ab" * 32)
    asked = [msg.Request(rid, 0, 0, 16384), msg.Request(rid, 0, 16384, 16384)]
    assert uploads_to(asked) == ["Leaves", "Piece", "Piece"]
    held = [msg.Request(rid, 0, 0, 16384, leaves=False)]
    assert uploads_to(held) == ["Piece"]
