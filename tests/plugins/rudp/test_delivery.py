"""Exactly-once, in-order delivery over a lossy, reordering, duplicating fake link."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from p2pkit.plugins.rudp import RudpConfig

from .fakenet import Address, FakeNet, connected_pair, drain


def transfer(net: FakeNet, messages: list[bytes], config: RudpConfig | None = None,
             channel: int = 1, timeout: float = 600.0) -> list[bytes]:
    # the handshake has its own tests; here the faults start once the session is up
    faults = net.loss, net.reorder, net.duplicate
    net.loss = net.reorder = net.duplicate = 0.0
    _, _, ca, cb = connected_pair(net, config, config)
    net.loss, net.reorder, net.duplicate = faults
    for m in messages:
        ca.send(m, channel)
    got: list[tuple[int, bytes]] = []
    assert net.run_until(lambda: drain(cb, got) >= 0 and len(got) == len(messages), timeout), (
        f"{len(got)}/{len(messages)} delivered; sender {ca.stats(net.now)}"
    )
    assert all(ch == channel for ch, _ in got)
    return [m for _, m in got]


def sample_messages(n: int, seed: int) -> list[bytes]:
    import random

    rng = random.Random(seed)
    return [rng.randbytes(rng.choice((0, 1, 10, 500, 1300, 1364, 3000, 20000))) for _ in range(n)]


@pytest.mark.parametrize("congestion", ["default", "newreno"])
@pytest.mark.parametrize("loss", [0.0, 0.05, 0.15, 0.30])
def test_every_message_once_in_order(loss: float, congestion: str) -> None:
    net = FakeNet(seed=int(loss * 100), loss=loss, reorder=0.1, duplicate=0.05, jitter=0.005,
                  rate=2e6)
    messages = sample_messages(200, seed=1)
    got = transfer(net, messages, RudpConfig(congestion=congestion))
    assert got == messages


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    loss=st.floats(0.0, 0.3),
    reorder=st.floats(0.0, 0.3),
    duplicate=st.floats(0.0, 0.2),
    sizes=st.lists(st.integers(0, 9000), min_size=1, max_size=40),
)
def test_random_loss_patterns_and_sizes(seed: int, loss: float, reorder: float,
                                        duplicate: float, sizes: list[int]) -> None:
    net = FakeNet(seed=seed, loss=loss, reorder=reorder, duplicate=duplicate, jitter=0.003)
    messages = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    assert transfer(net, messages) == messages


@settings(max_examples=15, deadline=None)
@given(pattern=st.lists(st.booleans(), min_size=1, max_size=60), sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=20))
def test_explicit_drop_patterns(pattern: list[bool], sizes: list[int]) -> None:
    """Drop exactly the DATA datagrams the pattern says (up to 60 of them)."""
    assume(not all(pattern))  # a dead link is the idle-timeout test's business
    counter = {"n": 0}

    def drop(data: bytes, src: Address, dst: Address) -> bool:
        if data[2] != 4:  # DATA only: the test is about data recovery
            return False
        counter["n"] += 1
        return pattern[counter["n"] % len(pattern)] and counter["n"] <= 60

    net = FakeNet(seed=0, drop=drop)
    messages = [bytes([i]) * n for i, n in enumerate(sizes)]
    assert transfer(net, messages) == messages


def test_both_directions_at_once() -> None:
    net = FakeNet(seed=3, loss=0.1, reorder=0.1, rate=1e6)
    _, _, ca, cb = connected_pair(net)
    to_b = sample_messages(100, 2)
    to_a = sample_messages(100, 3)
    for m in to_b:
        ca.send(m, 1)
    for m in to_a:
        cb.send(m, 1)
    got_a: list[tuple[int, bytes]] = []
    got_b: list[tuple[int, bytes]] = []
    assert net.run_until(
        lambda: (drain(ca, got_a), drain(cb, got_b)) and len(got_a) == 100 and len(got_b) == 100, 300
    )
    assert [m for _, m in got_b] == to_b and [m for _, m in got_a] == to_a


def test_small_messages_are_aggregated() -> None:
    net = FakeNet(seed=0)
    _, _, ca, cb = connected_pair(net)
    sent_before = ca.packets_sent
    for i in range(300):
        ca.send(i.to_bytes(2, "big") * 5, 1)  # 10 bytes each (+4 length)
    got: list[tuple[int, bytes]] = []
    assert net.run_until(lambda: drain(cb, got) >= 0 and len(got) == 300)
    data_packets = ca.packets_sent - sent_before
    assert data_packets <= 6  # 300 x 14 bytes fit in ~4 datagrams of 1400 bytes
    assert [m for _, m in got] == [i.to_bytes(2, "big") * 5 for i in range(300)]


def test_large_message_is_fragmented_below_the_mtu() -> None:
    sizes: list[int] = []

    def record_size(data: bytes, src: Address, dst: Address) -> bool:
        sizes.append(len(data))
        return False

    net = FakeNet(seed=0, drop=record_size)
    big = bytes(range(256)) * 4000  # 1 MB
    assert transfer(net, [big], RudpConfig(mtu=1200)) == [big]
    assert max(sizes) <= 1200


def test_64_mib_message_and_just_over() -> None:
    from p2pkit import LocalProtocolError

    net = FakeNet(seed=0, delay=0.001)
    _, _, ca, cb = connected_pair(net)
    limit = 64 * 1024 * 1024
    with pytest.raises(LocalProtocolError, match="exceeds"):
        ca.send(bytes(limit + 1), 1)
    message = bytes(limit)
    ca.send(message, 1)
    got: list[tuple[int, bytes]] = []
    assert net.run_until(lambda: drain(cb, got) >= 0 and len(got) == 1, 600)
    assert len(got[0][1]) == limit and got[0][1] == message
    # a peer announcing a message over the limit is a protocol error that resets it
    rs = cb.recv_streams
    assert rs.max_message == limit


def test_a_queued_message_is_withdrawn_until_its_first_byte_leaves() -> None:
    """``Connection.withdraw``: a message not yet started is taken out of its channel
    (the ones behind it move up, the receiver never sees a gap); one that has started
    cannot be, and stays whole."""
    net = FakeNet(seed=11, rate=1.25e6, delay=0.02)
    _, _, ca, cb = connected_pair(net)
    first, second, third = b"1" * 100_000, b"2" * 100_000, b"3" * 100_000
    token_1 = ca.send(first, 1)
    token_2 = ca.send(second, 1)
    token_3 = ca.send(third, 1)
    net.run_for(0.005)  # the first flight leaves: part of the first message only
    queued = ca.send_streams.queued_bytes
    assert ca.withdraw(1, token_1) is False  # started: it goes whole
    assert ca.withdraw(1, token_2) is True
    assert ca.send_streams.queued_bytes == queued - len(second) - 4
    assert ca.withdraw(1, token_2) is False  # once
    assert ca.withdraw(0, token_3) is False  # another channel's token finds nothing
    got: list[tuple[int, bytes]] = []
    assert net.run_until(lambda: drain(cb, got) >= 0 and len(got) == 2, 10)
    assert got == [(1, first), (1, third)]
    assert ca.withdraw(1, token_3) is False  # delivered


def test_withdrawing_the_only_queued_message_leaves_nothing_to_send() -> None:
    net = FakeNet(seed=12, delay=0.02)
    _, _, ca, cb = connected_pair(net)
    token = ca.send(b"", 2)  # an empty message is its length prefix alone
    assert ca.withdraw(2, token) is True
    assert not ca.send_streams.has_data()
    ca.send(b"after", 2)
    got: list[tuple[int, bytes]] = []
    assert net.run_until(lambda: drain(cb, got) >= 0 and len(got) == 1, 5)
    assert got == [(2, b"after")]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(0, 30_000), min_size=1, max_size=12),
       withdraw=st.lists(st.booleans(), min_size=12, max_size=12),
       steps=st.integers(0, 6), seed=st.integers(0, 1000))
def test_withdrawals_never_corrupt_the_stream(sizes: list[int], withdraw: list[bool],
                                              steps: int, seed: int) -> None:
    """Whatever is withdrawn at whatever moment: the receiver gets exactly the messages
    that were not taken back, whole and in order."""
    net = FakeNet(seed=seed, rate=1.25e6, delay=0.01)
    _, _, ca, cb = connected_pair(net)
    messages = [bytes([i]) * size for i, size in enumerate(sizes)]
    tokens = [ca.send(m, 1) for m in messages]
    for _ in range(steps):
        net.step()
    kept = [m for m, token, w in zip(messages, tokens, withdraw)
            if not (w and ca.withdraw(1, token))]
    got: list[tuple[int, bytes]] = []
    assert net.run_until(lambda: drain(cb, got) >= 0 and len(got) >= len(kept), 30)
    net.run_for(0.5)
    drain(cb, got)
    assert [m for _, m in got] == kept
