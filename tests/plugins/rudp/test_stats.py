"""Per-session stats a user (or the web UI) reads."""

from __future__ import annotations

from typing import Any

from p2pkit.plugins.rudp.stats import RateMeter

from .fakenet import FakeNet, connected_pair, drain


def test_stats_during_a_lossy_transfer() -> None:
    net = FakeNet(seed=9, rate=1.0e6, delay=0.025, queue_limit=0.05)
    _, _, ca, cb = connected_pair(net)
    net.loss = 0.03
    got: list[tuple[int, bytes]] = []
    for _ in range(80):  # 4 s of virtual time, always something to send
        while ca.can_send:
            ca.send(b"s" * 20_000, 1)
        net.run_for(0.05)
        drain(cb, got)
    a: dict[str, Any] = ca.stats(net.now)  # numbers or names, by key
    b: dict[str, Any] = cb.stats(net.now)
    assert 0.6e6 <= a["send_rate_Bps"] <= 1.2e6  # the link's 1 MB/s over the last 2 s
    assert 0.5e6 <= b["recv_rate_Bps"] <= 1.2e6
    assert 50 <= a["srtt_ms"] <= 160 and a["min_rtt_ms"] >= 50  # 2 x 25 ms plus queueing
    assert a["rttvar_ms"] > 0 and a["rto_ms"] >= 200
    assert a["retransmits"] > 0 and a["lost_packets"] > 0
    assert 0.01 <= a["loss_rate"] <= 0.2
    assert a["bytes_sent"] > b["bytes_sent"] and b["bytes_received"] > 0
    assert a["packets_sent"] >= b["packets_received"]
    assert a["messages_sent"] > b["messages_received"] == len(got) > 0
    assert a["cwnd"] > 0 and a["congestion"] == "bbr" and a["congestion_state"]
    assert a["state"] == "Established" and a["max_datagram"] == 1400
    assert a["bytes_in_flight"] <= a["cwnd"]


def test_rates_decay_when_idle() -> None:
    net = FakeNet(seed=1)
    _, _, ca, cb = connected_pair(net)
    for _ in range(50):
        ca.send(b"i" * 10_000, 1)
    net.run_for(1.0)
    drain(cb, [])
    busy: dict[str, Any] = ca.stats(net.now)  # numbers or names, by key
    assert busy["send_rate_Bps"] > 100_000
    net.run_for(5.0)  # only heartbeats now
    idle: dict[str, Any] = ca.stats(net.now)
    assert idle["send_rate_Bps"] < 1_000


def test_rate_meter_averages_over_two_to_three_seconds() -> None:
    step = 0.125  # offered at every flush; exact in binary, so the snapshot times are too
    meter = RateMeter(0.0)
    sent = 0
    for i in range(1, 81):  # 10 s at 8 000 B/s
        sent += 1000
        meter.sample(i * step, sent, 2 * sent)
    assert meter.rates(10.0, sent, 2 * sent) == (8000.0, 16000.0)
    # A burst 1.5 s ago still counts, spread over the span (snapshots at 8, 9 and 10 s).
    for i in range(81, 161):
        now = i * step
        if now == 18.5:
            sent += 30_000
        meter.sample(now, sent, 0)
    assert meter.rates(20.0, sent, 0)[0] == 15_000.0
    # A quiet spell: the rate falls to nothing once the burst is older than the span.
    for i in range(161, 201):
        meter.sample(i * step, sent, 0)
    assert meter.rates(25.0, sent, 0) == (0.0, 0.0)
    assert RateMeter(3.0).rates(3.0, 10, 10) == (0.0, 0.0)  # no time yet: no rate
