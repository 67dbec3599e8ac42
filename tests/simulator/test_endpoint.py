"""A virtual endpoint refuses what the kernel's real UDP endpoint refuses, the same way:
code tested in the simulator behaves as it will on real sockets (host names, a closed
endpoint)."""

from __future__ import annotations

import pytest
import trio
from p2pkit.simulator import Network, Simulation

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


def test_a_writer_on_a_closed_endpoint_stops_and_time_goes_on() -> None:
    # the usual writer: wait for room, send, and again when the socket refuses (a closed
    # one always does). It must end with ClosedResourceError, as on a real socket; it
    # spun for ever, and the virtual clock stood still (here it gives up after 1000 turns)
    async def scenario(sim: Simulation) -> None:
        a, b = sim.add_host("a"), sim.add_host("b")
        endpoint = a.bind(4000)
        endpoint.close()
        sent = 0

        async def writer() -> None:
            nonlocal sent
            try:
                for _ in range(1000):
                    await endpoint.wait_writable()
                    if endpoint.send(b"x", (b.ip, 4000)):
                        sent += 1
                sim.results["writer"] = f"still waiting for room at {sim.now}"
            except trio.ClosedResourceError:
                sim.results["writer"] = f"closed at {sim.now}"

        sim.spawn(writer)
        await sim.sleep(1.0)
        sim.results["sent"] = sent

    report = Simulation(seed=1, duration=2).run(scenario)
    assert report["results"] == {"writer": "closed at 0.0", "sent": 0}


async def test_wait_writable_raises_once_closed_as_on_a_real_socket() -> None:
    network = Network(seed=1)
    endpoint = network.add_host("a").bind(4000)
    await endpoint.wait_writable()  # open: at once
    endpoint.close()
    with pytest.raises(trio.ClosedResourceError):
        await endpoint.wait_writable()
    real = await UdpEndpoint.open("127.0.0.1", 0)
    real.close()
    with pytest.raises(trio.ClosedResourceError):
        await real.wait_writable()
