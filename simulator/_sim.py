"""The public simulation API: what ``async def scenario(sim)`` receives.

    from p2pkit.simulator import LinkProfile, Simulation

    async def scenario(sim: Simulation) -> None:
        a = sim.add_node("a", link=LinkProfile(up_bps=10e6, latency=0.01))
        b = sim.add_node("b", nat="symmetric")
        await sim.start(a)
        await sim.start(b)
        await sim.sleep(5)
        sim.partition(["a"], ["b"])
        ...

    report = Simulation(seed=1, duration=60).run(scenario)
"""

from __future__ import annotations

import contextlib
import gc
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

import trio
import trio.testing

from p2pkit._exceptions import leaf_exceptions
from p2pkit.config import NodeConfig
from p2pkit.identity import Identity
from p2pkit.node import Node, open_node

from ._clock import virtual_clock
from ._core import CoreLatency
from ._determinism import pinned_scheduler
from ._endpoint import VirtualEndpoint
from ._link import LinkProfile
from ._metrics import Metrics
from ._nat import NatBox, NatProfile, NatType
from ._network import Address, Host, Network, Tap
from ._rng import derive_bytes, derive_rng
from ._validate import finite
from ._workloads import Flow, SimNodePlugin

log = logging.getLogger("p2pkit.simulator")

ScenarioFn = Callable[["Simulation"], Awaitable[None]]
ProgressFn = Callable[[float, float], None]

DEFAULT_NODE_PORT = 7700


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two config mappings (override wins)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = value
    return out


class _Start:
    """A start in progress: its task's cancel scope, the kernel node as soon as it is built,
    and an event set when the start ends (the node up, or stopped before it was)."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.node: Node | None = None
        self.done = trio.Event()


class SimNode:
    """A host that runs (or ran, or will run) one p2pkit node."""

    def __init__(
        self, name: str, host: Host, config: Mapping[str, Any], port: int, group: str
    ) -> None:
        self.name = name
        self.host = host
        self.config = dict(config)
        self.port = port
        self.group = group
        self.node: Node | None = None  # the running kernel node, None while down
        self.starts = 0
        self.crashes = 0
        self.leaves = 0
        self.online_time = 0.0
        self._online_since: float | None = None
        self.node_id: str | None = None
        self.final_transport_stats: dict[str, float] | None = None
        # Down, starting (``_start``), up (``node``) or stopping (``_stopping``, until
        # ``_stopped`` is set). ``_scope`` cancels the node's task, from its start on.
        self._start: _Start | None = None
        self._scope: trio.CancelScope | None = None
        self._stopping = False
        self._stopped: trio.Event | None = None
        self._running = trio.Event()

    async def wait_running(self) -> Node:
        """Wait until the node is up; returns the kernel node."""
        while self.node is None:
            await self._running.wait()
        return self.node

    def __repr__(self) -> str:
        return f"<SimNode {self.name} {self.address} {'up' if self.node else 'down'}>"

    @property
    def address(self) -> tuple[str, int]:
        """The node's own address (private if it is behind a NAT)."""
        return (self.host.ip, self.port)

    @property
    def running(self) -> bool:
        return self.node is not None


class Simulation:
    """One simulated world: a :class:`Network`, nodes on its hosts, metrics, virtual time.

    All times are virtual seconds since the simulation started (``sim.now``).
    """

    def __init__(
        self, seed: int = 0, *, duration: float = 60.0, resolution: float = 0.0,
        core: CoreLatency | None = None, bin_seconds: float = 1.0, name: str = "custom",
    ) -> None:
        self.seed = seed
        self.name = name
        self.duration = finite("duration", duration, strict=True)
        finite("resolution", resolution)
        finite("bin_seconds", bin_seconds, strict=True)
        self.network = Network(seed, resolution=resolution, core=core, bin_seconds=bin_seconds)
        self._epoch = 0.0
        self.metrics = Metrics(lambda: self.now, bin_seconds)
        self.nodes: dict[str, SimNode] = {}
        self.groups: dict[str, list[str]] = {}
        self.notes: list[str] = []
        self.results: dict[str, Any] = {}  # workload results for the report
        self.flows: dict[int, Flow] = {}  # bulk transfers by flow id
        self._start_hooks: list[Callable[[SimNode, Node], None]] = []
        self.progress: ProgressFn | None = None
        self.raw_samples_limit = 2000  # sample lists up to this long appear raw in the report
        self._nursery: trio.Nursery | None = None

    def reseeded(self, seed: int) -> Simulation:
        """A fresh, not yet run simulation with the same settings and another seed."""
        sim = Simulation(seed, duration=self.duration, resolution=self.network.resolution,
                         core=self.network.core, bin_seconds=self.network.bin_seconds,
                         name=self.name)
        sim.raw_samples_limit = self.raw_samples_limit
        return sim

    # ------------------------------------------------------------------ time & randomness

    @property
    def now(self) -> float:
        return trio.current_time() - self._epoch

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)

    async def sleep_until(self, t: float) -> None:
        await trio.sleep_until(self._epoch + t)

    def rng(self, *labels: object) -> random.Random:
        """A RNG for your own random choices, derived from the seed and ``labels``."""
        return derive_rng(self.seed, "scenario", *labels)

    def note(self, text: str) -> None:
        """A line for the report's ``notes`` (something a reader should know)."""
        self.notes.append(text)

    def capture(self, tap: Tap) -> Callable[[], None]:
        """Watch every datagram any host sends: ``tap(now, host, port, data, dst)`` with
        ``now`` in the simulation's seconds, as it leaves the host (see
        :meth:`Network.add_tap`). Returns a function that stops the capture."""
        def relative(now: float, host: Host, port: int, data: bytes, dst: Address) -> None:
            tap(now - self._epoch, host, port, data, dst)

        return self.network.add_tap(relative)

    # ------------------------------------------------------------------ topology

    def add_nat(self, name: str, nat: NatProfile | NatType | str, *, group: str = "") -> NatBox:
        """A NAT box that several hosts can share (``add_host(..., nat=box)``)."""
        profile = _nat_profile(nat)
        if profile is None:
            raise ValueError(f"NAT {name!r}: an 'open' host has no NAT box; add it without nat=")
        return self.network.add_nat(name, profile, group=group)

    def add_host(
        self, name: str, link: LinkProfile | None = None, *,
        nat: NatBox | NatProfile | NatType | str | None = None, group: str = "",
    ) -> Host:
        """A host. ``nat`` is a shared box, or a type/profile for a NAT of its own."""
        box: NatBox | None
        if nat is None or (not isinstance(nat, NatBox) and _nat_profile(nat) is None):
            box = None
        elif isinstance(nat, NatBox):
            box = nat
        else:
            box = self.add_nat(f"{name}.nat", nat, group=group)
        host = self.network.add_host(name, link, nat=box, group=group)
        self.groups.setdefault(group, []).append(name)
        return host

    def host(self, name: str) -> Host:
        return self.network.hosts[name]

    def add_node(
        self, name: str, *, link: LinkProfile | None = None,
        nat: NatBox | NatProfile | NatType | str | None = None, group: str = "",
        config: Mapping[str, Any] | None = None, port: int = DEFAULT_NODE_PORT,
    ) -> SimNode:
        """A host that will run a p2pkit node (start it with :meth:`start`)."""
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"node {name!r}: port must be 1..65535, got {port!r}")
        host = self.add_host(name, link, nat=nat, group=group)
        node = SimNode(name, host, config or {}, port, group)
        self.nodes[name] = node
        return node

    def resolve(self, names: str | Iterable[str]) -> list[Host]:
        """Hosts named by host names and/or group names."""
        if isinstance(names, str):
            names = [names]
        hosts: list[Host] = []
        for name in names:
            if name in self.network.hosts:
                hosts.append(self.network.hosts[name])
            elif name in self.groups:
                hosts.extend(self.network.hosts[h] for h in self.groups[name])
            else:
                raise KeyError(f"no host or group named {name!r}")
        return hosts

    # ------------------------------------------------------------------ events

    def partition(self, *sides: str | Iterable[str]) -> None:
        """Cut the network between sides (each side: host/group names)."""
        if len(sides) < 2:
            raise ValueError("a partition needs at least two sides, e.g. "
                             "sim.partition(['a'], ['b']) (everyone else is on neither)")
        self.network.partition([self.resolve(side) for side in sides])
        self.metrics.count("partitions")

    def heal(self) -> None:
        self.network.heal()

    def set_link(self, names: str | Iterable[str], link: LinkProfile) -> None:
        for host in self.resolve(names):
            host.set_link(link)

    def _node(self, node: SimNode | str) -> SimNode:
        if not isinstance(node, str):
            return node
        if node not in self.nodes:
            raise KeyError(f"no node named {node!r} (add it with sim.add_node)")
        return self.nodes[node]

    async def start(self, node: SimNode | str) -> Node:
        """Start (or restart) the node's kernel; returns once every service is ready.

        A start while one is in progress waits for it and returns its node; a start while
        the node stops (a graceful ``leave`` taking its time) waits for it to be down, then
        starts it again. If ``crash`` or ``leave`` ends the start first, the node returned
        has stopped (``node.state`` is ``NodeState.STOPPED``)."""
        sim_node = self._node(node)
        while True:
            if sim_node._stopping:
                assert sim_node._stopped is not None
                await sim_node._stopped.wait()
            elif sim_node.node is not None:
                return sim_node.node
            elif sim_node._start is not None:
                start = sim_node._start
                await start.done.wait()
                if start.node is None:
                    raise RuntimeError(f"node {sim_node.name}: the start this one waited for "
                                       "failed (its caller has the error)")
                return start.node
            else:
                break
        sim_node.host.online = True
        # set before the node's task runs: a start, crash or leave that comes meanwhile
        # finds a start in progress
        sim_node._start = _Start()
        sim_node._scope = sim_node._start.scope
        started: Node = await self._require_nursery().start(self._node_main, sim_node)
        return started

    async def crash(self, node: SimNode | str) -> None:
        """The host drops off the network at once; the node's tasks are cancelled (a start
        in progress too: that counts as a crash). Returns once the node is down."""
        sim_node = self._node(node)
        if sim_node._start is not None:
            sim_node.host.online = False
            sim_node.crashes += 1
            await self._cancel_start(sim_node)
            return
        if sim_node._stopping:  # a crash or leave under way
            if sim_node.host.online:  # a leave: the host vanishes now, goodbyes and all
                sim_node.host.online = False
                sim_node.crashes += 1
            assert sim_node._stopped is not None
            await sim_node._stopped.wait()
            return
        if sim_node.node is None:
            return
        sim_node.host.online = False
        sim_node.crashes += 1
        sim_node.node.stop_grace = 0.0  # a crash says nothing to anyone
        await self._stop(sim_node)

    async def leave(self, node: SimNode | str) -> None:
        """The node shuts down in an orderly way (its host stays reachable). A start in
        progress is ended at once (the node has no peers to take leave of yet); a stop
        under way is waited for. Returns once the node is down."""
        sim_node = self._node(node)
        if sim_node._start is not None:
            sim_node.leaves += 1
            await self._cancel_start(sim_node)
            return
        if sim_node._stopping:
            assert sim_node._stopped is not None
            await sim_node._stopped.wait()
            return
        if sim_node.node is None:
            return
        sim_node.leaves += 1
        await self._stop(sim_node)

    async def _cancel_start(self, sim_node: SimNode) -> None:
        start = sim_node._start
        assert start is not None
        start.scope.cancel()
        await start.done.wait()

    async def _stop(self, sim_node: SimNode) -> None:
        assert sim_node._scope is not None and sim_node._stopped is not None
        stopped = sim_node._stopped
        sim_node._stopping = True
        sim_node._scope.cancel()
        await stopped.wait()

    def on_node_start(self, fn: Callable[[SimNode, Node], None]) -> None:
        """Call ``fn(sim_node, node)`` whenever a node (re)starts; tasks it starts in
        ``node.nursery`` end when that node stops."""
        self._start_hooks.append(fn)

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run a background task for the rest of the simulation."""
        self._require_nursery().start_soon(fn, *args)

    def _require_nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise RuntimeError("the simulation is not running")
        return self._nursery

    async def _node_main(
        self, sim_node: SimNode, *, task_status: trio.TaskStatus[Node] = trio.TASK_STATUS_IGNORED
    ) -> None:
        start = sim_node._start
        assert start is not None
        sim_node._stopped = trio.Event()
        sim_node.starts += 1
        endpoint: VirtualEndpoint | None = None
        try:
            with start.scope:  # cancelled already if a crash or leave came before this ran
                endpoint = sim_node.host.bind(sim_node.port)
                base = {"node": {"ephemeral": True, "host": sim_node.host.ip,
                                 "port": sim_node.port, "repeater": "off"}}
                config = NodeConfig.from_mapping(merge_config(base, sim_node.config))
                identity = Identity.from_seed(derive_bytes(self.seed, "identity", sim_node.name))
                plugin = SimNodePlugin(self, sim_node, start)  # sets start.node once built
                async with open_node(
                    config, endpoint=endpoint, identity=identity, plugins=[plugin]
                ) as node:
                    sim_node.node = node
                    sim_node.node_id = node.id
                    sim_node._online_since = self.now
                    sim_node._start = None
                    start.done.set()
                    sim_node._running.set()
                    for hook in self._start_hooks:
                        hook(sim_node, node)
                    task_status.started(node)
                    await trio.sleep_forever()
            if not start.done.is_set():  # a crash or leave ended the start
                assert start.node is not None  # built before the start's first checkpoint
                task_status.started(start.node)  # its caller gets the node, stopped
        finally:
            if sim_node._online_since is not None:
                sim_node.online_time += self.now - sim_node._online_since
                sim_node._online_since = None
            sim_node.node = None
            # waiters on the old event (a start a crash ended never set it) look again and
            # wait on the new one: replaced unset, they waited for ever
            running, sim_node._running = sim_node._running, trio.Event()
            running.set()
            sim_node._start = None
            sim_node._scope = None
            sim_node._stopping = False
            if endpoint is not None:
                endpoint.close()
            start.done.set()
            sim_node._stopped.set()

    # ------------------------------------------------------------------ running

    def run(self, scenario: ScenarioFn, *, progress: ProgressFn | None = None) -> dict[str, Any]:
        """Run ``scenario`` in a fresh ``trio.run`` with virtual time; returns the report.

        An exception the scenario (or a node) raises comes out as itself, not wrapped in
        the ExceptionGroups of the nurseries it crossed; several at once stay a group."""
        self.progress = progress
        from ._report import build_report

        with pinned_scheduler(self.seed), _relaxed_gc():
            try:
                trio.run(self.run_async, scenario, clock=virtual_clock(self.network.resolution))
            except BaseExceptionGroup as group:
                leaves = leaf_exceptions(group)
                if len(leaves) != 1:
                    raise
                raise leaves[0] from leaves[0].__cause__
            # still relaxed: with the default thresholds the report's many small dicts
            # trigger full scans of a heap of thousands of nodes (0.4 s at 1000 nodes)
            return build_report(self)

    async def run_async(self, scenario: ScenarioFn) -> None:
        """Run inside an existing trio run (its clock should be an autojump MockClock)."""
        self._epoch = trio.current_time()
        self.network.epoch = self._epoch
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.network.run)
            nursery.start_soon(self._report_progress)
            returned = False
            with trio.move_on_at(self._epoch + self.duration):
                await scenario(self)
                returned = True
                await trio.sleep_until(self._epoch + self.duration)
            if not returned:
                self.note(f"the scenario function was still running when the run ended at "
                          f"{self.duration:g} s: what it had left to do did not happen")
            self._snapshot_transports()
            self._finish_results()
            for sim_node in self.nodes.values():
                if sim_node.node is not None:  # the run ends here: no time for goodbyes
                    sim_node.node.stop_grace = 0.0
            nursery.cancel_scope.cancel()
        self._nursery = None
        for sim_node in self.nodes.values():
            if sim_node._online_since is not None:  # pragma: no cover - closed above
                sim_node.online_time += self.duration - sim_node._online_since

    def _finish_results(self) -> None:
        if self.flows:
            self.results["bulk"] = [flow.result(self.duration) for flow in self.flows.values()]

    def _snapshot_transports(self) -> None:
        for sim_node in self.nodes.values():
            node = sim_node.node
            if node is not None and node.transport is not None:
                stats = node.transport.stats()
                sim_node.final_transport_stats = {k: stats[k] for k in sorted(stats)}

    async def _report_progress(self) -> None:
        """Wake up at every 1 % of the duration and tell ``self.progress``, if set. It runs
        whether or not anyone watches: a wake-up changes the order in which trio runs the
        tasks due at the same instant, and a run must not depend on being watched."""
        step = self.duration / 100
        while True:
            if self.progress is not None:
                self.progress(min(self.now, self.duration), self.duration)
            await trio.sleep(step)


@contextlib.contextmanager
def _relaxed_gc() -> Iterator[None]:
    """Collect garbage less often during a run: thousands of nodes make a large heap, and
    with CPython's default thresholds the collector's scans of it cost about as much as the
    simulation itself (measured: 2x wall time at 1000 nodes)."""
    old = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        if not gc.get_freeze_count():  # never thaw what the application froze itself
            # The run's survivors (the whole simulated network, alive as long as the
            # simulation is) go straight to the oldest generation: with the default
            # thresholds back, the first allocation would otherwise scan them all in a
            # young-generation pass (0.8 s at 1000 nodes) to free nothing. Side effect:
            # every young object of the process is promoted, so cycles that die soon
            # after (a dropped simulation's) wait for the next full collection.
            gc.freeze()
            gc.unfreeze()
        gc.set_threshold(*old)


def _nat_profile(nat: NatProfile | NatType | str) -> NatProfile | None:
    """A profile for a NAT spec; None for 'open' (no NAT)."""
    if isinstance(nat, NatProfile):
        return None if nat.type is NatType.OPEN else nat
    nat_type = nat if isinstance(nat, NatType) else NatType.parse(nat)
    return None if nat_type is NatType.OPEN else NatProfile(type=nat_type)


__all__ = ["DEFAULT_NODE_PORT", "SimNode", "Simulation", "merge_config"]

