"""A deterministic fake network for sans-IO rudp tests: explicit time, seeded faults.

Each host is a :class:`Multiplexer`. Datagrams are delayed, optionally rate-limited with a
drop-tail queue, dropped, duplicated and reordered by a seeded ``random.Random`` (the idea
of trio's ``testing/_fake_net.py``), and delivered in per-instant batches, the way the
real driver and the simulator do it.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable

from p2pkit.plugins.rudp.config import RudpConfig
from p2pkit.plugins.rudp.congestion import RateSample
from p2pkit.plugins.rudp.connection import Connection
from p2pkit.plugins.rudp.mux import Multiplexer

Address = tuple[str, int]


class FakeNet:
    def __init__(
        self, seed: int = 0, *, loss: float = 0.0, duplicate: float = 0.0, reorder: float = 0.0,
        delay: float = 0.010, jitter: float = 0.0, rate: float = 0.0, queue_limit: float = 0.05,
        drop: Callable[[bytes, Address, Address], bool] | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.loss = loss
        self.duplicate = duplicate
        self.reorder = reorder
        self.delay = delay
        self.jitter = jitter
        self.rate = rate  # bytes per second per direction, 0 = unlimited
        self.queue_limit = queue_limit  # seconds of queueing before drop-tail
        self.drop = drop  # extra deterministic filter: True = drop this datagram
        self.hosts: dict[Address, Multiplexer] = {}
        self._heap: list[tuple[float, int, bytes, Address, Address]] = []
        self._counter = 0
        self._link_free: dict[tuple[Address, Address], float] = {}
        self.delivered = 0
        self.dropped = 0

    def add_host(self, addr: Address, config: RudpConfig | None = None, **kw: object) -> Multiplexer:
        mux = Multiplexer(config or RudpConfig(), now=self.now, rng=random.Random(self.rng.random()), **kw)  # type: ignore[arg-type]
        self.hosts[addr] = mux
        return mux

    def inject(self, data: bytes, src: Address, dst: Address, at: float | None = None) -> None:
        self._counter += 1
        heapq.heappush(self._heap, (self.now if at is None else at, self._counter, data, src, dst))

    def _transmit(self, data: bytes, src: Address, dst: Address) -> None:
        rng = self.rng
        if self.drop is not None and self.drop(data, src, dst):
            self.dropped += 1
            return
        if rng.random() < self.loss:
            self.dropped += 1
            return
        t = self.now
        if self.rate:
            key = (src, dst)
            start = max(t, self._link_free.get(key, 0.0))
            if start - t > self.queue_limit:
                self.dropped += 1
                return
            t = start + len(data) / self.rate
            self._link_free[key] = t
        t += self.delay + (rng.random() * self.jitter if self.jitter else 0.0)
        if self.reorder and rng.random() < self.reorder:
            t += rng.random() * 3 * self.delay
        copies = 2 if self.duplicate and rng.random() < self.duplicate else 1
        for i in range(copies):
            self._counter += 1
            heapq.heappush(self._heap, (t + i * 0.0005, self._counter, data, src, dst))

    def flush(self) -> None:
        for addr, mux in self.hosts.items():
            for data, dst in mux.datagrams_to_send(self.now):
                self._transmit(data, addr, dst)

    def next_event(self) -> float:
        t = self._heap[0][0] if self._heap else math.inf
        for mux in self.hosts.values():
            t = min(t, mux.get_timer())
        return t

    def step(self) -> bool:
        """Advance to the next delivery or timer; False when nothing will ever happen."""
        self.flush()
        t = self.next_event()
        if t == math.inf:
            return False
        self.now = max(self.now, t)
        batches: dict[Address, list[tuple[bytes, Address]]] = {}
        heap = self._heap
        while heap and heap[0][0] <= self.now:
            _, _, data, src, dst = heapq.heappop(heap)
            batches.setdefault(dst, []).append((data, src))
        for dst, batch in batches.items():
            mux = self.hosts.get(dst)
            if mux is not None:
                self.delivered += len(batch)
                mux.receive_batch(batch, self.now)
        for mux in self.hosts.values():
            if mux.get_timer() <= self.now:
                mux.handle_timer(self.now)
        self.flush()
        return True

    def run_until(self, condition: Callable[[], bool], timeout: float = 60.0) -> bool:
        deadline = self.now + timeout
        while not condition():
            if self.now > deadline or not self.step():
                return condition()
        return True

    def run_for(self, duration: float) -> None:
        end = self.now + duration
        self.flush()  # whatever the app queued since the last step leaves now
        while self.next_event() <= end or self._heap:
            if self.next_event() > end:
                break
            self.step()
        self.now = max(self.now, end)


def send_times(net: FakeNet, src: Address, ptype: int) -> list[float]:
    """From now on, the times at which ``src`` sends packets of type ``ptype`` (it takes
    over ``net.drop`` and drops nothing)."""
    times: list[float] = []

    def record(data: bytes, s: Address, d: Address) -> bool:
        if s == src and data[2] == ptype:
            times.append(net.now)
        return False

    net.drop = record
    return times


A: Address = ("10.0.0.1", 1000)
B: Address = ("10.0.0.2", 2000)


def connected_pair(net: FakeNet, config_a: RudpConfig | None = None, config_b: RudpConfig | None = None,
                   ) -> tuple[Multiplexer, Multiplexer, Connection, Connection]:
    """Two hosts with an established connection: (mux_a, mux_b, conn_a, conn_b)."""
    a = net.add_host(A, config_a)
    b = net.add_host(B, config_b)
    ca = a.connect(B, net.now)
    assert net.run_until(lambda: ca.is_established and bool(b.accept_queue), 60), ca.close_reason
    cb = b.accept()
    assert cb is not None and cb.is_established
    return a, b, ca, cb


def drain(conn: Connection, into: list[tuple[int, bytes]]) -> int:
    """Move every received message of ``conn`` into ``into``; returns how many."""
    n = 0
    while (item := conn.next_message()) is not None:
        into.append(item)
        n += 1
    return n


class FixedWindow:
    """A toy controller: a constant window, no pacing."""

    name = "fixed"
    state = "fixed"

    WINDOW_PACKETS = 4

    def __init__(self, max_datagram: int, initial_cwnd: int) -> None:
        self.cwnd = self.WINDOW_PACKETS * max_datagram
        self.pacing_rate = 0.0

    def on_packet_sent(self, now: float, size: int, bytes_in_flight: int) -> None:
        pass

    def on_ack(self, now: float, acked_bytes: int, sample: RateSample, bytes_in_flight: int) -> None:
        pass

    def on_loss(self, now: float, lost_bytes: int, newest_lost_sent_time: float, bytes_in_flight: int) -> None:
        pass

    def on_rto(self, now: float) -> None:
        pass
