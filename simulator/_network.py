"""The virtual network: hosts, access links, NAT boxes, the core, and one delivery task.

Path of a datagram sent by a host::

    sender --uplink--> [sender's NAT] --core--> [receiver's NAT] --downlink--> receiver

``send`` runs synchronously in the sender's task: MTU check, source NAT, the uplink queue,
loss and latency; the packet then waits in a heap until it reaches the receiver's access
router (event "transit"), where partitions, the destination NAT's filter and the downlink
are applied, and waits again until it is delivered (a partition made meanwhile, or the
receiver going down, still drops it then). At every delivery instant the network
task calls each receiving endpoint's ``dispatch(batch, now)`` directly, one batch per
endpoint, so no task is woken per datagram.

Event times are rounded *up* to multiples of ``resolution`` seconds (0 = exact). A coarser
resolution makes instants coincide, and trio's run loop pays per instant, not per datagram.

Pending events sit in one list per instant (appended in the order they were scheduled, which
is the order they run in) and a heap holds each instant once: scheduling a datagram is a
dict lookup and an append, and the heap compares floats, not events. Events are small
typed objects (:class:`_InFlight`, one per datagram for both of its hops, and
:class:`_TimerEntry`) rather than tuples: compiled (see setup.py), their fields are read
natively, where a tuple's items were untyped objects whose every attribute and method went
through a generic lookup.
"""

from __future__ import annotations

import heapq
import ipaddress
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Final

import trio

from p2pkit.timers import TimerCallback, run_callback

from ._clock import IdleDriver, idle_driver
from ._core import CoreLatency
from ._direction import DROP_LOSS, HEADER_BYTES
from ._link import LinkProfile
from ._nat import NatBox, NatProfile, NatType
from ._rng import derive_rng

if TYPE_CHECKING:
    from ._endpoint import VirtualEndpoint

Address = tuple[str, int]
# A capture tap: (virtual time, sending host, its port, the datagram, destination).
Tap = Callable[[float, "Host", int, bytes, Address], None]

log = logging.getLogger(__name__)

_PUBLIC_BASE: Final = int(ipaddress.IPv4Address("11.0.0.1"))
_PRIVATE_BASE: Final = int(ipaddress.IPv4Address("10.0.0.2"))
_EPHEMERAL_FIRST: Final = 49152
# Host.partition of a host on no side of a partition (or with none in force): it reaches
# everyone and everyone reaches it
NO_SIDE: Final = -1
# Final: compiled, a C global — `heapq.heappush` was a module attribute lookup per call
_heappush: Final = heapq.heappush
_heappop: Final = heapq.heappop


class Host:
    """A machine with one access link, maybe behind a NAT, with bound virtual ports."""

    def __init__(
        self, network: Network, name: str, ip: str, link: LinkProfile, group: str,
        nat: NatBox | None, site: int, site_name: str,
    ) -> None:
        self.network = network
        self.name = name
        self.ip = ip
        self.group = group
        self.nat = nat
        self.site = site  # id of the core attachment point (this host, or its NAT)
        self.site_name = site_name  # its name, which core latencies are drawn from
        self.link = link
        self.duplicate = link.duplicate  # read per datagram: a native field, not the attrs profile's
        self.up = link.direction(True, derive_rng(network.seed, "link", name, "up"))
        self.down = link.direction(False, derive_rng(network.seed, "link", name, "down"))
        self.rng = derive_rng(network.seed, "host", name)
        self.mtu = link.mtu
        self.online = True
        self.partition = NO_SIDE  # its side's index while a partition names it
        self.endpoints: dict[int, VirtualEndpoint] = {}
        self._next_port = _EPHEMERAL_FIRST
        self.drops: dict[str, int] = {}
        self.core_cache: dict[int, float] = {}  # target site -> one-way core latency
        self.datagrams_sent = 0
        self.datagrams_received = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.ip}>"

    @property
    def public_ip(self) -> str:
        return self.nat.public_ip if self.nat is not None else self.ip

    def bind(self, port: int = 0) -> VirtualEndpoint:
        """Open a virtual UDP endpoint on ``port`` (0 = next free ephemeral port)."""
        from ._endpoint import VirtualEndpoint

        if port == 0:
            while self._next_port in self.endpoints:
                self._next_port += 1
            port = self._next_port
            self._next_port += 1
        elif port in self.endpoints:
            raise OSError(f"{self.name}: port {port} already in use")
        endpoint = VirtualEndpoint(self, port)
        self.endpoints[port] = endpoint
        return endpoint

    def set_link(self, profile: LinkProfile) -> None:
        """Change the access link (queued packets keep their schedule)."""
        self.link = profile
        self.duplicate = profile.duplicate
        self.mtu = profile.mtu
        self.up.reconfigure(profile, True)
        self.down.reconfigure(profile, False)

    def _drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1
        self.network.drops[reason] = self.network.drops.get(reason, 0) + 1


class _Event:
    """Something pending at one instant of the network's queue."""

    __slots__ = ()


class _InFlight(_Event):
    """A datagram on its way: first it reaches the receiver's access router (or NAT),
    where partitions, the NAT's filter and the downlink are applied; then the same object
    is queued again, ``arrived``, and handed to ``host:port`` at that instant (one object
    per datagram, not one per hop: allocating and freeing them is per-datagram work)."""

    __slots__ = ("arrived", "data", "dst", "host", "port", "size", "src", "target", "wire_src")

    def __init__(self, src: Host, wire_src: Address, dst: Address, data: bytes, size: int,
                 target: Host | NatBox) -> None:
        self.src = src
        self.wire_src = wire_src
        self.dst = dst
        self.data = data
        self.size = size
        self.target = target
        self.arrived = False
        self.host = src  # the receiving host once arrived
        self.port = 0


class _TimerEntry(_Event):
    """A timer's queued firing; superseded when the timer no longer points at it."""

    __slots__ = ("timer",)

    def __init__(self, timer: NetworkTimer) -> None:
        self.timer = timer


class NetworkTimer:
    """A :class:`p2pkit.timers.Timer` fired by the network task at its grid instants.

    Deadlines are rounded up to the network's resolution, like deliveries, so a node's
    timers share instants with its datagrams. Moving a deadline later pushes nothing: the
    heap entry already there fires early, sees the new deadline and re-queues itself once.
    """

    __slots__ = ("_at", "_callback", "_closed", "_entry", "_network", "deadline")

    def __init__(self, network: Network, callback: TimerCallback) -> None:
        self._network = network
        self._callback = callback
        self.deadline = math.inf
        self._entry: _TimerEntry | None = None  # the live queued event, if any
        self._at = math.inf  # its instant
        self._closed = False

    def set(self, deadline: float) -> None:
        if self._closed:
            return
        self.deadline = deadline
        if deadline < self._at:
            self._network._arm(self, deadline)

    def close(self) -> None:
        self._closed = True
        self.deadline = math.inf
        self._entry = None
        self._at = math.inf

    def _fire(self, now: float) -> None:
        self._entry = None
        self._at = math.inf
        if self.deadline > now:  # moved later since the entry was queued
            if self.deadline < math.inf:
                self._network._arm(self, self.deadline)
            return
        self.deadline = math.inf
        if not run_callback(self._callback, now, self):
            self._network.timer_errors += 1


class Network:
    """All hosts of one simulation and the task that delivers their datagrams."""

    def __init__(
        self, seed: int = 0, *, resolution: float = 0.0, core: CoreLatency | None = None,
        bin_seconds: float = 1.0,
    ) -> None:
        if resolution < 0:
            raise ValueError("resolution must be >= 0")
        self.seed = seed
        self.resolution = resolution
        self.core = core or CoreLatency()
        self.hosts: dict[str, Host] = {}
        self.nats: dict[str, NatBox] = {}
        self._public: dict[str, Host | NatBox] = {}
        self._nat_hosts: dict[int, dict[str, Host]] = {}  # id(nat) -> private ip -> host
        self._core_cache: dict[tuple[int, int], float] = {}
        self._next_public = _PUBLIC_BASE
        self._next_site = 0
        self._events: dict[float, list[_Event]] = {}  # instant -> events, in order
        self._instants: list[float] = []  # heap of the keys of _events
        self._scope: trio.CancelScope | None = None
        self._wake: trio.CancelScope | None = None  # the waiting task, under the virtual clock
        self._failure: Exception | None = None
        self._dispatch_now: float | None = None  # the instant being delivered, if any
        self.drops: dict[str, int] = {}
        self.datagrams_sent = 0
        self.datagrams_delivered = 0
        self.bytes_delivered = 0
        self.dispatch_instants = 0
        self.timers_fired = 0
        self.timer_errors = 0
        self._taps: list[Tap] = []
        self.tap_errors = 0
        self.bin_seconds = bin_seconds
        self.delivered_bytes_by_bin: dict[int, int] = {}
        self.epoch = 0.0  # virtual time the simulation started (bins count from it)

    # ------------------------------------------------------------------ capture

    def add_tap(self, tap: Tap) -> Callable[[], None]:
        """Call ``tap(now, host, port, data, dst)`` for every datagram a host sends, as it
        leaves the host (before its uplink's queue, loss or any NAT: what a capture on the
        host's interface sees). Returns a function that removes the tap. A tap that
        raises is logged and counted (``tap_errors``); the datagram goes on regardless."""
        self._taps.append(tap)

        def remove() -> None:
            if tap in self._taps:
                self._taps.remove(tap)

        return remove

    def _tap(self, now: float, host: Host, port: int, data: bytes, dst: Address) -> None:
        for tap in list(self._taps):
            try:
                tap(now, host, port, data, dst)
            except Exception:
                self.tap_errors += 1
                log.exception("capture tap %r failed", tap)

    # ------------------------------------------------------------------ topology

    def _allocate_public_ip(self) -> str:
        ip = str(ipaddress.IPv4Address(self._next_public))
        self._next_public += 1
        return ip

    def add_nat(self, name: str, profile: NatProfile, *, group: str = "") -> NatBox:
        """A NAT box with its own public IP; put hosts behind it with ``add_host(nat=...)``."""
        if name in self.nats:
            raise ValueError(f"NAT {name!r} already exists")
        if profile.type is NatType.OPEN:
            raise ValueError("an 'open' host has no NAT box; add it without nat=")
        nat = NatBox(profile, self._allocate_public_ip(), derive_rng(self.seed, "nat", name))
        self.nats[name] = nat
        self._public[nat.public_ip] = nat
        self._nat_hosts[id(nat)] = nat.lan = {}
        nat.site, nat.site_name, nat.group = self._next_site, f"nat:{name}", group
        self._next_site += 1
        return nat

    def add_host(
        self, name: str, link: LinkProfile | None = None, *, nat: NatBox | None = None,
        group: str = "",
    ) -> Host:
        """A host on the public Internet, or behind ``nat`` with a private 10.x address."""
        if name in self.hosts:
            raise ValueError(f"host {name!r} already exists")
        link = link or LinkProfile()
        if nat is None:
            site = self._next_site
            self._next_site += 1
            host = Host(self, name, self._allocate_public_ip(), link, group, None, site,
                        f"host:{name}")
            self._public[host.ip] = host
        else:
            lan = self._nat_hosts[id(nat)]
            ip = str(ipaddress.IPv4Address(_PRIVATE_BASE + len(lan)))
            host = Host(self, name, ip, link, group, nat, nat.site, nat.site_name)
            lan[ip] = host
        self.hosts[name] = host
        return host

    def _core_latency(self, a: Host, b: Host | NatBox) -> float:
        # cached by site id (ints, per datagram); drawn from the site names, so adding a
        # site leaves every other pair's latency as it was
        key = (a.site, b.site) if a.site < b.site else (b.site, a.site)
        latency = self._core_cache.get(key)
        if latency is None:
            latency = self.core.sample(self.seed, a.site_name, a.group, b.site_name, b.group)
            self._core_cache[key] = latency
        return latency

    # ------------------------------------------------------------------ events

    def partition(self, sides: Iterable[Iterable[Host]]) -> None:
        """Split the network: hosts on different sides can no longer reach each other.

        Replaces any partition in force. Hosts not named are on no side (``NO_SIDE``) and
        keep talking to everyone; a host named on several sides belongs to the first of
        them (so ``[["a"], ["everyone"]]`` works)."""
        for host in self.hosts.values():
            host.partition = NO_SIDE
        for index, side in enumerate(sides):
            for host in side:
                if host.partition == NO_SIDE:
                    host.partition = index

    def heal(self) -> None:
        for host in self.hosts.values():
            host.partition = NO_SIDE

    # ------------------------------------------------------------------ sending

    def _grid(self, t: float) -> float:
        res = self.resolution
        if not res:
            return t
        return math.ceil(t / res - 1e-9) * res

    def _schedule(self, at: float, event: _Event) -> None:
        events = self._events.get(at)
        if events is not None:
            events.append(event)
            return
        self._events[at] = [event]
        _heappush(self._instants, at)
        scope = self._scope
        if scope is not None and at < scope.deadline:
            scope.deadline = at

    def timer(self, callback: TimerCallback) -> NetworkTimer:
        """A timer fired by this network's task (see :class:`NetworkTimer`)."""
        return NetworkTimer(self, callback)

    def _arm(self, timer: NetworkTimer, deadline: float) -> None:
        now = self._dispatch_now
        if now is None:
            now = trio.current_time()
        if deadline < now:
            deadline = now
        at = self._grid(deadline)
        if at < deadline:  # the grid's float tolerance must never fire a timer early
            at = deadline
        entry = _TimerEntry(timer)  # the timer's live entry is recognised by identity
        timer._entry = entry
        timer._at = at
        self._schedule(at, entry)

    def _core_to(self, host: Host, target: Host | NatBox) -> float:
        latency = host.core_cache.get(target.site)
        if latency is None:
            latency = self._core_latency(host, target)
            host.core_cache[target.site] = latency
        return latency

    def send(self, host: Host, port: int, data: bytes, dst: Address) -> None:
        """Route one datagram from ``host:port`` (called by the endpoint, synchronously)."""
        now = self._dispatch_now
        if now is None:
            now = trio.current_time()
        self.datagrams_sent += 1
        size = len(data) + HEADER_BYTES
        host.datagrams_sent += 1
        host.bytes_sent += size
        if self._taps:
            self._tap(now, host, port, data, dst)
        if not host.online:
            host._drop("host_down")
            return
        if size > host.mtu:
            host._drop("mtu")
            return
        dst_ip = dst[0]
        nat = host.nat
        if nat is None:
            wire_src: Address = (host.ip, port)
            target = self._public.get(dst_ip)
            if target is None:
                host._drop("no_route")
                return
            core = host.core_cache.get(target.site)
            if core is None:
                core = self._core_to(host, target)
        else:
            target = nat.lan.get(dst_ip)
            if target is not None:  # same LAN: no NAT, no core
                wire_src = (host.ip, port)
                core = 0.0
            else:
                if dst_ip == nat.public_ip and not nat.profile.hairpin:
                    host._drop("no_hairpin")
                    return
                external = nat.outbound((host.ip, port), dst, now)
                if external.__class__ is str:
                    host._drop(external)  # type: ignore[arg-type]
                    return
                wire_src = (nat.public_ip, external)  # type: ignore[assignment]
                if dst_ip == nat.public_ip:
                    target = nat
                    core = 0.0
                else:
                    target = self._public.get(dst_ip)
                    if target is None:
                        host._drop("no_route")
                        return
                    core = self._core_to(host, target)
        duplicate = host.duplicate
        copies = 2 if duplicate and host.rng.random() < duplicate else 1
        res = self.resolution
        events = self._events
        for _ in range(copies):
            arrival = host.up.transmit(size, now)
            if arrival < 0:
                host._drop("loss" if arrival == DROP_LOSS else "queue")
                continue
            arrival += core
            if res:
                arrival = math.ceil(arrival / res - 1e-9) * res
            event = _InFlight(host, wire_src, dst, data, size, target)
            pending = events.get(arrival)
            if pending is not None:  # _schedule, inlined: this runs once per datagram
                pending.append(event)
            else:
                self._schedule(arrival, event)

    # ------------------------------------------------------------------ delivering

    def _transit(self, event: _InFlight, now: float) -> None:
        src = event.src
        target = event.target
        if isinstance(target, Host):
            host = target
            port = event.dst[1]
        else:
            internal = target.inbound(event.dst[1], event.wire_src, now)
            if isinstance(internal, str):
                src._drop(internal)
                return
            found = target.lan.get(internal[0])
            if found is None:
                src._drop("no_route")
                return
            host = found
            port = internal[1]
        side = host.partition
        if side != src.partition and side != NO_SIDE and src.partition != NO_SIDE:
            host._drop("partition")
            return
        if not host.online:
            host._drop("host_down")
            return
        arrival = host.down.transmit(event.size, now)
        if arrival < 0:
            host._drop("loss" if arrival == DROP_LOSS else "queue")
            return
        res = self.resolution
        if res:
            arrival = math.ceil(arrival / res - 1e-9) * res
        event.arrived = True
        event.host = host
        event.port = port
        pending = self._events.get(arrival)
        if pending is not None:
            pending.append(event)
        else:
            self._schedule(arrival, event)

    def _process(self, now: float) -> None:
        instants = self._instants
        all_events = self._events
        pop = _heappop
        while instants and instants[0] <= now:
            at = pop(instants)
            events = all_events[at]
            batches: dict[VirtualEndpoint, list[tuple[bytes, Address]]] = {}
            due: list[NetworkTimer] = []
            i = 0
            # events scheduled for this same instant while it runs are appended to the
            # list and handled in this pass, as the heap this replaced did
            while i < len(events):
                event = events[i]
                i += 1
                if isinstance(event, _TimerEntry):
                    timer = event.timer
                    if timer._entry is event:  # else superseded by a later set()
                        due.append(timer)
                    continue
                assert isinstance(event, _InFlight)
                if not event.arrived:
                    self._transit(event, now)
                    continue
                host = event.host
                if not host.online:
                    host._drop("host_down")
                    continue
                side = host.partition
                if (side != event.src.partition and side != NO_SIDE
                        and event.src.partition != NO_SIDE):  # cut while on the downlink
                    host._drop("partition")
                    continue
                endpoint = host.endpoints.get(event.port)
                if endpoint is None:
                    host._drop("port_unreachable")
                    continue
                datagram = (event.data, event.wire_src)
                batch = batches.get(endpoint)
                if batch is None:
                    batches[endpoint] = [datagram]
                else:
                    batch.append(datagram)
            del all_events[at]
            if batches:
                self.dispatch_instants += 1
                self._dispatch_now = now  # sends made by dispatch happen at this instant
                bins = self.delivered_bytes_by_bin
                b = int((now - self.epoch) / self.bin_seconds)
                try:
                    for endpoint, batch in batches.items():
                        # most batches hold one datagram: skip the generator for them
                        nbytes = (len(batch[0][0]) if len(batch) == 1
                                  else sum(len(d) for d, _a in batch))
                        self.datagrams_delivered += len(batch)
                        self.bytes_delivered += nbytes
                        bins[b] = bins.get(b, 0) + nbytes
                        endpoint._deliver(batch, now, nbytes)
                finally:
                    self._dispatch_now = None
            if due:
                # after the instant's deliveries, in the order they were armed
                self.timers_fired += len(due)
                self._dispatch_now = now
                try:
                    for timer in due:
                        timer._fire(now)
                finally:
                    self._dispatch_now = None

    def next_instant(self) -> float:
        """The earliest pending delivery or timer instant (``inf`` if none)."""
        return self._instants[0] if self._instants else math.inf

    def deliver_from_clock(self, now: float) -> bool:
        """Called by the virtual clock (simulator/_clock.py) with every task blocked: deliver
        the instant ``now``. False if that raised: the network task is woken to raise it."""
        try:
            self._process(now)
        except Exception as exc:
            self._failure = exc
            if self._wake is not None:
                self._wake.cancel()
            return False
        return True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver datagrams until cancelled (start it in the simulation's nursery).

        Under the simulator's virtual clock the clock delivers (``deliver_from_clock``) and
        this task only waits; under any other clock (a test's ``MockClock``) this task
        sleeps until each instant and delivers it."""
        driver = idle_driver(trio.lowlevel.current_clock())
        if driver is not None:
            await self._run_under(driver, task_status)
            return
        started = False
        while True:
            with trio.CancelScope(deadline=self._instants[0] if self._instants else math.inf) as scope:
                self._scope = scope
                if not started:
                    started = True
                    task_status.started()
                await trio.sleep_forever()
            self._scope = None
            self._process(trio.current_time())

    async def _run_under(self, driver: IdleDriver, task_status: trio.TaskStatus[None]) -> None:
        driver.networks.append(self)
        try:
            with trio.CancelScope() as self._wake:
                task_status.started()
                await trio.sleep_forever()
        finally:
            driver.networks.remove(self)
            self._wake = None
        failure, self._failure = self._failure, None
        assert failure is not None  # only deliver_from_clock cancels _wake
        raise failure

    # ------------------------------------------------------------------ reporting

    def pending(self) -> int:
        return sum(len(events) for events in self._events.values())

    def stats(self) -> Mapping[str, object]:
        return {
            "datagrams_sent": self.datagrams_sent,
            "datagrams_delivered": self.datagrams_delivered,
            "bytes_delivered": self.bytes_delivered,
            "dispatch_instants": self.dispatch_instants,
            "timers_fired": self.timers_fired,
            "timer_errors": self.timer_errors,
            "tap_errors": self.tap_errors,
            "drops": dict(sorted(self.drops.items())),
            "resolution_s": self.resolution,
        }
