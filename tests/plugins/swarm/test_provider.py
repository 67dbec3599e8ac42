"""The swarm provider's pacing of uploads into the transport, without a network."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from p2pkit.plugins.swarm._provider import SESSION_BACKLOG_S, SwarmProvider


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
