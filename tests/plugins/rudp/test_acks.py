"""Delayed acknowledgements (RFC 9000 §13.2, TCP's delayed ACK): one ACK per ``ack_every``
in-order data packets or after MAX_ACK_DELAY (25 ms), at once for anything out of order,
and RTT samples that do not include the time an ACK was held."""

from __future__ import annotations

from typing import Any

from p2pkit.plugins.rudp import Connection, RudpConfig
from p2pkit.plugins.rudp.packet import ACK, DATA

from .fakenet import A, Address, B, FakeNet, connected_pair, drain, send_times


def _count(net: FakeNet) -> dict[tuple[object, int], int]:
    sent: dict[tuple[object, int], int] = {}

    def count(data: bytes, s: Address, d: Address) -> bool:
        sent[(s, data[2])] = sent.get((s, data[2]), 0) + 1
        return False

    net.drop = count
    return sent


def _bulk(config: RudpConfig, *, loss: float = 0.0, seed: int = 3,
          ) -> tuple[dict[tuple[object, int], int], Connection]:
    net = FakeNet(seed=seed, rate=250_000, delay=0.020)  # 2 Mbit/s: one packet per 5.6 ms
    _, _, ca, cb = connected_pair(net, config, config)
    sent = _count(net)
    net.loss = loss
    messages = [bytes([i]) * 50_000 for i in range(40)]  # 2 MB
    for m in messages:
        ca.send(m, 1)
    got: list[tuple[int, bytes]] = []
    assert net.run_until(lambda: drain(cb, got) >= 0 and len(got) == len(messages), 120)
    assert [m for _, m in got] == messages
    return sent, ca


def test_one_ack_per_two_data_packets_in_a_one_way_transfer() -> None:
    sent, _ = _bulk(RudpConfig())
    data, acks = sent[(A, DATA)], sent.get((B, ACK), 0)
    assert 0.45 * data <= acks <= 0.6 * data  # was one ACK per data packet


def test_ack_every_one_acks_every_packet() -> None:
    sent, _ = _bulk(RudpConfig(ack_every=1))
    assert sent.get((B, ACK), 0) >= 0.9 * sent[(A, DATA)]  # (two arriving together: one)


def test_losses_are_reported_at_once_and_the_transfer_completes() -> None:
    sent, ca = _bulk(RudpConfig(), loss=0.03, seed=5)
    lost = ca.stats(0.0)["lost_packets"]
    assert isinstance(lost, int) and lost > 0
    assert sent.get((B, ACK), 0) > 0.5 * sent[(A, DATA)] * 0.9  # gaps are acked at once


def test_a_lone_packet_is_acked_within_the_delay_and_rtt_excludes_the_hold() -> None:
    net = FakeNet(seed=4, delay=0.030)  # 60 ms round trip
    _, _, ca, cb = connected_pair(net)
    times = send_times(net, B, ACK)
    for _ in range(20):
        start = net.now
        times.clear()
        ca.send(b"one small request", 1)
        net.run_for(0.5)
        drain(cb, [])
        assert times and 0.030 + 0.025 - 1e-6 <= times[0] - start <= 0.030 + 0.0251
    stats: dict[str, Any] = ca.stats(net.now)  # numbers or names, by key
    assert 59.9 <= stats["min_rtt_ms"] <= 60.5  # the 25 ms each ACK was held are not in it
    assert stats["srtt_ms"] <= 61
