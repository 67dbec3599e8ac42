"""The peer layer over the real rudp transport on loopback."""

import contextlib

import msgspec
import pytest
import trio

from p2pkit import NodeConfig, RemoteProtocolError, SessionClosed, hookimpl, open_node
from p2pkit.peers import decode_message, encode_message

ONLY_TRANSPORT = ["store", "swarm", "flooding"]


def config(**node):
    return NodeConfig.from_mapping({"node": {
        "ephemeral": True, "host": "127.0.0.1", "port": 0, "disable": ONLY_TRANSPORT, **node}})


class Echo:
    """Protocol 'echo': answers every message; 'bad' is a protocol violation; 'boom' a bug."""

    name = "echo"

    def __init__(self):
        self.received = trio.Event()
        self.messages = []

    async def handle(self, peer, payload):
        self.messages.append(payload)
        self.received.set()
        if payload == b"bad":
            raise RemoteProtocolError("bad payload")
        if payload == b"boom":
            raise RuntimeError("a bug in the handler")
        if not payload.startswith(b"re:"):
            await peer.send("echo", b"re:" + payload)

    @hookimpl
    def p2pkit_message_protocols(self, node):
        return [self]


def addr(node):
    return ("127.0.0.1", node.endpoint.local_address[1])


async def wait_for(predicate, limit=10):
    """Poll ``predicate`` (state spread over two nodes: no single event covers it)."""
    with trio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.01)


async def test_connect_authenticates_both_sides_and_routes_messages():
    echo_a, echo_b = Echo(), Echo()
    async with open_node(config(), plugins=[echo_a]) as a, open_node(config(), plugins=[echo_b]) as b:
        with trio.fail_after(10):
            peer = await a.peers.connect(addr(b))
        assert peer.id == b.id
        await wait_for(lambda: b.peers.get(a.id) is not None)
        assert b.peers.get(a.id).listen_address == addr(a)
        assert a.fields.get("peer.count") == 1
        await peer.send("echo", b"hello")
        await wait_for(lambda: echo_a.messages == [b"re:hello"])
        assert echo_b.messages == [b"hello"]
        assert await a.peers.connect(addr(b)) is peer  # one session per peer


async def test_send_nowait_reaches_the_peer_without_a_task():
    echo_a, echo_b = Echo(), Echo()
    async with open_node(config(), plugins=[echo_a]) as a, open_node(config(), plugins=[echo_b]) as b:
        with trio.fail_after(10):
            peer = await a.peers.connect(addr(b))
        peer.send_nowait("echo", b"quick")
        assert peer.messages_out == 1
        await wait_for(lambda: echo_a.messages == [b"re:quick"])
        peer.close("done")
        with pytest.raises(SessionClosed, match="done"):
            peer.send_nowait("echo", b"too late")


async def test_a_protocol_violation_drops_only_that_peer():
    echo_b = Echo()
    async with open_node(config(), plugins=[Echo()]) as a, \
            open_node(config(), plugins=[echo_b]) as b, \
            open_node(config(), plugins=[Echo()]) as c:
        bad = await a.peers.connect(addr(b))
        good = await c.peers.connect(addr(b))
        await wait_for(lambda: len(b.peers) == 2)
        await bad.send("echo", b"boom")  # a handler bug: logged and counted, peer stays
        await wait_for(lambda: b"boom" in echo_b.messages)
        assert b.peers.get(a.id).handler_errors == 1
        await bad.send("echo", b"bad")
        await wait_for(lambda: b.peers.get(a.id) is None)
        assert b.peers.get(c.id) is not None
        await good.send("echo", b"still here")
        await wait_for(lambda: b"still here" in echo_b.messages)


async def test_peer_events_and_unknown_protocols():
    async with open_node(config()) as a, open_node(config(), plugins=[Echo()]) as b:
        async with a.events.subscribe() as events:
            peer = await a.peers.connect(addr(b))
            with trio.fail_after(10):
                event = await events.receive()
            assert (event.kind, event.peer_id) == ("peer.up", b.id)
            await peer.send("nobody-speaks-this", b"x")
            await wait_for(lambda: b.peers.get(a.id) is not None
                           and b.peers.unknown_protocol == 1)
            peer.close("test over")
            with trio.fail_after(10):
                event = await events.receive()
            assert (event.kind, event.reason) == ("peer.down", "test over")
        await wait_for(lambda: b.peers.get(a.id) is None)
        with pytest.raises(SessionClosed):
            await peer.send("echo", b"late")


async def test_simultaneous_connections_settle_on_one_peer_each_side():
    async with open_node(config()) as a, open_node(config()) as b:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.peers.connect, addr(b))
            nursery.start_soon(b.peers.connect, addr(a))
        await wait_for(lambda: len(a.peers) == 1 and len(b.peers) == 1)
        await trio.sleep(0.5)  # give a losing duplicate time to be torn down
        assert len(a.peers) == 1 and len(b.peers) == 1
        pa, pb = a.peers.get(b.id), b.peers.get(a.id)
        assert pa is not None and pb is not None and not pa.closed.is_set()


async def test_connecting_to_ourselves_is_refused():
    async with open_node(config()) as a:
        with pytest.raises(SessionClosed, match="ourselves"):
            await a.peers.connect(addr(a))
        assert len(a.peers) == 0


async def test_max_connections_is_enforced():
    async with open_node(config()) as b, open_node(config()) as a, open_node(config()) as c:
        b.settings.set("max_connections", 1)
        await a.peers.connect(addr(b))
        with pytest.raises((SessionClosed, trio.TooSlowError)):
            await c.peers.connect(addr(b))
        assert len(b.peers) == 1


def test_message_frames_are_validated():
    assert decode_message(encode_message("swarm", b"data")) == ("swarm", b"data")
    for garbage in (b"", b"\x00", b"\x05ab", b"\x40" + b"x" * 64, b"\x02\xff\xfe"):
        with pytest.raises(RemoteProtocolError):
            decode_message(garbage)
    with pytest.raises(ValueError):
        encode_message("x" * 33, b"")


async def _hostile_handshake(a, b, **overrides):
    """Handshake with ``b`` over a raw session from ``a``, sending a Hello with ``overrides``
    (and a valid Auth); returns b's handshake failure count once b has judged it."""
    from p2pkit.peers import _AUTH_CONTEXT, Auth, Hello, _encoder

    session = await a.transport.connect(addr(b))
    fields = {"version": 1, "public_key": a.identity.public_key, "nonce": b"n" * 16,
              "listen_port": 1, "protocols": ["echo"], "agent": "x", **overrides}
    await session.send(_encoder.encode(Hello(**fields)))
    _, raw = await session.receive()
    theirs = msgspec.msgpack.decode(raw, type=Hello)
    signed = _AUTH_CONTEXT + theirs.nonce + a.identity.public_key
    with contextlib.suppress(SessionClosed):
        await session.send(_encoder.encode(Auth(a.identity.sign(signed))))
    await wait_for(lambda: b.peers.handshake_failures or b.peers.get(a.id) is not None)
    session.abort()
    return b.peers.handshake_failures


@pytest.mark.parametrize("overrides", [
    {"listen_port": 70000},  # would be relayed in peer exchange and get *us* dropped
    {"listen_port": -1},
    {"protocols": ["p"] * 10_000},
    {"protocols": ["x" * 100]},
    {"agent": "a" * 100_000},
])
async def test_a_hello_outside_its_bounds_is_refused(overrides):
    async with open_node(config(), plugins=[Echo()]) as a, open_node(config(), plugins=[Echo()]) as b:
        with trio.fail_after(10):
            assert await _hostile_handshake(a, b, **overrides) == 1
        assert b.peers.get(a.id) is None


async def test_a_hello_within_bounds_is_accepted_by_the_hostile_helper():
    # the helper above is honest apart from its overrides: without them, b accepts it
    async with open_node(config(), plugins=[Echo()]) as a, open_node(config(), plugins=[Echo()]) as b:
        with trio.fail_after(10):
            assert await _hostile_handshake(a, b) == 0
        assert b.peers.get(a.id).listen_address == ("127.0.0.1", 1)


async def test_max_connections_holds_against_handshakes_in_parallel():
    """Identities are free: several handshakes started before any finishes must not all
    be admitted past max_connections."""
    from p2pkit import Identity
    from p2pkit.peers import _AUTH_CONTEXT, Auth, Hello, _encoder

    async with open_node(config()) as b, open_node(config()) as a:
        b.settings.set("max_connections", 2)
        sessions = []
        for _ in range(5):
            ident = Identity.generate()
            session = await a.transport.connect(addr(b))
            await session.send(_encoder.encode(Hello(
                version=1, public_key=ident.public_key, nonce=b"n" * 16, listen_port=1,
                protocols=[])))
            sessions.append((ident, session))
        for ident, session in sessions:  # every Hello is in before the first Auth
            _, raw = await session.receive()
            theirs = msgspec.msgpack.decode(raw, type=Hello)
            with contextlib.suppress(SessionClosed):
                await session.send(_encoder.encode(Auth(ident.sign(
                    _AUTH_CONTEXT + theirs.nonce + ident.public_key))))
        await wait_for(lambda: len(b.peers) + b.peers.refused >= 5 or len(b.peers) > 2)
        assert len(b.peers) == 2 and b.peers.refused == 3
        for _, session in sessions:
            session.abort()
