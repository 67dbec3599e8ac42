"""The node's upload limit: one token bucket shared round robin by all its connections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from p2pkit.plugins.rudp.connection import Connection
from p2pkit.plugins.rudp.mux import Multiplexer
from p2pkit.plugins.rudp.packet import ACK, DATA
from p2pkit.plugins.rudp.shaper import IP_UDP_HEADER_BYTES, UplinkShaper
from p2pkit.simulator import LinkProfile, Simulation

from tests.media import noise_wav

from .fakenet import Address, FakeNet, drain

S: Address = ("10.0.0.1", 1000)
RECEIVERS: list[Address] = [(f"10.0.1.{i}", 2000) for i in range(1, 4)]


def fan_out(net: FakeNet) -> tuple[Multiplexer, list[Connection], list[Connection]]:
    """S connected to three receivers: (S's mux, S's connections, the receivers' ends)."""
    mux = net.add_host(S)
    hosts = [net.add_host(addr) for addr in RECEIVERS]
    ours = [mux.connect(addr, net.now) for addr in RECEIVERS]
    assert net.run_until(lambda: all(c.is_established for c in ours) and all(h.accept_queue for h in hosts))
    theirs = [h.accept() for h in hosts]
    assert all(c is not None for c in theirs)
    return mux, ours, theirs  # type: ignore[return-value]


def wire_bytes_from(net: FakeNet, src: Address) -> dict[Address, int]:
    """From now on, what ``src`` puts on its link per destination (UDP/IP headers included)."""
    sent: dict[Address, int] = {}

    def count(data: bytes, s: Address, d: Address) -> bool:
        if s == src:
            sent[d] = sent.get(d, 0) + len(data) + IP_UDP_HEADER_BYTES
        return False

    net.drop = count
    return sent


@pytest.mark.parametrize("limit", [0, 200_000])
def test_the_limit_holds_for_all_connections_together_and_each_gets_a_share(limit: int) -> None:
    net = FakeNet(seed=1, delay=0.01)  # links far faster than the limit
    mux, ours, theirs = fan_out(net)
    mux.set_upload_limit(limit, net.now)
    sent = wire_bytes_from(net, S)
    for conn in ours:
        for _ in range(100):
            conn.send(b"x" * 20_000, 1)
    net.run_for(1.0)
    if not limit:  # the same transfers unlimited: all 6 MB within that second
        assert sum(sent.values()) > 3 * 100 * 20_000
        return
    sent.clear()  # past the sessions' start-up: the next 2 s
    net.run_for(2.0)
    total = sum(sent.values())
    assert 0.9 * limit * 2.0 <= total <= limit * 2.0 + mux.shaper.burst
    # round robin: nobody starves (each session's own pacer, cycling through BBR's
    # probing gains, makes the shares uneven by some 15 % over a few seconds)
    assert min(sent[addr] for addr in RECEIVERS) >= 0.75 * total / 3
    got: list[tuple[int, bytes]] = []
    for conn in theirs:
        drain(conn, got)
    assert got and all(m == (1, b"x" * 20_000) for m in got)
    assert mux.totals(net.now)["upload_limit_waits"] > 0


def test_acks_of_the_nodes_downloads_are_not_held_behind_its_uploads() -> None:
    net = FakeNet(seed=2, delay=0.01)
    mux, ours, theirs = fan_out(net)
    mux.set_upload_limit(20_000, net.now)  # 20 kB/s, far below what S downloads
    for conn in ours:
        for _ in range(50):
            conn.send(b"u" * 20_000, 1)  # S's uploads: waiting for the bucket all the time
    for _ in range(100):
        theirs[0].send(b"d" * 10_000, 1)  # a 1 MB download by S
    ack_times: list[float] = []
    seen = net.drop

    def record(data: bytes, s: Address, d: Address) -> bool:
        if s == S and data[2] == ACK:
            ack_times.append(net.now)
        return seen(data, s, d) if seen else False

    net.drop = record
    got: list[tuple[int, bytes]] = []
    start = net.now
    assert net.run_until(lambda: drain(ours[0], got) >= 0 and sum(1 for m in got if m[1][:1] == b"d") == 100, 5.0)
    # 1 MB in well under the 50 s that 20 kB/s would take, acknowledged as it came
    assert net.now - start < 2.0
    assert len(ack_times) > 50


def test_lifting_the_limit_lets_the_waiting_connections_go_at_once() -> None:
    net = FakeNet(seed=3, delay=0.01)
    mux, ours, _ = fan_out(net)
    mux.set_upload_limit(10_000, net.now)
    for conn in ours:
        for _ in range(20):
            conn.send(b"w" * 20_000, 1)
    net.run_for(0.5)
    assert mux.shaper.waiting
    mux.set_upload_limit(0, net.now)
    assert not mux.shaper.waiting
    out = mux.datagrams_to_send(net.now)
    data = [d for d, _ in out if d[2] == DATA]
    assert {addr for _, addr in out} == set(RECEIVERS)
    assert sum(map(len, data)) > 5 * 10_000  # in one flush, five seconds of the old limit
    assert all(c.node_budget == float("inf") for c in ours)


def test_shaper_bucket_and_turns() -> None:
    shaper = UplinkShaper(1000.0, mtu=1400, now=0.0)
    assert shaper.burst == shaper.quantum  # 2 ms of 1 kB/s is less than a quantum
    with pytest.raises(ValueError, match=">= 0"):
        shaper.set_rate(-1, 0.0)
    assert UplinkShaper().deadline() == float("inf")
    assert shaper.refill(100.0) == shaper.burst  # never more than the burst
    net = FakeNet()
    _, (a, _, _), _ = fan_out(net)
    shaper.charge(a, 6000 + 5 * 28, starved=True)  # more than the bucket held
    assert shaper.tokens < 0 and shaper.waits == 1
    assert shaper.budget(100.0, its_turn=False) == 0  # any other connection waits behind a
    assert shaper.next_in_turn(100.0) is None  # no tokens yet
    assert shaper.deadline() == pytest.approx(100.0 + (shaper.quantum - shaper.tokens) / 1000.0)
    assert shaper.next_in_turn(shaper.deadline()) is a
    assert shaper.budget(shaper.time, its_turn=True) == pytest.approx(shaper.quantum)


def test_a_nodes_upload_limit_setting_holds_on_its_link_and_can_be_lifted(tmp_path: Path) -> None:
    """In the simulator: a seeder with ``cfg.upload_limit_kbps`` serves a leecher; its
    access link carries no more than the limit (headers included), and lifting the limit
    at run time lets the rest go at the link's rate."""
    media = noise_wav(tmp_path / "clip.wav", 1_000_044, seed=3)
    limit_kib = 100
    seen: dict[str, float] = {}

    async def scenario(sim: Simulation) -> None:
        link = LinkProfile(up_bps=10e6, down_bps=10e6, latency=0.01, queue_bytes=125_000)
        config: dict[str, Any] = {"node": {"disable": ["flooding"]}}
        seeder_sim = sim.add_node("seeder", link=link,
                                  config={**config, "cfg": {"upload_limit_kbps": limit_kib}})
        seeder = await sim.start(seeder_sim)
        assert seeder.transport.mux.shaper.rate == limit_kib * 1024
        manifest = await seeder.share(media)
        boot = {**config["node"], "bootstrap": ["{}:{}".format(*seeder_sim.address)]}
        leecher = await sim.start(sim.add_node("leecher", link=link, config={"node": boot}))
        uplink = sim.host("seeder").up
        async with trio.open_nursery() as nursery:
            nursery.start_soon(leecher.swarm.fetch, manifest.rid)
            while uplink.bytes_sent < 100_000:  # noqa: ASYNC110 - past the swarm's start
                await trio.sleep(0.05)
            before, t0 = uplink.bytes_sent, sim.now
            await trio.sleep(3.0)
            seen["limited_Bps"] = (uplink.bytes_sent - before) / (sim.now - t0)
            seeder.settings.set("upload_limit_kbps", 0)
            assert seeder.transport.mux.shaper.rate == 0
            lifted = sim.now
        seen["rest_s"] = sim.now - lifted

    Simulation(seed=4, duration=60).run(scenario)
    assert 0.8 * limit_kib * 1024 <= seen["limited_Bps"] <= 1.02 * limit_kib * 1024
    assert seen["rest_s"] < 2.0  # ~0.6 MB left, at 10 Mbit/s


def test_a_node_whose_uplink_is_its_bottleneck_acks_half_as_often() -> None:
    """ACKs take uplink time from a node's uploads: while its sessions wait for its upload
    limit, every connection acknowledges every 2 x ack_every packets; with uplink to
    spare, every ack_every (a lone download keeps the denser ACK clock)."""
    net = FakeNet(seed=2, delay=0.01)
    mux, ours, theirs = fan_out(net)

    def acks_per_data_packet() -> float:
        """A 1 MB download by S from the first receiver: S's ACKs per data packet."""
        counts = {"ack": 0, "data": 0}

        def count(data: bytes, s: Address, d: Address) -> bool:
            if s == S and d == RECEIVERS[0] and data[2] == ACK:
                counts["ack"] += 1
            elif s == RECEIVERS[0] and d == S and data[2] == DATA:
                counts["data"] += 1
            return False

        net.drop = count
        for _ in range(100):
            theirs[0].send(b"d" * 10_000, 1)
        got: list[tuple[int, bytes]] = []
        assert net.run_until(lambda: drain(ours[0], got) >= 0 and len(got) == 100, 10.0)
        return counts["ack"] / counts["data"]

    spare = acks_per_data_packet()
    assert mux.ack_every == 2 and all(c.ack_every == 2 for c in ours)
    mux.set_upload_limit(20_000, net.now)  # S's uploads to the others wait for the bucket
    for conn in ours[1:]:
        for _ in range(50):
            conn.send(b"u" * 20_000, 1)
    busy = acks_per_data_packet()
    assert mux.ack_every == 4 and all(c.ack_every == 4 for c in ours)
    assert busy < 0.7 * spare
    mux.set_upload_limit(0, net.now)  # the uplink is free again: the denser clock is back
    net.run_for(0.1)
    acks_per_data_packet()
    assert mux.ack_every == 2
