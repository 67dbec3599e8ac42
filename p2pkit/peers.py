"""Peers: authenticated sessions over the transport, with messages routed by protocol.

One session per peer. Both sides open with a Hello (public key, nonce, listen port,
protocols) and then an Auth that signs the other side's nonce, so a peer id is proven,
not claimed. Messages are ``[u8 name length][protocol name][payload]``; the payload is the
protocol's business. Handlers run in the peer's receive loop, one message at a time and in
order: a RemoteProtocolError drops that peer, any other exception is logged and counted, and
the loop goes on (its traceback logged once per protocol and exception type, so a peer's
garbage cannot flood the log). A handler that waits stalls every protocol of that session meanwhile, so
``await peer.send`` from a handler is refused (LocalProtocolError): with both sides doing
it under a burst, flow control would stop both sessions for good.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import msgspec
import trio

from ._exceptions import (
    LocalProtocolError,
    P2PKitError,
    PluginError,
    RemoteProtocolError,
    SessionClosed,
)
from .addresses import resolve
from .capabilities import CHANNEL_CONTROL, QueuedMessage, Session, Transport
from .demux import DatagramHandler
from .endpoint import Address
from .events import PeerDown, PeerUp
from .identity import PUBLIC_KEY_BYTES, Identity, node_id_of, verify
from .plugin_manager import calls_async

if TYPE_CHECKING:
    from .node import Node

__all__ = ["DatagramHandler", "MessageProtocol", "Peer", "PeerManager"]

log = logging.getLogger("p2pkit.peers")

HANDSHAKE_TIMEOUT = 10.0
# Incoming handshakes under way at once, in all and from one IP address: beyond them a
# new session is turned away (counted in ``refused``), so unfinished handshakes cannot
# pile up; an honest one takes a round trip or two. The total is rudp's own bound on
# handshakes (max_pending_handshakes): a hundred nodes bootstrapping from one at once
# (the swarm benchmark) all fit.
MAX_INCOMING_HANDSHAKES = 256
MAX_HANDSHAKES_PER_HOST = 8
PROTOCOL_VERSION = 1
MAX_PROTOCOL_NAME = 32
MAX_PROTOCOLS = 64
MAX_AGENT = 128
SLOW_HANDLER = 1.0  # seconds: a handler that returns later than this is counted and logged
NONCE_BYTES = 16
INCARNATION_BYTES = 8  # of the nonce: random once per run of a node (see _establish)
_AUTH_CONTEXT = b"p2pkit-peer-auth-v1"


class MessageProtocol(Protocol):
    """An application protocol carried between peers.

    ``handle`` runs in the session's receive loop, one message at a time and in order:
    until it returns, nothing else arrives from that peer, for any protocol. It must not
    wait on the network: reply with ``peer.send_nowait`` (``trio.WouldBlock`` while the
    session's send buffer is full), or start a task in ``node.nursery`` for work that
    waits. ``await peer.send`` here raises LocalProtocolError — two peers replying that
    way under a burst would both stop receiving for good. A handler that returns after
    more than ``SLOW_HANDLER`` seconds is counted (``node.peers.slow_handlers``) and
    logged. Raise RemoteProtocolError on a peer's garbage: that peer is dropped.
    """

    name: str

    async def handle(self, peer: Peer, payload: bytes) -> None: ...


class Hello(msgspec.Struct, forbid_unknown_fields=False):
    """Bounded: the listen port is relayed to others (peer exchange), where an
    out-of-range one would make *us* look malformed."""

    version: int
    public_key: Annotated[bytes, msgspec.Meta(min_length=PUBLIC_KEY_BYTES, max_length=PUBLIC_KEY_BYTES)]
    nonce: Annotated[bytes, msgspec.Meta(min_length=NONCE_BYTES, max_length=NONCE_BYTES)]
    listen_port: Annotated[int, msgspec.Meta(ge=0, le=65535)]
    protocols: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=MAX_PROTOCOL_NAME)]],
        msgspec.Meta(max_length=MAX_PROTOCOLS),
    ]
    agent: Annotated[str, msgspec.Meta(max_length=MAX_AGENT)] = ""


class Auth(msgspec.Struct):
    signature: bytes


_hello_decoder = msgspec.msgpack.Decoder(Hello)
_auth_decoder = msgspec.msgpack.Decoder(Auth)
_encoder = msgspec.msgpack.Encoder()


async def _send_control(session: Session, message: bytes) -> None:
    """A handshake message: queued at once (a new session's buffer has room), so the
    handshake yields only where it waits for the peer — each send's own trip through
    trio's scheduler cost ~9 µs, four per session; the receive that follows is the
    cancel point."""
    try:
        session.send_nowait(message, channel=CHANNEL_CONTROL)
    except trio.WouldBlock:  # a transport with a tiny buffer: wait like any sender
        await session.send(message, channel=CHANNEL_CONTROL)


def _last_stats(peer: Peer) -> dict[str, float | str]:
    """A closed session's ``stats()`` for PeerDown; a transport that cannot give them
    any more must not keep the peer from going."""
    try:
        return dict(peer.session.stats())
    except Exception:
        log.debug("no last stats from %r's session", peer, exc_info=True)
        return {}


def encode_message(protocol: str, payload: bytes) -> bytes:
    try:
        name = protocol.encode("ascii")
    except UnicodeEncodeError:
        name = b""  # refused below, with the same words
    if not 0 < len(name) <= MAX_PROTOCOL_NAME:
        raise ValueError(f"protocol name {protocol!r} must be 1..{MAX_PROTOCOL_NAME} ASCII bytes")
    return bytes((len(name),)) + name + payload


def decode_message(data: bytes) -> tuple[str, bytes]:
    if not data or not 0 < data[0] <= MAX_PROTOCOL_NAME or len(data) < 1 + data[0]:
        raise RemoteProtocolError("malformed peer message frame")
    try:
        name = data[1 : 1 + data[0]].decode("ascii")
    except UnicodeDecodeError:
        raise RemoteProtocolError("protocol name is not ASCII") from None
    return name, data[1 + data[0] :]


class Peer:
    """A connected, authenticated peer."""

    def __init__(
        self, manager: PeerManager, session: Session, node_id: str, hello: Hello, initiated: bool,
    ) -> None:
        self._manager = manager
        self.session = session
        self.id = node_id
        self.public_key = hello.public_key
        self.protocols = tuple(hello.protocols)
        self.agent = hello.agent
        self.incarnation = hello.nonce[:INCARNATION_BYTES]
        self.initiated = initiated  # we opened the session
        self.address: Address = session.remote_address
        self.listen_address: Address = (self.address[0], hello.listen_port)
        self.connected_at = trio.current_time()
        self.enabled = True  # the user may switch a peer off (web UI toggle)
        self.messages_in = 0
        self.messages_out = 0
        self.handler_errors = 0
        self.closed = trio.Event()
        self.close_reason = ""

    async def send(self, protocol: str, payload: bytes, *,
                   channel: int = CHANNEL_CONTROL) -> QueuedMessage | None:
        """Queue a message for ``protocol``; waits while the session's send buffer is full.
        Returns the transport's handle to withdraw it before it leaves (None if the
        transport has none), e.g. an upload the peer has cancelled meanwhile. Not from a
        message handler (LocalProtocolError): see :class:`MessageProtocol`."""
        if self.closed.is_set():
            raise SessionClosed(f"peer {self.id[:12]} is closed ({self.close_reason})")
        if trio.lowlevel.current_task() in self._manager._receivers:
            raise LocalProtocolError(
                f"await peer.send({protocol!r}, ...) from a message handler: handlers run in "
                "the session's receive loop and must not wait (use peer.send_nowait, or "
                "node.nursery.start_soon for a reply that may wait)")
        queued = await self.session.send(encode_message(protocol, payload), channel=channel)
        self.messages_out += 1
        return queued

    def send_nowait(self, protocol: str, payload: bytes, *,
                    channel: int = CHANNEL_CONTROL) -> QueuedMessage | None:
        """``send`` without waiting, for callers that must not block (a synchronous
        callback, a fan-out to many peers): raises ``trio.WouldBlock`` while the session's
        send buffer is full, and nothing is queued then."""
        if self.closed.is_set():
            raise SessionClosed(f"peer {self.id[:12]} is closed ({self.close_reason})")
        queued = self.session.send_nowait(encode_message(protocol, payload), channel=channel)
        self.messages_out += 1
        return queued

    def close(self, reason: str = "closed") -> None:
        self._manager._drop(self, reason, by_us=True)

    def stats(self) -> Mapping[str, float | str]:
        return self.session.stats()

    def __repr__(self) -> str:
        return f"Peer({self.id[:12]}… at {self.address[0]}:{self.address[1]})"


class PeerManager:
    def __init__(self, node: Node, transport: Transport) -> None:
        self._node = node
        self._transport = transport
        self._peers: dict[str, Peer] = {}
        self._protocols: dict[str, MessageProtocol] = {}
        self._connecting: dict[Address, trio.Event] = {}
        self._incarnation = secrets.token_bytes(INCARNATION_BYTES)
        self.unknown_protocol = 0
        self.handshake_failures = 0
        self.slow_handlers = 0  # messages whose handler took longer than SLOW_HANDLER
        self._slow_logged: set[str] = set()  # protocols warned about (once each)
        self.handler_errors = 0  # messages whose handler raised (not RemoteProtocolError)
        self._errors_logged: set[tuple[str, type[BaseException]]] = set()  # (protocol, type)
        self._receivers: set[trio.lowlevel.Task] = set()  # the sessions' receive loops
        self.refused = 0  # incoming sessions turned away: max_connections, or handshakes
        self._handshaking: Counter[str] = Counter()  # incoming handshakes under way, by host
        self.stopping = False  # the node is closing its sessions: no new ones
        self.on_peer_up: list[Callable[[Peer], None]] = []

    # ------------------------------------------------------------------ registry

    def add_protocols(self, protocols: Iterable[MessageProtocol]) -> None:
        for proto in protocols:
            encode_message(proto.name, b"")  # validates the name
            handle = getattr(proto, "handle", None)
            # awaited for every message: a plain def (or no handle) would fail on each one;
            # a callable that may return an awaitable (compiled, wrapped) is given the benefit
            if not callable(handle) or calls_async(handle) is False:
                raise PluginError(f"message protocol {proto.name!r}: handle must be an async def "
                                  f"(it is awaited for every message), got {handle!r}")
            if proto.name in self._protocols:
                raise ValueError(f"message protocol {proto.name!r} registered twice")
            self._protocols[proto.name] = proto

    def get(self, peer_id: str) -> Peer | None:
        return self._peers.get(peer_id)

    def all(self) -> list[Peer]:
        return list(self._peers.values())

    def __len__(self) -> int:
        return len(self._peers)

    def by_address(self, addr: Address) -> Peer | None:
        for peer in self._peers.values():
            if addr in (peer.address, peer.listen_address):
                return peer
        return None

    # ------------------------------------------------------------------ connecting

    async def connect(self, addr: Address) -> Peer:
        """The peer at ``addr``: an existing one, or a new authenticated session. A host
        name is resolved first (OSError if it does not resolve): the transport only ever
        sees IP literals (see :mod:`p2pkit.addresses`)."""
        addr = await resolve(addr)
        existing = self.by_address(addr)
        if existing is not None:
            return existing
        pending = self._connecting.get(addr)
        if pending is not None:  # someone is already dialing it: wait for their result
            await pending.wait()
            found = self.by_address(addr)
            if found is None:
                raise SessionClosed(f"could not connect to {addr[0]}:{addr[1]}")
            return found
        done = self._connecting[addr] = trio.Event()
        try:
            session = await self._transport.connect(addr)
            return await self._establish(session, initiated=True)
        finally:
            del self._connecting[addr]
            done.set()

    async def close_all(self, reason: str) -> None:
        """The node is stopping: every session delivers what it has queued and closes
        (FIN), all at once, so peers learn of it now and not after a timeout. No new
        session is taken meanwhile. The caller bounds the wait; a session still open
        when it runs out is reset."""
        self.stopping = True
        async with trio.open_nursery() as nursery:
            for peer in list(self._peers.values()):
                nursery.start_soon(self._close, peer, reason)

    async def _close(self, peer: Peer, reason: str) -> None:
        try:
            await peer.session.aclose()
        except (P2PKitError, OSError) as exc:  # it went first, or the socket did: closed anyway
            log.info("closing %r: %s", peer, exc)
        finally:
            self._drop(peer, reason, by_us=True)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Accept incoming sessions for as long as the node runs."""
        task_status.started()
        while True:
            session = await self._transport.accept()
            self._node.nursery.start_soon(self._accept_one, session)

    def _full(self) -> bool:
        return len(self._peers) >= self._node.settings.max_connections

    async def _accept_one(self, session: Session) -> None:
        host = session.remote_address[0]
        refusal = None
        if self._full():
            refusal = "max_connections reached"
        elif self._handshaking[host] >= MAX_HANDSHAKES_PER_HOST:
            refusal = f"{MAX_HANDSHAKES_PER_HOST} handshakes from {host} under way"
        elif self._handshaking.total() >= MAX_INCOMING_HANDSHAKES:
            refusal = f"{MAX_INCOMING_HANDSHAKES} handshakes under way"
        if refusal is not None:
            self.refused += 1
            log.info("refusing %s: %s", session.remote_address, refusal)
            session.abort()
            return
        self._handshaking[host] += 1
        try:
            await self._establish(session, initiated=False)
        except (SessionClosed, RemoteProtocolError, trio.TooSlowError) as exc:
            log.info("incoming handshake from %s failed: %s", session.remote_address, exc)
        finally:
            self._handshaking[host] -= 1
            if not self._handshaking[host]:
                del self._handshaking[host]

    async def _establish(self, session: Session, *, initiated: bool) -> Peer:
        identity: Identity = self._node.identity
        # the nonce's first half is this run's incarnation, the rest fresh per handshake
        # (a signature over it still cannot be replayed: 64 random bits each time); the
        # Hello stays as it was, byte for byte
        nonce = self._incarnation + secrets.token_bytes(NONCE_BYTES - INCARNATION_BYTES)
        hello = Hello(
            version=PROTOCOL_VERSION, public_key=identity.public_key, nonce=nonce,
            listen_port=self._node.endpoint.local_address[1],
            protocols=sorted(self._protocols), agent=f"p2pkit/{self._node.version}",
        )
        # until the peer has proved who it is, a small window and no room beyond it (rudp
        # held 8 MiB + a 64 MiB message for a peer that never said Hello); a transport
        # written before the contract had this method is taken as it is
        hold = getattr(session, "hold_large_messages", None)
        if hold is not None:
            hold(True)
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                await _send_control(session, _encoder.encode(hello))
                theirs = self._decode(_hello_decoder, await session.receive())
                signed = _AUTH_CONTEXT + theirs.nonce + identity.public_key
                await _send_control(session, _encoder.encode(Auth(identity.sign(signed))))
                auth = self._decode(_auth_decoder, await session.receive())
                if not verify(theirs.public_key, auth.signature, _AUTH_CONTEXT + nonce + theirs.public_key):
                    raise RemoteProtocolError("peer failed to prove its identity")
        except BaseException:
            self.handshake_failures += 1
            session.abort()
            raise
        if hold is not None:
            hold(False)
        peer_id = node_id_of(theirs.public_key)
        if self.stopping:
            session.abort()
            raise SessionClosed("the node is stopping")
        if peer_id == identity.node_id:
            session.abort()
            raise SessionClosed("connected to ourselves")
        existing = self._peers.get(peer_id)
        if existing is None and not initiated and self._full():
            # checked again: handshakes accepted while there was room finish in parallel
            self.refused += 1
            session.abort()
            raise SessionClosed("max_connections reached")
        if existing is not None and theirs.nonce[:INCARNATION_BYTES] != existing.incarnation:
            # The peer restarted (after kill -9 its old session lingers until rudp's idle
            # timeout): the new session is the live one. Taken for a simultaneous dial, it
            # was refused for ~10 s whenever the restarted side had the larger id.
            self._drop(existing, "replaced: the peer restarted", by_us=True)
        elif existing is not None:
            # Both sides dialled at once: keep the session opened by the smaller id, on both ends.
            keep_new = (initiated and identity.node_id < peer_id) or (
                not initiated and peer_id < identity.node_id
            )
            if not keep_new:
                session.abort()
                return existing
            self._drop(existing, "replaced by a simultaneous connection", by_us=True)
        peer = Peer(self, session, peer_id, theirs, initiated)
        self._peers[peer_id] = peer
        self._node.nursery.start_soon(self._receive_loop, peer)
        self._node.emit(PeerUp(peer_id=peer_id, address=peer.address))
        for callback in self.on_peer_up:
            callback(peer)
        return peer

    @staticmethod
    def _decode(decoder: msgspec.msgpack.Decoder[Any], message: tuple[int, bytes]) -> Any:
        try:
            return decoder.decode(message[1])
        except msgspec.DecodeError as exc:
            raise RemoteProtocolError(f"bad handshake message: {exc}") from None

    # ------------------------------------------------------------------ running

    async def _receive_loop(self, peer: Peer) -> None:
        reason = "closed by peer"
        by_us = False
        task = trio.lowlevel.current_task()
        self._receivers.add(task)  # what Peer.send refuses to wait in
        try:
            while True:
                _, data = await peer.session.receive()
                name, payload = decode_message(data)
                peer.messages_in += 1
                proto = self._protocols.get(name)
                if proto is None:
                    self.unknown_protocol += 1
                    continue
                started = trio.current_time()
                try:
                    await proto.handle(peer, payload)
                except RemoteProtocolError:
                    raise
                except Exception as exc:
                    self._handler_failed(peer, name, exc)
                took = trio.current_time() - started
                if took > SLOW_HANDLER:
                    self._slow_handler(name, took)
        except SessionClosed as exc:
            reason = str(exc) or reason
        except RemoteProtocolError as exc:
            reason = f"protocol error: {exc}"
            by_us = True
            log.info("dropping %r: %s", peer, exc)
        finally:
            self._receivers.discard(task)
            self._drop(peer, reason, by_us=by_us)

    def _handler_failed(self, peer: Peer, name: str, exc: Exception) -> None:
        """Counted always; the traceback logged once per protocol and exception type: a
        peer sending garbage a plugin trips over must not be able to flood the log (2000
        messages made 14000 lines). Later ones go to the debug log, one line each."""
        peer.handler_errors += 1
        self.handler_errors += 1
        key = (name, type(exc))
        if key in self._errors_logged:
            log.debug("protocol %r failed on a message from %r: %s: %s",
                      name, peer, type(exc).__name__, exc)
            return
        self._errors_logged.add(key)
        log.error("protocol %r failed on a message from %r (logged once per protocol and "
                  "exception type; counted in node.peers.handler_errors and the peer's)",
                  name, peer, exc_info=exc)

    def _slow_handler(self, name: str, seconds: float) -> None:
        self.slow_handlers += 1
        if name not in self._slow_logged:  # once per protocol: it is the plugin's habit
            self._slow_logged.add(name)
            log.warning("protocol %r's handler took %.1f s: it stalls every protocol of that "
                        "session meanwhile; handlers must not wait (start a task instead)",
                        name, seconds)

    def _drop(self, peer: Peer, reason: str, *, by_us: bool = False) -> None:
        """``by_us``: this node ended the session (a plugin closed the peer, a protocol
        error, a replacement, the node stopping), not the peer or the network."""
        if peer.closed.is_set():
            return
        peer.close_reason = reason
        peer.closed.set()
        if self._peers.get(peer.id) is peer:
            del self._peers[peer.id]
        peer.session.abort()
        self._node.emit(PeerDown(peer_id=peer.id, reason=reason, stats=_last_stats(peer), by_us=by_us))
