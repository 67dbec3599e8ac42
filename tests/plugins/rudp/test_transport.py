"""The trio driver over real UDP on loopback, and inside real nodes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import pytest
import trio
from p2pkit.plugins.rudp import RudpConfig, RudpSession, RudpTransport

from p2pkit import CHANNEL_BULK, CHANNEL_CONTROL, NodeConfig, SessionClosed, hookimpl, open_node
from p2pkit.capabilities import QueuedMessage, Session, Transport
from p2pkit.endpoint import Datagram, DispatchFn
from p2pkit.udp import UdpEndpoint

from .fakenet import FixedWindow


@asynccontextmanager
async def transports(
    config_a: RudpConfig | None = None, config_b: RudpConfig | None = None, **kw: bool
) -> AsyncIterator[tuple[RudpTransport, RudpTransport]]:
    ea = await UdpEndpoint.open("127.0.0.1", 0, **kw)
    eb = await UdpEndpoint.open("127.0.0.1", 0, **kw)
    ta, tb = RudpTransport.over(ea, config_a), RudpTransport.over(eb, config_b)
    with ea, eb:
        async with trio.open_nursery() as nursery:
            for ep, t in ((ea, ta), (eb, tb)):
                await nursery.start(ep.run, t.handle_datagrams)
                await nursery.start(t.serve)
            yield ta, tb
            nursery.cancel_scope.cancel()


async def pair(ta: RudpTransport, tb: RudpTransport) -> tuple[RudpSession, RudpSession]:
    addr = tb.endpoint.local_address
    async with trio.open_nursery() as nursery:
        accepted: list[RudpSession] = []

        async def accept() -> None:
            accepted.append(await tb.accept())

        nursery.start_soon(accept)
        sa = await ta.connect(addr)
    return sa, accepted[0]


@pytest.mark.parametrize("offload", [True, False], ids=["gso_gro", "plain"])
async def test_messages_both_ways_over_loopback(offload: bool) -> None:
    async with transports(gso=offload, gro=offload) as (ta, tb):
        assert isinstance(ta, Transport)
        sa, sb = await pair(ta, tb)
        assert isinstance(sa, Session) and sa.is_open and sb.is_open
        assert sb.remote_address == ta.endpoint.local_address
        messages = [bytes([i % 256]) * (i * 997 % 70_000) for i in range(200)]

        async def send_all() -> None:
            for m in messages:
                await sa.send(m)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_all)
            got = [await sb.receive() for _ in messages]
        assert got == [(CHANNEL_BULK, m) for m in messages]
        await sb.send(b"reply", channel=CHANNEL_CONTROL)
        assert await sa.receive() == (CHANNEL_CONTROL, b"reply")
        stats = sa.stats()
        assert stats["bytes_sent"] > sum(map(len, messages))
        assert stats["srtt_ms"] > 0 and stats["messages_sent"] == 200
        totals = ta.stats()
        assert totals["connections"] == 1 and totals["bytes_sent"] >= stats["bytes_sent"]


async def test_send_applies_backpressure_when_the_reader_is_slow() -> None:
    config = RudpConfig(receive_window=64 * 1024, send_buffer=128 * 1024)
    async with transports(config, config) as (ta, tb):
        sa, sb = await pair(ta, tb)
        sent = 0
        with trio.move_on_after(1.0):
            while sent < 1000:
                await sa.send(b"b" * 10_000)
                sent += 1
        assert sent < 40  # blocked long before 10 MB: window + send buffer, no more
        received = 0
        async with trio.open_nursery() as nursery:

            async def send_rest() -> None:
                for _ in range(sent, 300):
                    await sa.send(b"b" * 10_000)

            nursery.start_soon(send_rest)
            while received < 300:
                _, message = await sb.receive()
                assert message == b"b" * 10_000
                received += 1


async def test_send_nowait_queues_at_once_and_refuses_when_the_buffer_is_full() -> None:
    # for callers that must not block (a synchronous callback, a fan-out to many peers):
    # trio's convention, WouldBlock while the send buffer is full
    config = RudpConfig(receive_window=64 * 1024, send_buffer=128 * 1024)
    async with transports(config, config) as (ta, tb):
        sa, sb = await pair(ta, tb)
        sa.send_nowait(b"first", channel=CHANNEL_CONTROL)
        assert await sb.receive() == (CHANNEL_CONTROL, b"first")
        queued = 0
        with pytest.raises(trio.WouldBlock):
            while queued < 1000:
                sa.send_nowait(b"b" * 10_000)
                queued += 1
        assert 0 < queued < 40  # refused once the buffer held its 128 KiB, nothing dropped
        for _ in range(queued):
            assert await sb.receive() == (CHANNEL_BULK, b"b" * 10_000)
        sa.send_nowait(b"room again")
        assert await sb.receive() == (CHANNEL_BULK, b"room again")
        sa.abort()
        with pytest.raises(SessionClosed):
            sa.send_nowait(b"after abort")


async def test_a_queued_message_can_be_withdrawn_before_it_leaves() -> None:
    """``send`` returns the kernel's QueuedMessage: a message still waiting behind others
    is taken back (the peer never sees it); one already leaving is not."""
    async with transports() as (ta, tb):
        sa, sb = await pair(ta, tb)
        big = b"B" * 2_000_000  # far more than the first windows carry
        first = sa.send_nowait(big)
        second = sa.send_nowait(b"cancelled")
        assert isinstance(first, QueuedMessage) and isinstance(second, QueuedMessage)
        assert second.withdraw() is True
        assert first.withdraw() is False  # its first packets are on their way
        third = await sa.send(b"after")
        assert await sb.receive() == (CHANNEL_BULK, big)
        assert await sb.receive() == (CHANNEL_BULK, b"after")
        assert third is not None and third.withdraw() is False  # delivered


async def test_graceful_close_then_receive_raises() -> None:
    async with transports() as (ta, tb):
        sa, sb = await pair(ta, tb)
        for i in range(20):
            await sa.send(b"%d" % i)
        await sa.aclose()
        assert not sa.is_open
        got = [await sb.receive() for _ in range(20)]
        assert [m for _, m in got] == [b"%d" % i for i in range(20)]
        with pytest.raises(SessionClosed, match="closed by peer"):
            await sb.receive()
        with pytest.raises(SessionClosed):
            await sa.send(b"after close")


async def test_abort_wakes_the_peer_reader() -> None:
    async with transports() as (ta, tb):
        sa, sb = await pair(ta, tb)
        async with trio.open_nursery() as nursery:

            async def reader() -> None:
                with pytest.raises(SessionClosed, match="reset by peer"):
                    await sb.receive()

            nursery.start_soon(reader)
            await trio.sleep(0.05)
            sa.abort()


async def test_connect_to_a_silent_port_fails_cleanly() -> None:
    silent = await UdpEndpoint.open("127.0.0.1", 0)  # bound but nobody answers
    with silent:
        async with transports(RudpConfig(connect_timeout_ms=300, initial_rto_ms=100)) as (ta, _):
            with pytest.raises(SessionClosed, match="handshake timed out"):
                await ta.connect(silent.local_address)


async def test_many_sessions_share_one_socket() -> None:
    async with transports() as (ta, tb):
        pairs = [await pair(ta, tb) for _ in range(10)]
        assert len({sa.connection.local_cid for sa, _ in pairs}) == 10
        for i, (sa, _) in enumerate(pairs):
            await sa.send(b"session %d" % i)
        for i, (_, sb) in enumerate(pairs):
            assert await sb.receive() == (CHANNEL_BULK, b"session %d" % i)
        assert ta.stats()["connections"] == 10


async def test_transport_stops_cleanly_and_tells_peers() -> None:
    ea = await UdpEndpoint.open("127.0.0.1", 0)
    async with transports() as (_, tb):
        ta = RudpTransport.over(ea)
        with ea:
            async with trio.open_nursery() as nursery:
                await nursery.start(ea.run, ta.handle_datagrams)
                await nursery.start(ta.serve)
                sa, sb = await pair(ta, tb)
                nursery.cancel_scope.cancel()
        with pytest.raises(SessionClosed):
            with trio.fail_after(5):
                await sb.receive()
        assert sa.close_reason == "transport stopped"
        with pytest.raises(SessionClosed, match="stopped"):
            await ta.accept()
        with pytest.raises(SessionClosed, match="stopped"):
            await ta.connect(tb.endpoint.local_address)
        # A task cancelled at the moment the transport stopped (its node is shutting down)
        # must see its cancellation, not an error its node's nursery would have to carry.
        for call in (ta.accept, lambda: ta.connect(tb.endpoint.local_address)):
            with trio.CancelScope() as scope:
                scope.cancel()
                await call()
            assert scope.cancelled_caught


def node_config(**rudp: object) -> NodeConfig:
    return NodeConfig.from_mapping(
        {"node": {"port": 0, "host": "127.0.0.1", "ephemeral": True, "repeater": "off"}, "rudp": rudp}
    )


async def test_two_real_nodes_become_peers_over_rudp() -> None:
    async with open_node(node_config(heartbeat_ms=500)) as a, open_node(node_config()) as b:
        assert isinstance(a.transport, RudpTransport)
        assert a.config.section("rudp").heartbeat_ms == 500
        assert a.peers is not None and b.peers is not None
        peer = await a.peers.connect(b.endpoint.local_address)
        assert peer.id == b.id
        with trio.fail_after(5):
            while a.id not in [p.id for p in b.peers.all()]:  # noqa: ASYNC110 - polling another node
                await trio.sleep(0.01)
        srtt = peer.stats()["srtt_ms"]
        assert isinstance(srtt, float) and srtt > 0
        assert a.fields.get("net.sessions") == 1
        assert a.fields.get("net.upload_limit_kbps") == 0.0  # nothing has queued on loopback
        a.settings.set("upload_limit_kbps", 64)
        assert a.fields.get("net.upload_limit_kbps") == 64.0


class EightPacketWindow(FixedWindow):
    WINDOW_PACKETS = 8


class FixedWindowPlugin:
    @hookimpl
    def p2pkit_rudp_congestion_controllers(self) -> Mapping[str, object]:
        return {"fixed-window": EightPacketWindow}


async def test_a_plugin_adds_a_congestion_controller() -> None:
    config = node_config(congestion="fixed-window")
    async with open_node(config, plugins=[FixedWindowPlugin()]) as a, open_node(node_config()) as b:
        assert a.peers is not None
        peer = await a.peers.connect(b.endpoint.local_address)
        assert peer.stats()["congestion"] == "fixed"


async def test_unknown_controller_is_a_config_error() -> None:
    from p2pkit import ConfigError

    with pytest.raises(ConfigError, match=r"rudp\.congestion"):
        async with open_node(node_config(congestion="warp-drive")):
            pass


class ChokedEndpoint:
    """A real UDP endpoint whose socket buffer is "full" after a few datagrams per call,
    the way a busy socket answers EAGAIN: exercises the driver's partial-accept path."""

    def __init__(self, real: UdpEndpoint, per_call: int = 3) -> None:
        self.real = real
        self.stats = real.stats
        self.per_call = per_call
        self.waits = 0

    @property
    def local_address(self) -> tuple[str, int]:
        return self.real.local_address

    def send(self, data: bytes, addr: tuple[str, int]) -> bool:
        return self.real.send(data, addr)

    def send_batch(self, datagrams: Sequence[Datagram]) -> int:
        return self.real.send_batch(list(datagrams)[: self.per_call])

    async def wait_writable(self) -> None:
        self.waits += 1
        await self.real.wait_writable()

    async def run(self, dispatch: DispatchFn, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.real.run(dispatch, task_status=task_status)

    def close(self) -> None:
        self.real.close()


async def test_partial_send_batch_is_finished_after_wait_writable() -> None:
    real_a = await UdpEndpoint.open("127.0.0.1", 0)
    eb = await UdpEndpoint.open("127.0.0.1", 0)
    ea = ChokedEndpoint(real_a)
    ta, tb = RudpTransport.over(ea), RudpTransport.over(eb)  # type: ignore[arg-type]
    with real_a, eb:
        async with trio.open_nursery() as nursery:
            for ep, t in ((ea, ta), (eb, tb)):
                await nursery.start(ep.run, t.handle_datagrams)
                await nursery.start(t.serve)
            sa, sb = await pair(ta, tb)
            payload = bytes(range(256)) * 4096  # 1 MiB: hundreds of datagrams per flush
            await sa.send(payload)
            with trio.fail_after(20):
                assert await sb.receive() == (CHANNEL_BULK, payload)
            nursery.cancel_scope.cancel()
    assert ea.waits > 0 and ta.backlog_waits > 0
    assert ta.backlog_dropped == 0


async def test_a_cancelled_call_takes_nothing() -> None:
    """A receive, send or accept whose scope is already cancelled raises Cancelled
    without consuming a message or a connection (it used to take the item first and
    raise at the checkpoint after it: the message was lost, a sent one queued twice)."""
    async with transports() as (ta, tb):
        sa, sb = await pair(ta, tb)
        await sa.send(b"one", channel=CHANNEL_CONTROL)
        await sa.send(b"two", channel=CHANNEL_CONTROL)
        with trio.fail_after(5):  # both arrived, nobody has read them
            while sb.connection.recv_streams.inbox_count < 2:  # noqa: ASYNC110 - polling the peer
                await trio.sleep(0.01)
        with trio.CancelScope() as scope:
            scope.cancel()
            await sb.receive()
        assert scope.cancelled_caught
        assert await sb.receive() == (CHANNEL_CONTROL, b"one")

        with trio.CancelScope() as scope:
            scope.cancel()
            await sa.send(b"three", channel=CHANNEL_CONTROL)
        assert scope.cancelled_caught
        assert await sb.receive() == (CHANNEL_CONTROL, b"two")
        with trio.move_on_after(0.5):  # "three" was never queued
            await sb.receive()
            pytest.fail("a cancelled send was delivered")

        # an incoming session waiting in the accept queue stays there
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ta.connect, tb.endpoint.local_address)
            with trio.fail_after(5):
                while not tb.mux.accept_queue:  # noqa: ASYNC110 - polling the peer
                    await trio.sleep(0.01)
        with trio.CancelScope() as scope:
            scope.cancel()
            await tb.accept()
        assert scope.cancelled_caught
        with trio.fail_after(1):
            assert (await tb.accept()).is_open
