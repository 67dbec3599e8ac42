"""Capture taps: every datagram a host sends, as it leaves the host."""

from __future__ import annotations

import trio
from p2pkit.simulator import HEADER_BYTES, LinkProfile, Network, Simulation

from .helpers import running

Seen = list[tuple[float, str, int, bytes, tuple[str, int]]]


async def test_a_tap_sees_every_datagram_sent_also_those_the_link_drops(autojump_clock: object) -> None:
    net = Network(seed=1)
    # a 300-byte queue: of a burst, most datagrams are dropped at the sender's uplink
    a = net.add_host("a", LinkProfile(up_bps=1_000_000, queue_bytes=300))
    b = net.add_host("b")
    ea, eb = a.bind(5000), b.bind(6000)
    seen: Seen = []
    net.add_tap(lambda now, host, port, data, dst: seen.append((now, host.name, port, data, dst)))
    async with running(net, eb) as (rb,):
        t0 = trio.current_time()
        for i in range(10):
            ea.send(bytes([i]) * 100, eb.local_address)
        eb.send(b"back", ea.local_address)
        await trio.sleep(1)
    assert [(name, port, data[:1]) for _t, name, port, data, _dst in seen] == (
        [("a", 5000, bytes([i])) for i in range(10)] + [("b", 6000, b"b")])
    assert all(t == t0 for t, *_ in seen)  # as they leave, not as they arrive
    assert {dst for *_, dst in seen[:10]} == {eb.local_address}
    # the tap saw what the host's counters count, the link delivered fewer
    assert sum(len(data) + HEADER_BYTES for _t, name, _p, data, _d in seen if name == "a") == a.bytes_sent
    assert 0 < len(rb.received) < 10
    assert net.drops == {"queue": 10 - len(rb.received)}


async def test_a_removed_tap_sees_nothing_more_and_a_failing_one_is_counted(autojump_clock: object) -> None:
    net = Network(seed=1)
    a, b = net.add_host("a"), net.add_host("b")
    ea, eb = a.bind(), b.bind()
    kept: list[bytes] = []
    removed: list[bytes] = []

    def failing(now: float, host: object, port: int, data: bytes, dst: object) -> None:
        raise RuntimeError("a bug in the tap")

    remove = net.add_tap(lambda now, host, port, data, dst: removed.append(data))
    net.add_tap(failing)
    net.add_tap(lambda now, host, port, data, dst: kept.append(data))
    async with running(net, eb) as (rb,):
        ea.send(b"one", eb.local_address)
        remove()
        remove()  # twice is harmless
        ea.send(b"two", eb.local_address)
        await trio.sleep(1)
    assert removed == [b"one"]
    assert kept == [b"one", b"two"]
    assert rb.payloads == [b"one", b"two"]  # a failing tap loses nothing
    assert net.tap_errors == 2
    assert net.stats()["tap_errors"] == 2


def test_a_simulation_captures_in_its_own_seconds() -> None:
    seen: Seen = []

    async def scenario(sim: Simulation) -> None:
        a, b = sim.add_host("a"), sim.add_host("b")
        ea, eb = a.bind(4000), b.bind(4001)
        await sim.sleep(2.5)
        stop = sim.capture(lambda now, host, port, data, dst: seen.append((now, host.name, port, data, dst)))
        ea.send(b"hello", eb.local_address)
        await sim.sleep(1.0)
        stop()
        ea.send(b"unseen", eb.local_address)

    Simulation(seed=1, duration=5).run(scenario)
    assert seen == [(2.5, "a", 4000, b"hello", ("11.0.0.2", 4001))]
