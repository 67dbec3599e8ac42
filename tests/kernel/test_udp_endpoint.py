"""The real UDP endpoint over loopback: batches, GSO/GRO on and off, truncation, close."""

from __future__ import annotations

import socket
import sys

import pytest
import trio

from p2pkit import ConfigError
from p2pkit.endpoint import DatagramEndpoint
from p2pkit.udp import UdpEndpoint

LINUX = sys.platform == "linux"


class Collector:
    def __init__(self, expected: int) -> None:
        self.items: list[tuple[bytes, tuple[str, int]]] = []
        self.batches = 0
        self.expected = expected
        self.done = trio.Event()

    def __call__(self, batch: list[tuple[bytes, tuple[str, int]]], now: float) -> None:
        assert isinstance(now, float)
        self.batches += 1
        self.items.extend(batch)
        if len(self.items) >= self.expected:
            self.done.set()


def payloads() -> list[bytes]:
    # Runs of equal sizes (GSO material), a short tail, and odd sizes in between.
    out = [bytes([i % 256]) * 1200 for i in range(150)]
    out += [b"tail"]
    out += [bytes([7]) * n for n in (1, 500, 1300, 1300, 1300, 9000, 3)]
    out += [i.to_bytes(4, "big") * 300 for i in range(100)]
    return out


async def test_is_a_datagram_endpoint() -> None:
    async with await UdpEndpoint.open("127.0.0.1", 0) as ep:
        assert isinstance(ep, DatagramEndpoint)
        host, port = ep.local_address
        assert host == "127.0.0.1" and port > 0


@pytest.mark.parametrize("offload", [True, False], ids=["gso_gro", "plain"])
async def test_batch_roundtrip(offload: bool) -> None:
    a = await UdpEndpoint.open("127.0.0.1", 0, gso=offload, gro=offload)
    b = await UdpEndpoint.open("127.0.0.1", 0, gso=offload, gro=offload)
    if LINUX:
        assert a.gso is offload and b.gro is offload
    data = payloads()
    got = Collector(len(data))
    with a, b:
        async with trio.open_nursery() as nursery:
            await nursery.start(b.run, got)
            accepted = a.send_batch([(d, b.local_address) for d in data])
            assert accepted == len(data)
            with trio.fail_after(5):
                await got.done.wait()
            nursery.cancel_scope.cancel()
    # Loopback neither loses nor reorders, and GRO segments are split back exactly.
    assert [d for d, _ in got.items] == data
    assert {addr for _, addr in got.items} == {a.local_address}
    assert a.stats.datagrams_sent == len(data)
    assert a.stats.bytes_sent == sum(map(len, data))
    assert b.stats.datagrams_received == len(data)
    assert b.stats.bytes_received == sum(map(len, data))
    assert a.stats.send_dropped == 0


async def test_single_send_and_several_destinations() -> None:
    a = await UdpEndpoint.open("127.0.0.1", 0)
    b = await UdpEndpoint.open("127.0.0.1", 0)
    c = await UdpEndpoint.open("127.0.0.1", 0)
    got_b, got_c = Collector(3), Collector(3)
    with a, b, c:
        async with trio.open_nursery() as nursery:
            await nursery.start(b.run, got_b)
            await nursery.start(c.run, got_c)
            assert a.send(b"one", b.local_address)
            batch = [(b"x" * 100, b.local_address), (b"y" * 100, c.local_address),
                     (b"z" * 100, b.local_address), (b"w" * 100, c.local_address),
                     (b"v" * 100, c.local_address)]
            assert a.send_batch(batch) == 5
            await a.wait_writable()
            with trio.fail_after(5):
                await got_b.done.wait()
                await got_c.done.wait()
            nursery.cancel_scope.cancel()
    assert [d for d, _ in got_b.items] == [b"one", b"x" * 100, b"z" * 100]
    assert [d for d, _ in got_c.items] == [b"y" * 100, b"w" * 100, b"v" * 100]


async def test_truncated_datagrams_are_dropped_and_counted() -> None:
    a = await UdpEndpoint.open("127.0.0.1", 0)
    b = await UdpEndpoint.open("127.0.0.1", 0, gro=False, recv_size=256)
    got = Collector(2)
    with a, b:
        async with trio.open_nursery() as nursery:
            await nursery.start(b.run, got)
            a.send_batch([(b"a" * 100, b.local_address), (b"b" * 1000, b.local_address),
                          (b"c" * 256, b.local_address)])
            with trio.fail_after(5):
                await got.done.wait()
            nursery.cancel_scope.cancel()
    assert [d for d, _ in got.items] == [b"a" * 100, b"c" * 256]
    assert b.truncated == 1


async def test_dispatch_errors_do_not_stop_receiving() -> None:
    a = await UdpEndpoint.open("127.0.0.1", 0)
    b = await UdpEndpoint.open("127.0.0.1", 0)
    seen: list[bytes] = []
    done = trio.Event()

    def flaky(batch: list[tuple[bytes, tuple[str, int]]], now: float) -> None:
        for data, _ in batch:
            seen.append(data)
            if data == b"boom":
                raise ValueError("handler bug")
            if data == b"after":
                done.set()

    with a, b:
        async with trio.open_nursery() as nursery:
            await nursery.start(b.run, flaky)
            a.send(b"boom", b.local_address)
            await trio.sleep(0.05)
            a.send(b"after", b.local_address)
            with trio.fail_after(5):
                await done.wait()
            nursery.cancel_scope.cancel()
    assert b.dispatch_errors == 1
    assert seen[-1] == b"after"


async def test_busy_port_is_a_clear_error() -> None:
    async with await UdpEndpoint.open("127.0.0.1", 0) as a:
        with pytest.raises(ConfigError, match="already in use"):
            await UdpEndpoint.open("127.0.0.1", a.local_address[1])


async def test_close_is_idempotent_and_ends_run() -> None:
    a = await UdpEndpoint.open("127.0.0.1", 0)
    b = await UdpEndpoint.open("127.0.0.1", 0)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run, Collector(1))
        await trio.sleep(0.01)
        a.close()
        a.close()
    # run() returned on its own once the socket closed (the nursery could exit).
    assert a.closed
    assert not a.send(b"late", b.local_address)
    assert a.send_batch([(b"late", b.local_address)] * 3) == 0
    assert a.stats.send_dropped == 4
    with pytest.raises(trio.ClosedResourceError):
        await a.wait_writable()
    b.close()


async def test_broadcast_is_allowed_for_lan_discovery() -> None:
    endpoint = await UdpEndpoint.open("127.0.0.1", 0)
    try:
        assert endpoint._sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1
    finally:
        endpoint.close()


async def test_a_host_name_is_refused_with_the_remedy_and_nothing_is_sent() -> None:
    # sendto looked the name up, blocking the event loop, on every datagram (and lost the
    # datagram without a word when it did not resolve): the transport takes IP literals
    a = await UdpEndpoint.open("127.0.0.1", 0)
    with a:
        port = a.local_address[1]
        with pytest.raises(ValueError, match=r"'localhost': not an IP address.*resolve"):
            a.send(b"x", ("localhost", port))
        with pytest.raises(ValueError, match=r"'localhost': not an IP address"):
            a.send_batch([(b"x", ("127.0.0.1", port)), (b"y", ("localhost", port))])
        assert a.stats.datagrams_sent == 0
        assert a.send(b"x", ("127.0.0.1", port))
