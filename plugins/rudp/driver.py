"""Driving one multiplexer: datagram batches in, one ``send_batch`` out, one timer armed.

Split from :mod:`.transport` (the plugin and the session API) because this runs for every
batch and every timer and is compiled with mypyc (see setup.py), which a pluggy plugin
class cannot be: its hook markers are attributes set on the methods.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final, Protocol

import trio

from p2pkit.endpoint import Datagram, DatagramEndpoint
from p2pkit.timers import Timer

from .connection import CLOSED, ESTABLISHED, Connection
from .mux import Multiplexer

MAX_BACKLOG: Final = 20000  # datagrams waiting for socket space; beyond that they are lost like any
MIN_TIMER_STEP: Final = 50e-6  # never spin: a timer due "now" fires after at least this


class Waiter(Protocol):
    """A session as the driver sees it: something to wake when its connection changed."""

    @property
    def connection(self) -> Connection: ...

    def _wake(self) -> None: ...


class MuxDriver:
    """The multiplexer's I/O: what it produced leaves in one ``send_batch`` (a partial
    accept is finished by the transport's writer task after ``wait_writable``), the timer
    follows its earliest deadline, and sessions whose connection changed are woken."""

    def __init__(self, mux: Multiplexer, endpoint: Callable[[], DatagramEndpoint]) -> None:
        self.mux = mux
        self._endpoint_of = endpoint  # the node's endpoint exists only once it runs
        self._endpoint: DatagramEndpoint | None = None
        self.sessions: dict[Connection, Waiter] = {}
        self.accept_lot = trio.lowlevel.ParkingLot()
        self.backlog: list[Datagram] = []
        self.backlog_event = trio.Event()
        self.timer: Timer | None = None  # armed at the multiplexer's earliest deadline
        self.blocked_writers: dict[Waiter, None] = {}  # ordered: reproducible wake-ups
        self.backlog_dropped = 0  # datagrams dropped because the backlog overflowed

    @property
    def endpoint(self) -> DatagramEndpoint:
        endpoint = self._endpoint
        if endpoint is None:
            endpoint = self._endpoint = self._endpoint_of()
        return endpoint

    def handle_datagrams(self, batch: list[Datagram], now: float) -> None:
        """Demux handler: the whole batch, then one flush."""
        self.mux.receive_batch(batch, now)
        self.flush_all(now)

    def flush_all(self, now: float) -> None:
        self.send(self.mux.datagrams_to_send(now), now, self.mux.get_timer())

    def flush(self, conn: Connection) -> None:
        """After an application call on one connection: flush only that one."""
        now = trio.current_time()
        mux = self.mux
        out = mux.datagrams_for(conn, now)
        deadline = conn.get_timer()
        turn = mux.shaper.deadline()  # it may have had to wait for its turn
        self.send(out, now, deadline if deadline < turn else turn)

    def send(self, out: list[Datagram], now: float, deadline: float) -> None:
        if out:
            if self.backlog:
                self._queue_backlog(out)
            else:
                accepted = self.endpoint.send_batch(out)
                if accepted < len(out):
                    self._queue_backlog(out[accepted:])
        self.wake()
        timer = self.timer
        if timer is not None and deadline < timer.deadline:
            timer.set(max(deadline, now + MIN_TIMER_STEP))

    def _queue_backlog(self, datagrams: list[Datagram]) -> None:
        self.backlog.extend(datagrams)
        excess = len(self.backlog) - MAX_BACKLOG
        if excess > 0:
            del self.backlog[:excess]
            self.backlog_dropped += excess
        self.backlog_event.set()

    def wake(self) -> None:
        # runs after every flush: the usual case (nothing app-visible) costs three tests
        mux = self.mux
        if mux.touched:
            for conn in mux.take_touched():
                session = self.sessions.get(conn)
                if session is not None:
                    session._wake()
                    if conn.state is CLOSED:
                        del self.sessions[conn]
        if mux.accept_queue:
            self.accept_lot.unpark_all()
        # writers blocked on a full send buffer: packets left, so there may be room now
        if self.blocked_writers:
            for session in list(self.blocked_writers):
                if session.connection.can_send or session.connection.state is not ESTABLISHED:
                    session._wake()

    def on_timer(self, now: float) -> None:
        mux = self.mux
        try:
            mux.handle_timer(now)
            self.send(mux.datagrams_to_send(now), now, math.inf)
        finally:
            # re-armed at the exact earliest deadline (``send`` only ever moves it
            # earlier), even after a bug raised here: the node's sessions keep their timers
            timer = self.timer
            if timer is not None:
                timer.set(max(mux.get_timer(), now + MIN_TIMER_STEP))
