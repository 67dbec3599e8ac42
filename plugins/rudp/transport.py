"""The rudp transport: the plugin, its sessions, and the trio tasks behind them.

It is deliberately thin. Incoming batches arrive through the demux as a synchronous call
on the compiled :class:`.driver.MuxDriver`; the multiplexer handles the whole batch, then
everything it produced leaves in one ``endpoint.send_batch`` (a partial accept is
finished by the writer task here after ``wait_writable``). One timer
(:mod:`p2pkit.timers`) is armed at the multiplexer's earliest deadline: a trio task on a
real socket, the network's own loop in the simulator, where a heartbeat then wakes no
task at all. Sessions wait on parking lots that the driver unparks when their connection
changed: no task is woken per datagram and nothing awaits per packet.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from p2pkit._exceptions import SessionClosed
from p2pkit.addresses import is_ip_literal
from p2pkit.capabilities import CHANNEL_BULK
from p2pkit.endpoint import Address, Datagram, DatagramEndpoint
from p2pkit.events import Event, changed_setting
from p2pkit.fields import Field, FieldType
from p2pkit.hookspecs import hookimpl
from p2pkit.timers import open_timer

from .config import RudpConfig
from .congestion import CongestionFactory, congestion_factory
from .connection import CLOSED, ESTABLISHED, FIN_WAIT, SYN_RECEIVED, SYN_SENT, TIME_WAIT, Connection
from .driver import MIN_TIMER_STEP, MuxDriver
from .mux import Multiplexer
from .packet import MAGIC

if TYPE_CHECKING:
    from p2pkit.node import Node

log = logging.getLogger("p2pkit.rudp")


class QueuedRudpMessage:
    """A message queued on a rudp session (:class:`p2pkit.capabilities.QueuedMessage`)."""

    __slots__ = ("_channel", "_session", "_token")

    def __init__(self, session: RudpSession, channel: int, token: memoryview) -> None:
        self._session = session
        self._channel = channel
        self._token = token

    def withdraw(self) -> bool:
        session = self._session
        if not session.connection.withdraw(self._channel, self._token):
            return False
        session._lot.unpark_all()  # a writer waiting for buffer space may have it now
        return True


class RudpSession:
    """A :class:`p2pkit.capabilities.Session` over one rudp connection."""

    def __init__(self, transport: RudpTransport, conn: Connection) -> None:
        self._transport = transport
        self.connection = conn
        self._lot = trio.lowlevel.ParkingLot()  # readers, writers, closers: any change

    def __repr__(self) -> str:
        return f"<RudpSession {self.connection!r}>"

    @property
    def remote_address(self) -> Address:
        return self.connection.remote

    @property
    def is_open(self) -> bool:
        return self.connection.state is ESTABLISHED

    @property
    def close_reason(self) -> str | None:
        return self.connection.close_reason

    def _closed_error(self) -> SessionClosed:
        conn = self.connection
        return SessionClosed(f"session with {conn.remote[0]}:{conn.remote[1]} is closed "
                             f"({conn.close_reason or conn.state.value})")

    async def send(self, message: bytes, *, channel: int = CHANNEL_BULK) -> QueuedRudpMessage:
        """Queue ``message`` on ``channel``; waits while the send buffer is full."""
        conn = self.connection
        await trio.lowlevel.checkpoint_if_cancelled()  # as in receive: a cancelled call queues nothing
        parked = False
        while not conn.can_send:
            if conn.state in (CLOSED, TIME_WAIT, FIN_WAIT):
                raise self._closed_error()
            blocked = self._transport.driver.blocked_writers
            blocked[self] = None
            try:
                await self._lot.park()
            finally:
                blocked.pop(self, None)
            parked = True
        queued = self.send_nowait(message, channel=channel)
        if not parked:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return queued

    def send_nowait(self, message: bytes, *, channel: int = CHANNEL_BULK) -> QueuedRudpMessage:
        """Queue ``message`` without waiting; ``trio.WouldBlock`` while the buffer is full."""
        conn = self.connection
        if conn.state in (CLOSED, TIME_WAIT, FIN_WAIT):
            raise self._closed_error()
        if not conn.can_send:
            raise trio.WouldBlock
        token = conn.send(message, channel)
        self._transport.driver.flush(conn)
        return QueuedRudpMessage(self, channel, token)

    async def receive(self) -> tuple[int, bytes]:
        """The next message as (channel, bytes), lowest channel first."""
        conn = self.connection
        # trio's pattern for "take, then yield": the cancel point comes before anything
        # is taken (a cancelled receive loses no message), the schedule point after, and
        # a receive that had to wait made both by parking — no second trip through the
        # scheduler for every message that was waited for.
        await trio.lowlevel.checkpoint_if_cancelled()
        parked = False
        while True:
            item = conn.next_message()
            if item is not None:
                if conn.wants_output:
                    self._transport.driver.flush(conn)
                if not parked:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return item
            if conn.state is CLOSED or conn.state is TIME_WAIT:
                raise self._closed_error()
            await self._lot.park()
            parked = True

    async def aclose(self) -> None:
        """Deliver what is queued, then FIN; returns when the peer confirmed or gave up."""
        conn = self.connection
        if conn.state is CLOSED:
            await trio.lowlevel.checkpoint()
            return
        conn.close()
        self._transport.driver.flush(conn)
        try:
            while conn.state not in (CLOSED, TIME_WAIT):
                await self._lot.park()
        except trio.Cancelled:
            self.abort()
            raise

    def abort(self) -> None:
        """Close now, telling the peer (RESET)."""
        self.connection.abort()
        self._transport.driver.flush(self.connection)

    def hold_large_messages(self, held: bool) -> None:
        """While held, the peer gets a small window (64 KiB) and no room beyond it for a
        large message (it waits; nothing is lost); released, the configured ones."""
        conn = self.connection
        conn.hold_large_messages(held)
        if conn.wants_output:  # the larger window, told at once
            self._transport.driver.flush(conn)

    def stats(self) -> Mapping[str, Any]:
        return self.connection.stats(trio.current_time())

    def _wake(self) -> None:
        self._lot.unpark_all()


class RudpTransport:
    """The ``transport`` capability: ``connect``, ``accept``, sessions, stats.

    Build it with a node (``RudpTransport(node)``, what the kernel does) or directly over
    an endpoint for tests and tools (``RudpTransport.over(endpoint, config)``); then run
    ``endpoint.run(transport.handle_datagrams)`` and ``transport.serve`` in a nursery.
    """

    def __init__(self, node: Node | None = None, *, endpoint: DatagramEndpoint | None = None,
                 config: RudpConfig | None = None,
                 extra_controllers: Mapping[str, CongestionFactory] | None = None) -> None:
        self._node = node
        self._endpoint = endpoint
        if config is None and node is not None:
            config = node.config.section("rudp")
        self.config = config or RudpConfig()
        extra = dict(extra_controllers or {})
        if node is not None:
            for mapping in node.pm.hook.p2pkit_rudp_congestion_controllers():
                extra.update(mapping or {})
        factory = congestion_factory(self.config.congestion, extra)
        now = trio.current_time() if _in_trio() else 0.0
        self.mux = Multiplexer(self.config, cc_factory=factory, now=now)
        self.mux.hold_large_messages = node is not None  # its handshake releases each session
        self.driver = MuxDriver(self.mux, lambda: self.endpoint)
        self._sessions: dict[Connection, RudpSession] = {}
        self.driver.sessions = self._sessions  # type: ignore[assignment]  # one dict; its sessions are Waiters
        self._stopped = False
        self.backlog_waits = 0  # times the writer waited for a full socket
        if node is not None:  # the user's upload limit holds for all sessions together
            self.mux.set_upload_limit(node.settings.upload_limit_kbps * 1024, now)

    @property
    def backlog_dropped(self) -> int:
        """Datagrams dropped because the backlog waiting for socket space overflowed."""
        return self.driver.backlog_dropped

    @classmethod
    def over(cls, endpoint: DatagramEndpoint, config: RudpConfig | None = None, **kw: Any) -> RudpTransport:
        return cls(None, endpoint=endpoint, config=config, **kw)

    @property
    def endpoint(self) -> DatagramEndpoint:
        if self._endpoint is None:
            assert self._node is not None
            self._endpoint = self._node.endpoint
        return self._endpoint

    # ------------------------------------------------------------------ plugin hooks

    @hookimpl
    def p2pkit_datagram_handlers(self, node: Node) -> Iterable[tuple[Iterable[int], Any]]:
        return [([MAGIC], self.driver.handle_datagrams)]  # compiled: no hop through here

    @hookimpl
    def p2pkit_services(self, node: Node) -> Iterable[Any]:
        return [self.serve]

    @hookimpl
    def p2pkit_event(self, node: Node, event: Event) -> None:
        change = changed_setting(event)
        if change is not None and change[0] == "upload_limit_kbps":
            self.set_upload_limit(int(change[1]) * 1024)

    def set_upload_limit(self, rate_Bps: float) -> None:
        """Everything this transport sends, at most ``rate_Bps`` bytes/s on the wire, UDP/IP
        headers included (0 = no limit); the sessions share it round robin (shaper.py)."""
        now = trio.current_time()
        self.mux.set_upload_limit(rate_Bps, now)
        if self.driver.timer is not None:  # serving: waiting sessions go, the timer re-arms
            self.driver.flush_all(now)

    @hookimpl
    def p2pkit_fields(self, node: Node) -> Iterable[Field]:
        def total(key: str) -> float:
            return self.mux.totals(trio.current_time())[key]

        return [
            Field("net.sessions", FieldType.INT, lambda: int(total("connections")),
                  description="established rudp sessions"),
            Field("net.retransmits", FieldType.INT, lambda: int(total("retransmits")),
                  description="rudp packets retransmitted (live sessions)"),
            Field("net.lost_packets", FieldType.INT, lambda: int(total("lost_packets")),
                  description="rudp packets declared lost (live sessions)"),
            Field("net.srtt_ms", FieldType.FLOAT, self._mean_srtt_ms,
                  description="mean smoothed RTT over rudp sessions"),
            Field("net.malformed", FieldType.INT, lambda: self.mux.stats.malformed,
                  description="malformed rudp datagrams dropped"),
            Field("net.upload_limit_kbps", FieldType.FLOAT, lambda: self.mux.shaper.rate / 1024,
                  description="upload limit in force, KiB/s on the wire (configured, or found "
                              "from the uplink's queueing delay); 0 = none"),
        ]

    def _mean_srtt_ms(self) -> float:
        values = [c.rtt.srtt for c in self.mux.connections.values() if c.state is ESTABLISHED]
        return 1000 * sum(values) / len(values) if values else 0.0

    # ------------------------------------------------------------------ transport API

    async def connect(self, addr: Address) -> RudpSession:
        """Open a session to ``addr``; SessionClosed if the handshake fails."""
        if self._stopped:
            await trio.lowlevel.checkpoint()  # a node shutting down sees Cancelled, not this
            raise SessionClosed("the rudp transport has stopped")
        if not is_ip_literal(addr[0]):  # a name would be looked up at every datagram
            await trio.lowlevel.checkpoint()
            raise SessionClosed(f"cannot connect to {addr[0]!r}: not an IP address "
                                "(node.peers.connect resolves names)")
        conn = self.mux.connect((addr[0], int(addr[1])), trio.current_time())
        session = self._session_for(conn)
        self.driver.flush(conn)
        try:
            while conn.state is SYN_SENT or conn.state is SYN_RECEIVED:
                await session._lot.park()
        except trio.Cancelled:
            conn.abort("connect cancelled")
            self.driver.flush(conn)
            raise
        if conn.state is not ESTABLISHED:
            raise SessionClosed(f"cannot connect to {addr[0]}:{addr[1]}: {conn.close_reason}")
        return session

    async def accept(self) -> RudpSession:
        """Wait for the next incoming session."""
        await trio.lowlevel.checkpoint_if_cancelled()  # as in receive: nothing taken if cancelled
        parked = False
        while True:
            if self._stopped:
                # The transport stops when the node does: a task that was runnable at that
                # moment must see its cancellation here, not an error for the node's nursery.
                await trio.lowlevel.checkpoint()
                raise SessionClosed("the rudp transport has stopped")
            conn = self.mux.accept()
            if conn is not None:
                if conn.state is CLOSED:
                    continue
                if not parked:  # see receive
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return self._session_for(conn)
            await self.driver.accept_lot.park()
            parked = True

    def sessions(self) -> list[RudpSession]:
        return [s for c, s in self._sessions.items() if c.state is ESTABLISHED]

    def stats(self) -> Mapping[str, float]:
        return self.mux.totals(trio.current_time())

    def _session_for(self, conn: Connection) -> RudpSession:
        session = self._sessions.get(conn)
        if session is None:
            session = self._sessions[conn] = RudpSession(self, conn)
        return session

    # ------------------------------------------------------------------ driving

    def handle_datagrams(self, batch: list[Datagram], now: float) -> None:
        """Demux handler (see :class:`.driver.MuxDriver`)."""
        self.driver.handle_datagrams(batch, now)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Timers of every connection, and the writer for a full socket. Runs until cancelled."""
        async with trio.open_nursery() as nursery:
            driver = self.driver
            timer = driver.timer = open_timer(self.endpoint, driver.on_timer, nursery)
            now = trio.current_time()
            timer.set(max(self.mux.get_timer(), now + MIN_TIMER_STEP))
            task_status.started()
            try:
                await self._writer()
            finally:
                timer.close()
                driver.timer = None
                self._shutdown()

    async def _writer(self) -> None:
        endpoint, driver = self.endpoint, self.driver
        while True:
            await driver.backlog_event.wait()
            backlog = driver.backlog
            while backlog:
                self.backlog_waits += 1
                try:
                    await endpoint.wait_writable()
                except trio.ClosedResourceError:
                    backlog.clear()  # the socket is gone: so is what waited for it
                    return
                accepted = endpoint.send_batch(backlog)
                del backlog[:accepted]
            driver.backlog_event = trio.Event()

    def _shutdown(self) -> None:
        """Node stopping: tell every peer (RESET) and wake every waiter with SessionClosed."""
        self._stopped = True
        now = trio.current_time()
        for conn in list(self.mux.connections.values()):
            conn.abort("transport stopped")
        try:
            out = self.mux.datagrams_to_send(now)
            if out and not getattr(self.endpoint, "closed", False):
                self.endpoint.send_batch(out)
        except (OSError, trio.ClosedResourceError):
            pass
        self.driver.wake()
        self.driver.accept_lot.unpark_all()


def _in_trio() -> bool:
    try:
        trio.current_time()
    except RuntimeError:
        return False
    return True

