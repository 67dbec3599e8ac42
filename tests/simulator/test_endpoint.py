"""A virtual endpoint refuses what the kernel's real UDP endpoint refuses, the same way:
code tested in the simulator behaves as it will on real sockets."""

from __future__ import annotations

import pytest
from p2pkit.simulator import Network

from p2pkit.udp import UdpEndpoint

NAMES = ["localhost", "example.com", "no.such.host.invalid", ""]


@pytest.mark.parametrize("name", NAMES)
async def test_a_host_name_is_refused_as_on_a_real_socket(name: str) -> None:
    network = Network(seed=1)
    endpoint = network.add_host("a").bind(4000)
    with pytest.raises(ValueError) as virtual:
        endpoint.send(b"x", (name, 4000))
    with pytest.raises(ValueError) as batch:
        endpoint.send_batch([(b"x", ("11.0.0.1", 4000)), (b"y", (name, 4000))])
    async with await UdpEndpoint.open("127.0.0.1", 0) as real:
        with pytest.raises(ValueError) as udp:
            real.send(b"x", (name, 4000))
    assert str(virtual.value) == str(batch.value)
    assert str(virtual.value).replace("VirtualEndpoint", "UdpEndpoint") == str(udp.value)
    assert network.datagrams_sent == 0  # nothing of the batch went out either
    assert endpoint.stats.datagrams_sent == 0


async def test_ip_literals_are_sent() -> None:
    network = Network(seed=1)
    a, b = network.add_host("a"), network.add_host("b")
    endpoint = a.bind(4000)
    b.bind(4000)
    assert endpoint.send(b"x", (b.ip, 4000))
    assert endpoint.send_batch([(b"y", (b.ip, 4000)), (b"z", ("::1", 4000))]) == 2
    assert endpoint.send(b"w", ("<broadcast>", 4000))  # as sendto takes it; no route here
    assert network.datagrams_sent == 4
    assert a.drops["no_route"] == 2
