"""Handshake edge cases, heartbeat, idle timeout, graceful and abortive close."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest
from p2pkit.plugins.rudp import RudpConfig
from p2pkit.plugins.rudp.connection import Connection, ConnectionState
from p2pkit.plugins.rudp.mux import Multiplexer
from p2pkit.plugins.rudp.packet import (
    ACK,
    DATA,
    PING,
    SYN,
    SYN_ACK,
    encode_handshake,
    encode_header,
)

from p2pkit import ConfigError, SessionClosed

from .fakenet import A, Address, B, FakeNet, connected_pair, drain, send_times

ESTABLISHED = ConnectionState.ESTABLISHED
CLOSED = ConnectionState.CLOSED


def drop_first(ptype: int, count: int = 1, src: Address | None = None,
               ) -> Callable[[bytes, Address, Address], bool]:
    left = {"n": count}

    def drop(data: bytes, s: Address, d: Address) -> bool:
        if data[2] == ptype and (src is None or s == src) and left["n"] > 0:
            left["n"] -= 1
            return True
        return False

    return drop


def exchange(net: FakeNet, ca: Connection, cb: Connection) -> None:
    ca.send(b"ping", 1)
    cb.send(b"pong", 1)
    got_a: list[tuple[int, bytes]] = []
    got_b: list[tuple[int, bytes]] = []
    assert net.run_until(lambda: (drain(ca, got_a), drain(cb, got_b)) and bool(got_a and got_b), 30)
    assert got_b == [(1, b"ping")] and got_a == [(1, b"pong")]


@pytest.mark.parametrize("lost", [SYN, SYN_ACK, ACK], ids=["lost_syn", "lost_syn_ack", "lost_final_ack"])
def test_handshake_survives_a_lost_packet(lost: int) -> None:
    net = FakeNet(seed=1, drop=drop_first(lost))
    a = net.add_host(A)
    b = net.add_host(B)
    ca = a.connect(B, net.now)
    assert net.run_until(lambda: ca.is_established and bool(b.accept_queue), 30)
    cb = b.accept()
    assert cb is not None
    exchange(net, ca, cb)
    assert net.dropped == 1


def test_lost_final_ack_is_repaired_by_the_first_data_packet() -> None:
    net = FakeNet(seed=1, drop=drop_first(ACK, src=A))
    a, b = net.add_host(A), net.add_host(B)
    ca = a.connect(B, net.now)
    assert net.run_until(lambda: ca.is_established, 5)
    ca.send(b"first", 1)  # carries the ack the lost ACK carried
    assert net.run_until(lambda: bool(b.accept_queue), 0.5)  # well before a SYN_ACK retry
    cb = b.accept()
    assert cb is not None
    got: list[tuple[int, bytes]] = []
    assert net.run_until(lambda: drain(cb, got) >= 0 and bool(got), 1)
    assert got == [(1, b"first")]


def test_simultaneous_open_makes_one_session_each_side() -> None:
    net = FakeNet(seed=2)
    a, b = net.add_host(A), net.add_host(B)
    ca = a.connect(B, net.now)
    cb = b.connect(A, net.now)
    assert net.run_until(lambda: ca.is_established and cb.is_established, 30)
    assert len(a.connections) == 1 and len(b.connections) == 1
    assert not a.accept_queue and not b.accept_queue
    assert ca.peer_cid == cb.local_cid and cb.peer_cid == ca.local_cid
    exchange(net, ca, cb)


def test_duplicate_and_replayed_syn_do_not_create_sessions() -> None:
    net = FakeNet(seed=3)
    syns: list[bytes] = []

    def record_syns(data: bytes, s: Address, d: Address) -> bool:
        if data[2] == SYN:
            syns.append(data)
        return False

    net.drop = record_syns
    _a, b, ca, cb = connected_pair(net)
    for _ in range(5):
        net.inject(syns[0], A, B)
    net.run_for(1.0)
    assert len(b.connections) == 1 and not b.accept_queue
    exchange(net, ca, cb)


def test_peer_restart_is_detected_and_a_new_session_works() -> None:
    net = FakeNet(seed=4)
    a, b, ca, _cb = connected_pair(net)
    net.hosts[B] = type(b)(RudpConfig(), now=net.now)  # B loses all state
    assert net.run_until(lambda: ca.state is CLOSED, 5)  # next heartbeat gets a RESET
    assert "does not know" in (ca.close_reason or "")
    b2 = net.hosts[B]
    ca2 = a.connect(B, net.now)
    assert net.run_until(lambda: ca2.is_established and bool(b2.accept_queue), 30)
    cb2 = b2.accept()
    assert cb2 is not None
    exchange(net, ca2, cb2)


def test_unknown_connection_replies_are_rate_limited() -> None:
    net = FakeNet(seed=5)
    b = net.add_host(B)
    stranger = ("10.9.9.9", 9)
    for i in range(1000):
        net.inject(encode_header(DATA, 0, 1234, i, 0, 0, 0, 0, 0), stranger, B, at=i * 0.001)
    net.run_for(1.5)
    assert b.stats.unknown_connection == 1000
    assert 1 <= b.stats.resets_sent <= 12  # at most one per 100 ms per address


def test_syn_flood_state_is_bounded_and_expires() -> None:
    config = RudpConfig(max_pending_handshakes=64, max_handshakes_per_ip=4, connect_timeout_ms=2000)
    net = FakeNet(seed=6)
    b = net.add_host(B, config)
    rng = random.Random(0)
    for i in range(5000):
        src = (f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}", rng.randrange(1, 65535))
        syn = encode_header(SYN, 0, 0, i, 0, 0, 65536, 0, 0) + encode_handshake(i + 1, 1400)
        net.inject(syn, src, B)
    same_ip = [(("10.1.1.1", port)) for port in range(1000, 1100)]
    for i, src in enumerate(same_ip):
        net.inject(encode_header(SYN, 0, 0, i, 0, 0, 65536, 0, 0) + encode_handshake(9000 + i, 1400), src, B)
    net.step()
    assert len(b.connections) <= 64
    assert b.stats.syn_dropped >= 5100 - 64
    assert sum(1 for c in b.connections.values() if c.remote[0] == "10.1.1.1") <= 4
    net.run_for(3.0)  # spoofed handshakes never complete and are dropped
    assert not b.connections
    a = net.add_host(A, config)
    ca = a.connect(B, net.now)
    assert net.run_until(lambda: ca.is_established and bool(b.accept_queue), 10)


def test_heartbeat_keeps_an_idle_session_alive() -> None:
    sent: dict[tuple[object, int], int] = {}

    def count(data: bytes, s: Address, d: Address) -> bool:
        sent[(s, data[2])] = sent.get((s, data[2]), 0) + 1
        return False

    net = FakeNet(seed=7, drop=count)
    _a, _b, ca, cb = connected_pair(net)
    assert ca.config.heartbeat_ms == 1000 and ca.config.idle_timeout_ms == 10000
    sent.clear()
    net.run_for(60.0)
    assert ca.is_established and cb.is_established
    # the opener pings about once a second and the accepter only acknowledges: two
    # datagrams a second for a quiet session, not four
    assert 50 <= sent.get((A, PING), 0) <= 61
    assert sent.get((B, PING), 0) <= 1
    assert sum(sent.values()) <= 2 * 61


def test_accepter_keeps_the_session_alive_when_the_opener_stops_pinging() -> None:
    net = FakeNet(seed=7)
    _a, _b, ca, cb = connected_pair(net)
    ca._heartbeat = 1e9  # an opener that never pings (an older or a broken peer)
    pings = {"n": 0}

    def count(data: bytes, s: Address, d: Address) -> bool:
        pings["n"] += s == B and data[2] == PING
        return False

    net.drop = count
    net.run_for(30.0)
    assert ca.is_established and cb.is_established  # the accepter's PINGs (every 2 s) did it
    assert 10 <= pings["n"] <= 16


def test_idle_timeout_closes_both_sides_when_the_link_dies() -> None:
    net = FakeNet(seed=8)
    a, b, ca, cb = connected_pair(net)
    died = net.now
    net.drop = lambda data, s, d: True
    assert net.run_until(lambda: ca.state is CLOSED and cb.state is CLOSED, 30)
    assert ca.close_reason == cb.close_reason == "idle timeout"
    assert 9.9 <= net.now - died <= 11.5
    assert not a.connections and not b.connections


def test_custom_idle_timeout_and_heartbeat() -> None:
    config = RudpConfig(heartbeat_ms=200, idle_timeout_ms=1000)
    net = FakeNet(seed=9)
    _, _, ca, _cb = connected_pair(net, config, config)
    net.run_for(5.0)
    assert ca.is_established  # 200 ms heartbeats keep a 1 s timeout satisfied
    start = net.now
    net.drop = lambda data, s, d: True
    assert net.run_until(lambda: ca.state is CLOSED, 5)
    assert 0.75 <= net.now - start <= 1.5  # idle since the last ACK, up to a heartbeat before


def test_graceful_close_delivers_everything_first() -> None:
    net = FakeNet(seed=10, loss=0.1, rate=1e6)
    a, b, ca, cb = connected_pair(net)
    messages = [bytes([i]) * 3000 for i in range(50)]
    for m in messages:
        ca.send(m, 1)
    ca.close()
    with pytest.raises(SessionClosed):
        ca.send(b"late", 1)
    assert net.run_until(lambda: ca.state is CLOSED, 120)
    assert ca.close_reason == "closed"
    assert cb.state in (ConnectionState.TIME_WAIT, CLOSED)
    got: list[tuple[int, bytes]] = []
    drain(cb, got)
    assert [m for _, m in got] == messages
    with pytest.raises(SessionClosed):
        cb.send(b"too late", 1)
    net.run_for(10.0)
    assert cb.state is CLOSED and cb.close_reason == "closed by peer"
    assert not a.connections and not b.connections


def test_close_survives_lost_fin_and_fin_ack() -> None:
    net = FakeNet(seed=11)
    _, _, ca, cb = connected_pair(net)
    net.drop = drop_first(6)  # FIN
    ca.close()
    assert net.run_until(lambda: ca.state is CLOSED, 30)
    assert ca.close_reason == "closed" and cb.close_reason == "closed by peer"


def test_abort_resets_the_peer() -> None:
    net = FakeNet(seed=12)
    _, _, ca, cb = connected_pair(net)
    ca.abort()
    assert ca.state is CLOSED
    assert net.run_until(lambda: cb.state is CLOSED, 5)
    assert cb.close_reason == "reset by peer"


def test_connect_to_nobody_times_out() -> None:
    net = FakeNet(seed=13)
    a = net.add_host(A, RudpConfig(connect_timeout_ms=3000))
    ca = a.connect(("10.0.0.99", 1), net.now)
    assert net.run_until(lambda: ca.state is CLOSED, 10)
    assert ca.close_reason == "handshake timed out"
    assert 2.9 <= net.now <= 3.5


def test_established_state_names_follow_the_seed() -> None:
    assert [s.value for s in ConnectionState] == [
        "SynSent", "SynReceived", "Established", "FinWait", "TimeWait", "Closed",
    ]
    _ = (SYN_ACK, ESTABLISHED)


def _opener_with_peers(net: FakeNet, config: RudpConfig, count: int,
                       ) -> tuple[Multiplexer, list[Connection]]:
    """Host A with ``count`` sessions it opened, one every 137 ms (spread heartbeats)."""
    a = net.add_host(A, config)
    conns = []
    for i in range(count):
        peer = (f"10.0.1.{i + 1}", 3000)
        net.add_host(peer, config)
        conns.append(a.connect(peer, net.now))
        net.run_for(0.137)
    assert net.run_until(lambda: all(c.is_established for c in conns), 10)
    return a, conns


def test_a_nodes_heartbeats_share_wakeups_within_the_slack() -> None:
    # Linux-style timer slack: a PING due within heartbeat_slack_ms of one that is being
    # sent goes with it, so a node with many quiet sessions wakes once per heartbeat, not
    # once per session. Never later than heartbeat_ms: only earlier.
    net = FakeNet(seed=11)
    # six sessions opened 137 ms apart: their heartbeats span 685 ms of each second
    _a, conns = _opener_with_peers(net, RudpConfig(heartbeat_slack_ms=250), 6)
    times = send_times(net, A, PING)
    net.run_for(5.0)  # settle into groups
    times.clear()
    net.run_for(20.0)
    instants = sorted(set(times))
    assert all(c.is_established for c in conns)
    assert len(times) >= 6 * 19  # every session still pings about every second
    # ... from three wake-ups a second (pairs within 250 ms of each other), not six
    assert len(instants) <= 3 * 21
    gaps = [b - a for a, b in itertools.pairwise(instants)]
    assert max(gaps) <= 1.0 + 1e-6  # and never later than the heartbeat


def test_without_slack_each_session_pings_on_its_own_schedule() -> None:
    net = FakeNet(seed=11)
    _a, _conns = _opener_with_peers(net, RudpConfig(heartbeat_slack_ms=0), 6)
    times = send_times(net, A, PING)
    net.run_for(5.0)
    times.clear()
    net.run_for(20.0)
    assert len(set(times)) >= 6 * 19


def test_heartbeat_slack_must_be_below_the_heartbeat() -> None:
    with pytest.raises(ConfigError, match="heartbeat_slack_ms"):
        RudpConfig(heartbeat_ms=500, heartbeat_slack_ms=500)


def test_a_busy_session_does_not_make_the_quiet_ones_ping_more_often() -> None:
    # Only a heartbeat's wake-up takes the other heartbeats along: the pacing timer of a
    # bulk transfer fires hundreds of times a second and would otherwise send every quiet
    # session's PING up to heartbeat_slack_ms early, every time.
    net = FakeNet(seed=12, rate=200_000)
    a, conns = _opener_with_peers(net, RudpConfig(heartbeat_slack_ms=250), 4)
    bulk, quiet = conns[0], conns[1:]
    pings: dict[object, int] = {}

    def count(data: bytes, s: Address, d: Address) -> bool:
        if s == A and data[2] == PING:
            pings[d] = pings.get(d, 0) + 1
        return False

    net.drop = count
    for _ in range(200):  # 20 s with always something queued on the bulk session
        while bulk.can_send:
            bulk.send(b"x" * 50_000, 1)
        net.run_for(0.1)
        for peer in net.hosts.values():
            if peer is not a:
                for conn in list(peer.connections.values()):
                    drain(conn, [])
    assert all(c.is_established for c in conns)
    for conn in quiet:
        assert 17 <= pings.get(conn.remote, 0) <= 21  # about one a second, not 1 / 0.75 s
