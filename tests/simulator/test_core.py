"""Core latency: drawn once per pair of sites, from the seed and the sites' names."""

from __future__ import annotations

import pytest
import trio
from p2pkit.simulator import CoreLatency, NatProfile, NatType, Network

from .helpers import running

UNIFORM = CoreLatency(distribution="uniform", low=0.010, high=0.100)
CONE = NatProfile(type=NatType.FULL_CONE)


async def _x_to_y(net: Network) -> float:
    """Seconds from x's send to y's receipt: the core latency alone (the links add none).
    y is behind a NAT, so its site is the NAT box."""
    x = net.add_host("x")
    y = net.add_host("y", nat=net.add_nat("y.nat", CONE))
    ex, ey = x.bind(4000), y.bind(4000)
    async with running(net, ex, ey) as (rx, ry):
        ey.send(b"opens y's mapping", ex.local_address)
        await trio.sleep(1)
        t0 = trio.current_time()
        ex.send(b"to y", rx.received[0][2])
        await trio.sleep(1)
    (t, data, _src), = ry.received
    assert data == b"to y"
    return t - t0


@pytest.mark.parametrize("earlier", ["a host", "a NAT", "a host behind a NAT"])
async def test_adding_a_site_first_leaves_the_others_latency(earlier: str,
                                                             autojump_clock: object) -> None:
    alone = await _x_to_y(Network(seed=1, core=UNIFORM))
    net = Network(seed=1, core=UNIFORM)
    if earlier == "a host":
        net.add_host("newcomer")
    elif earlier == "a NAT":
        net.add_nat("newcomer.nat", CONE)
    else:
        net.add_host("newcomer", nat=net.add_nat("newcomer.nat", CONE))
    assert await _x_to_y(net) == alone
    assert 0.010 <= alone <= 0.100
