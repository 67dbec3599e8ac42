"""Each NAT type's mapping and filtering, timeouts, hairpinning, the UDP firewall."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
from p2pkit.simulator import NatBox, NatProfile, NatType, Network, Simulation, VirtualEndpoint

from .helpers import Recorder, running

CONE_TYPES = [NatType.FULL_CONE, NatType.RESTRICTED_CONE, NatType.PORT_RESTRICTED_CONE]


def _topology(nat_type: NatType, **profile: object) -> tuple[
        Network, NatBox, VirtualEndpoint, VirtualEndpoint, VirtualEndpoint, VirtualEndpoint]:
    net = Network(seed=5)
    nat = net.add_nat("nat", NatProfile(type=nat_type, **profile))  # type: ignore[arg-type]
    inside = net.add_host("inside", nat=nat)
    s1 = net.add_host("s1")
    s2 = net.add_host("s2")
    return net, nat, inside.bind(4000), s1.bind(3478), s2.bind(3478), s2.bind(3479)


async def _mapped_address(net: Network, inside: VirtualEndpoint, server_recorder: Recorder,
                          server: VirtualEndpoint) -> tuple[str, int]:
    before = len(server_recorder.received)
    inside.send(b"ping", server.local_address)
    await trio.sleep(0.1)
    assert len(server_recorder.received) == before + 1
    return server_recorder.received[-1][2]


@pytest.mark.parametrize("nat_type", [*CONE_TYPES, NatType.SYMMETRIC])
async def test_mapping_behaviour(nat_type: NatType, autojump_clock: object) -> None:
    net, nat, inside, s1, s2, _s2b = _topology(nat_type)
    async with running(net, inside, s1, s2) as (_ri, r1, r2):
        seen_by_s1 = await _mapped_address(net, inside, r1, s1)
        seen_by_s2 = await _mapped_address(net, inside, r2, s2)
    assert inside.local_address == ("10.0.0.2", 4000)
    assert seen_by_s1[0] == seen_by_s2[0] == nat.public_ip
    if nat_type is NatType.SYMMETRIC:
        assert seen_by_s1[1] != seen_by_s2[1]  # a new mapping per destination
    else:
        assert seen_by_s1[1] == seen_by_s2[1]  # endpoint-independent mapping


# (type, unsolicited host may send, other port of a contacted host may send)
FILTERING = [
    (NatType.FULL_CONE, True, True),
    (NatType.RESTRICTED_CONE, False, True),
    (NatType.PORT_RESTRICTED_CONE, False, False),
    (NatType.SYMMETRIC, False, False),
]


@pytest.mark.parametrize(("nat_type", "from_stranger", "from_other_port"), FILTERING)
async def test_filtering_behaviour(
    nat_type: NatType, from_stranger: bool, from_other_port: bool, autojump_clock: object
) -> None:
    net, _nat, inside, s1, s2, s2b = _topology(nat_type)
    async with running(net, inside, s1, s2, s2b) as (ri, r1, _r2, _r2b):
        mapped = await _mapped_address(net, inside, r1, s1)
        s1.send(b"reply", mapped)  # the contacted address always gets through
        s2.send(b"stranger", mapped)  # never contacted by inside
        await trio.sleep(0.1)
        inside.send(b"hello s2", s2.local_address)  # now s2:3478 is contacted
        await trio.sleep(0.1)
        s2b.send(b"other port", mapped)  # same IP as s2, other port
        await trio.sleep(0.1)
    got = ri.payloads
    assert b"reply" in got
    assert (b"stranger" in got) is from_stranger
    assert (b"other port" in got) is from_other_port
    dropped = sum(net.drops.get(r, 0) for r in ("nat_filtered", "nat_no_mapping"))
    assert dropped == (not from_stranger) + (not from_other_port)


@pytest.mark.parametrize("nat_type", [*CONE_TYPES, NatType.SYMMETRIC])
async def test_mapping_times_out_and_outbound_refreshes(
    nat_type: NatType, autojump_clock: object
) -> None:
    net, _nat, inside, s1, _s2, _s2b = _topology(nat_type, mapping_timeout=30.0)
    async with running(net, inside, s1) as (ri, r1):
        mapped = await _mapped_address(net, inside, r1, s1)
        await trio.sleep(20)
        assert await _mapped_address(net, inside, r1, s1) == mapped  # refreshed, same port
        await trio.sleep(25)
        s1.send(b"still open", mapped)  # 25 s after the refresh: alive
        await trio.sleep(31)
        s1.send(b"too late", mapped)  # 56 s idle: expired
        await trio.sleep(0.1)
        remapped = await _mapped_address(net, inside, r1, s1)
    assert ri.payloads == [b"still open"]
    assert net.drops == {"nat_no_mapping": 1}
    assert remapped[1] != mapped[1]


async def test_udp_blocking_firewall(autojump_clock: object) -> None:
    net, _nat, inside, s1, _s2, _s2b = _topology(NatType.UDP_BLOCKED)
    async with running(net, inside, s1) as (ri, r1):
        inside.send(b"out", s1.local_address)
        s1.send(b"in", (_nat.public_ip, 4000))
        await trio.sleep(1)
    assert r1.received == [] and ri.received == []
    assert net.drops == {"firewall": 2}


@pytest.mark.parametrize("hairpin", [True, False])
async def test_hairpinning(hairpin: bool, autojump_clock: object) -> None:
    net = Network(seed=2)
    nat = net.add_nat("nat", NatProfile(type=NatType.FULL_CONE, hairpin=hairpin))
    a = net.add_host("a", nat=nat).bind(4000)
    b = net.add_host("b", nat=nat).bind(4000)
    server = net.add_host("server").bind(3478)
    async with running(net, a, b, server) as (ra, _rb, rs):
        a_public = await _mapped_address(net, a, rs, server)
        b_public = await _mapped_address(net, b, rs, server)
        b.send(b"via public", a_public)
        b.send(b"via lan", a.local_address)
        await trio.sleep(0.1)
    assert a_public != b_public
    if hairpin:
        assert [(d, src) for _t, d, src in ra.received] == [
            (b"via public", b_public), (b"via lan", b.local_address)]
    else:
        assert ra.payloads == [b"via lan"]
        assert net.drops == {"no_hairpin": 1}


def test_nat_type_parse_names_the_choices() -> None:
    assert NatType.parse("Port_Restricted_Cone") is NatType.PORT_RESTRICTED_CONE
    with pytest.raises(ValueError, match="full-cone"):
        NatType.parse("cone")


async def test_two_nats_may_reuse_private_addresses(autojump_clock: object) -> None:
    net = Network(seed=2)
    n1 = net.add_nat("n1", NatProfile(type=NatType.FULL_CONE))
    n2 = net.add_nat("n2", NatProfile(type=NatType.FULL_CONE))
    a = net.add_host("a", nat=n1).bind(4000)
    b = net.add_host("b", nat=n2).bind(4000)
    server = net.add_host("server").bind(3478)
    assert a.local_address == b.local_address
    async with running(net, a, b, server) as (ra, rb, rs):
        a_public = await _mapped_address(net, a, rs, server)
        b_public = await _mapped_address(net, b, rs, server)
        b.send(b"to a", a_public)  # full cone: anyone may send
        a.send(b"to b", b_public)
        await trio.sleep(0.1)
    assert ra.payloads == [b"to a"] and rb.payloads == [b"to b"]


def test_an_open_nat_box_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="'open' host has no NAT box"):
        Simulation(seed=1).add_nat("gw", "open")


@pytest.mark.parametrize("name", ["symmetric", "Full_Cone"])
def test_a_profile_takes_its_type_by_name(name: str) -> None:
    expected = NatType.parse(name)

    async def scenario(sim: Simulation) -> None:
        client = sim.add_host("client", nat=NatProfile(type=name))
        servers = [sim.add_host(f"s{i}").bind(3478) for i in range(2)]
        recorders = [Recorder(server) for server in servers]
        for recorder in recorders:
            sim.spawn(recorder.endpoint.run, recorder.dispatch)
        await sim.sleep(0.1)
        endpoint = client.bind(4000)
        for server in servers:
            endpoint.send(b"hi", server.local_address)
        await sim.sleep(1)
        sim.results["ports"] = [recorder.received[0][2][1] for recorder in recorders]

    report = Simulation(seed=1, duration=2).run(scenario)
    ports = report["results"]["ports"]
    # symmetric: one mapping per destination; a cone: one for all
    assert (ports[0] != ports[1]) == (expected is NatType.SYMMETRIC)
    assert report["nodes"]["client"]["nat"] == expected.value


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"type": "cone"}, ValueError, "full-cone"),
    ({"type": 3}, TypeError, "type"),
    ({"mapping_timeout": math.nan}, ValueError, "mapping_timeout"),
    ({"mapping_timeout": math.inf}, ValueError, "mapping_timeout"),
    ({"mapping_timeout": -1.0}, ValueError, "mapping_timeout"),
    ({"port_base": 0}, ValueError, "port_base"),
    ({"port_base": 65000}, ValueError, "port_base"),  # + up to 999: past 65535
    ({"port_base": 2.5}, ValueError, "port_base"),
    ({"port_base": True}, ValueError, "port_base"),
    ({"hairpin": "no"}, TypeError, "hairpin"),  # a string is true whatever it says
    ({"inbound_refresh": 1}, TypeError, "inbound_refresh"),
])
def test_a_profile_refuses_what_it_cannot_run(kwargs: dict[str, Any], error: type[Exception],
                                              match: str) -> None:
    with pytest.raises(error, match=match):
        NatProfile(**kwargs)
