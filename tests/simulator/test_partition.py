"""Partitions cut traffic between sides (also packets in flight) until healed."""

from __future__ import annotations

import trio
from p2pkit.simulator import LinkProfile, Network

from .helpers import running


async def test_partition_and_heal(autojump_clock: object) -> None:
    net = Network(seed=1)
    hosts = [net.add_host(f"h{i}", LinkProfile(latency=0.05)) for i in range(4)]
    eps = [h.bind(9000) for h in hosts]
    async with running(net, *eps) as recorders:
        eps[0].send(b"in flight", eps[2].local_address)
        await trio.sleep(0.01)
        net.partition([hosts[:2], hosts[2:]])
        eps[0].send(b"same side", eps[1].local_address)
        eps[3].send(b"across", eps[0].local_address)
        await trio.sleep(1)
        net.heal()
        eps[3].send(b"healed", eps[0].local_address)
        await trio.sleep(1)
    assert recorders[0].payloads == [b"healed"]
    assert recorders[1].payloads == [b"same side"]
    assert recorders[2].payloads == []
    assert net.drops == {"partition": 2}
    assert hosts[0].drops == {"partition": 1} and hosts[2].drops == {"partition": 1}


async def test_offline_host_drops_both_ways(autojump_clock: object) -> None:
    net = Network(seed=1)
    a, b = net.add_host("a"), net.add_host("b")
    ea, eb = a.bind(), b.bind()
    async with running(net, ea, eb) as (ra, rb):
        b.online = False
        ea.send(b"to down", eb.local_address)
        eb.send(b"from down", ea.local_address)
        await trio.sleep(1)
    assert ra.received == [] and rb.received == []
    assert net.drops == {"host_down": 2}


async def test_first_side_wins_for_hosts_named_twice(autojump_clock: object) -> None:
    from p2pkit.simulator import Simulation

    sim = Simulation(seed=1)
    for i in range(3):
        sim.add_host(f"h{i}", group="all")
    sim.partition(["h0"], ["all"])
    assert [sim.host(f"h{i}").partition for i in range(3)] == [0, 1, 1]


async def test_hosts_on_no_side_keep_talking_to_everyone(autojump_clock: object) -> None:
    net = Network(seed=1)
    a, b, c = (net.add_host(name) for name in "abc")
    ea, eb, ec = a.bind(9000), b.bind(9000), c.bind(9000)
    async with running(net, ea, eb, ec) as (ra, rb, rc):
        net.partition([[a], [b]])  # c is on neither side
        for src, dst in ((ea, eb), (eb, ea), (ea, ec), (ec, ea), (eb, ec), (ec, eb)):
            src.send(b"from " + src.host.name.encode(), dst.local_address)
        await trio.sleep(1)
        net.heal()
        eb.send(b"healed", ea.local_address)
        await trio.sleep(1)
    assert ra.payloads == [b"from c", b"healed"]
    assert rb.payloads == [b"from c"]
    assert rc.payloads == [b"from a", b"from b"]
    assert net.drops == {"partition": 2}


async def test_partition_drops_packets_already_on_the_downlink(autojump_clock: object) -> None:
    net = Network(seed=1)
    a = net.add_host("a")
    b = net.add_host("b", LinkProfile(latency=0.3))  # a long downlink: a satellite
    ea, eb = a.bind(9000), b.bind(9000)
    async with running(net, ea, eb) as (_ra, rb):
        ea.send(b"past the router", eb.local_address)  # on b's downlink until 0.3 s
        await trio.sleep(0.1)
        net.partition([[a], [b]])
        await trio.sleep(1)
        net.heal()
        ea.send(b"healed", eb.local_address)
        await trio.sleep(1)
    assert rb.payloads == [b"healed"]
    assert b.drops == {"partition": 1}
