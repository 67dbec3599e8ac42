"""Built-in workloads a TOML scenario can ask for (``[[workload]] kind = ...``).

* ``bulk`` — reliable bulk transfers between kernel nodes (peer sessions over the transport,
  i.e. rudp): goodput over time, completion times, fraction of the link used.
* ``mesh`` — every node keeps sessions to ``degree`` random others and pings each every
  ``interval`` seconds: RTT samples, connect successes and failures (churn, scale).

Both dial public nodes only: a node behind a NAT has no address another host can reach.
* ``punch`` — plain UDP on bare hosts: clients register with a rendezvous host that tells
  them their public (server-reflexive) address, learn each other's, and punch holes by
  sending to each other at once; the result is the reachability by NAT-type pair.

Kernel-node workloads talk through the ``sim`` message protocol, which the simulator adds
to every node it starts (:class:`SimProtocol`).
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import trio

from p2pkit._exceptions import NodeStateError, RemoteProtocolError, SessionClosed
from p2pkit.capabilities import CHANNEL_BULK, CHANNEL_CONTROL
from p2pkit.hookspecs import hookimpl

if TYPE_CHECKING:
    from p2pkit.node import Node
    from p2pkit.peers import Peer

    from ._scenario import GroupSpec, _Reader
    from ._sim import SimNode, Simulation, _Start

PROTOCOL = "sim"
_FLOW_START = 0
_FLOW_DATA = 1
_PING = 2
_PONG = 3
_START = struct.Struct("!BIQd")  # kind, flow id, total bytes, start time
_DATA = struct.Struct("!BI")  # kind, flow id (+ data)
_TIME = struct.Struct("!Bd")  # kind, send time


class Flow:
    """One bulk transfer as seen by the simulator (both ends update it)."""

    def __init__(self, flow_id: int, label: str, src: str, dst: str, total: int,
                 link_bps: float) -> None:
        self.flow_id = flow_id
        self.label = label
        self.src = src
        self.dst = dst
        self.total = total
        self.link_bps = link_bps
        self.started: float | None = None
        self.completed: float | None = None
        self.done = trio.Event()  # set with ``completed``
        self.received = 0
        self.error = ""
        self.failed: float | None = None  # when it failed (set with ``error``)

    def fail(self, error: str, now: float | None) -> None:
        self.error = error
        self.failed = now

    def result(self, duration: float) -> dict[str, Any]:
        # a flow still running at the end is measured to the end; a failed one to its failure
        end = self.completed if self.completed is not None else self.failed
        elapsed = (duration if end is None else end) - (self.started or 0)
        goodput = self.received * 8 / elapsed if self.started is not None and elapsed > 0 else 0.0
        out: dict[str, Any] = {
            "label": self.label, "from": self.src, "to": self.dst, "bytes": self.total,
            "received": self.received, "started_s": self.started, "completed_s": self.completed,
            "duration_s": None if self.completed is None else self.completed - (self.started or 0),
            "goodput_bps": goodput,
        }
        if self.link_bps:
            out["link_bps"] = self.link_bps
            out["fraction_of_link"] = goodput / self.link_bps
        if self.error:
            out["error"] = self.error
            out["failed_s"] = self.failed
        return out


class SimProtocol:
    """The ``sim`` peer protocol: flow data and pings. Input is validated (hostile)."""

    name = PROTOCOL

    def __init__(self, sim: Simulation, sim_node: SimNode, node: Node) -> None:
        self.sim = sim
        self.sim_node = sim_node
        self.node = node

    async def handle(self, peer: Peer, payload: bytes) -> None:
        if not payload:
            raise RemoteProtocolError("empty sim message")
        kind = payload[0]
        sim, metrics = self.sim, self.sim.metrics
        if kind == _FLOW_DATA and len(payload) >= _DATA.size:
            _k, flow_id = _DATA.unpack_from(payload)
            flow = sim.flows.get(flow_id)
            if flow is None:
                raise RemoteProtocolError(f"unknown flow {flow_id}")
            nbytes = len(payload) - _DATA.size
            flow.received += nbytes
            metrics.add_series(f"goodput.{flow.label}_bytes", nbytes)
            metrics.count("bulk_bytes_received", nbytes, node=self.sim_node.name)
            if flow.completed is None and flow.received >= flow.total:
                flow.completed = sim.now
                flow.done.set()
                metrics.observe("bulk_completion_s", flow.completed - (flow.started or 0),
                                node=self.sim_node.name)
        elif kind == _FLOW_START and len(payload) == _START.size:
            _k, flow_id, total, _t = _START.unpack(payload)
            if flow_id not in sim.flows or sim.flows[flow_id].total != total:
                raise RemoteProtocolError(f"bad flow start {flow_id}")
        elif kind == _PING and len(payload) == _TIME.size:
            pong = bytes((_PONG,)) + payload[1:]
            _send_soon(self.node, peer, pong, CHANNEL_CONTROL)
        elif kind == _PONG and len(payload) == _TIME.size:
            _k, sent = _TIME.unpack(payload)
            if math.isfinite(sent) and sent <= sim.now:
                metrics.observe("rtt_s", sim.now - sent, node=self.sim_node.name)
        else:
            raise RemoteProtocolError(f"malformed sim message (kind {kind}, {len(payload)} B)")


def _random_running(sim: Simulation, rng: random.Random, members: list[str], me: str,
                    ) -> str | None:
    """A random running member other than ``me``: a few draws first (O(1); listing every
    candidate on every connect made 10 000-node runs quadratic), then the full list."""
    nodes = sim.nodes
    if not members:
        return None
    for _ in range(8):
        name = members[rng.randrange(len(members))]
        if name != me and nodes[name].running:
            return name
    candidates = [n for n in members if n != me and nodes[n].running]
    return rng.choice(candidates) if candidates else None


_GONE = (SessionClosed, NodeStateError, trio.BrokenResourceError, trio.ClosedResourceError)


def _send_soon(node: Node, peer: Peer, payload: bytes, channel: int) -> None:
    """Send without waiting; only a full send buffer costs a task that waits for room."""
    try:
        peer.send_nowait(PROTOCOL, payload, channel=channel)
    except trio.WouldBlock:
        node.nursery.start_soon(_send_quietly, peer, payload, channel)
    except _GONE:
        pass


async def _send_quietly(peer: Peer, payload: bytes, channel: int) -> None:
    try:
        with trio.move_on_after(10):
            await peer.send(PROTOCOL, payload, channel=channel)
    except _GONE:
        pass


class SimNodePlugin:
    """Added to every node the simulator starts: provides the ``sim`` protocol."""

    def __init__(self, sim: Simulation, sim_node: SimNode, start: _Start) -> None:
        self.sim = sim
        self.sim_node = sim_node
        self.start = start

    @hookimpl
    def p2pkit_node_plugins(self, node: Node) -> list[Any]:
        # called as the node is built, before its start's first checkpoint: a crash that
        # ends the start still has the node to hand to ``sim.start``'s caller
        self.start.node = node
        return []

    @hookimpl
    def p2pkit_message_protocols(self, node: Node) -> list[SimProtocol]:
        return [SimProtocol(self.sim, self.sim_node, node)]


# ---------------------------------------------------------------------------- workloads


class Workload(Protocol):
    def validate(self, w: _Reader, groups: Mapping[str, GroupSpec]) -> dict[str, Any]: ...
    def install(self, sim: Simulation, params: Mapping[str, Any]) -> None: ...


def _group_ref(w: _Reader, key: str, groups: Mapping[str, GroupSpec], *, node: bool,
               default: Any = ...) -> Any:
    value = w.get(key, (str, list), default)
    if value is None or (value is default and default is not ...):
        return value
    names = [value] if isinstance(value, str) else value
    for name in names:
        if name not in groups:
            raise w.error(key, f"no group named {name!r}")
        if groups[name].node is not node:
            kind = "run a node" if node else "be bare hosts (node = false)"
            raise w.error(key, f"group {name!r} must {kind}")
    return value


def _members(sim: Simulation, groups: str | list[str]) -> list[str]:
    names = [groups] if isinstance(groups, str) else groups
    return [host for g in names for host in sim.groups.get(g, [])]


def _behind_nat(sim: Simulation, name: str) -> bool:
    """A node behind a NAT has no address another host can dial: its own is private (every
    per-host NAT hands out the same one, so a NAT'd node dialling it reached itself), and
    the workloads do not model learning its public mapping."""
    return sim.host(name).nat is not None


class BulkWorkload:
    """``from``/``to`` groups, paired member by member; ``bytes`` each; from ``start``."""

    def validate(self, w: _Reader, groups: Mapping[str, GroupSpec]) -> dict[str, Any]:
        params = {
            "from": _group_ref(w, "from", groups, node=True),
            "to": _group_ref(w, "to", groups, node=True),
            "bytes": w.get("bytes", int),
            "message_bytes": w.get("message_bytes", int, 16384),
            "start": w.number("start", 1.0),
        }
        if params["bytes"] <= 0 or not 0 < params["message_bytes"] <= 1 << 20:
            raise w.error("bytes", "bytes must be > 0 and message_bytes in 1..1048576")
        return params

    def install(self, sim: Simulation, params: Mapping[str, Any]) -> None:
        senders = _members(sim, params["from"])
        receivers = _members(sim, params["to"])
        if not senders or not receivers:
            sim.note("bulk workload: no senders or receivers")
            return
        unreachable = 0
        for index, src in enumerate(senders):
            dst = receivers[index % len(receivers)]
            flow_id = len(sim.flows) + 1
            host = sim.host(src)
            flow = Flow(flow_id, src, src, dst,
                        params["bytes"], host.link.up_bps)
            sim.flows[flow_id] = flow
            if _behind_nat(sim, dst):
                flow.fail(f"receiver {dst} is behind a NAT: no address to dial", None)
                unreachable += 1
                continue
            sim.spawn(self._send, sim, flow, params)
        if unreachable:
            sim.note(f"bulk workload: {unreachable} of {len(senders)} flows not started, "
                     "their receivers are behind a NAT (the sender dials the receiver)")

    async def _send(self, sim: Simulation, flow: Flow, params: Mapping[str, Any]) -> None:
        await sim.sleep_until(params["start"])
        src, dst = sim.nodes[flow.src], sim.nodes[flow.dst]
        node = await src.wait_running()
        await dst.wait_running()
        if node.peers is None:
            flow.fail("node has no transport", sim.now)
            sim.note(f"bulk {flow.label}: node {flow.src} has no transport plugin")
            return
        try:
            peer = await node.peers.connect(dst.address)
            flow.started = sim.now
            await peer.send(PROTOCOL, _START.pack(_FLOW_START, flow.flow_id, flow.total,
                                                  flow.started), channel=CHANNEL_BULK)
            header = _DATA.pack(_FLOW_DATA, flow.flow_id)
            chunk = bytes(params["message_bytes"])
            remaining = flow.total
            while remaining > 0:
                piece = chunk if remaining >= len(chunk) else chunk[:remaining]
                await peer.send(PROTOCOL, header + piece, channel=CHANNEL_BULK)
                remaining -= len(piece)
            # all queued is not all delivered: wait for the receiver or the session's end
            assert src._stopped is not None
            await _first_of(flow.done, peer.closed, src._stopped)
            if flow.completed is None:
                # a crash closes the session too, "closed by peer" (a local reason): say why
                scope = src._scope
                running = src.node is node and scope is not None and not scope.cancel_called
                gone = (f"the session closed ({peer.close_reason})" if running
                        else f"the sender {flow.src} stopped")
                flow.fail(f"{gone} before {flow.dst} had every byte", sim.now)
        except (SessionClosed, NodeStateError, RemoteProtocolError, trio.TooSlowError) as exc:
            flow.fail(f"{type(exc).__name__}: {exc}", sim.now)


async def _first_of(*events: trio.Event) -> None:
    """Return once any of ``events`` is set."""
    async with trio.open_nursery() as nursery:
        async def wait(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        for event in events:
            nursery.start_soon(wait, event)


class MeshWorkload:
    """Each node of ``groups`` keeps ``degree`` sessions and (unless ``ping`` is false)
    pings every peer every ``interval`` s."""

    def validate(self, w: _Reader, groups: Mapping[str, GroupSpec]) -> dict[str, Any]:
        default = [name for name, g in groups.items() if g.node]
        params = {
            "groups": _group_ref(w, "groups", groups, node=True, default=default),
            "degree": w.get("degree", int, 8),
            "interval": w.number("interval", 1.0),
            "connect_timeout": w.number("connect_timeout", 5.0),
            "ping": w.get("ping", bool, True),
        }
        if params["degree"] < 0 or params["interval"] <= 0:
            raise w.error("degree", "degree must be >= 0 and interval > 0")
        return params

    def install(self, sim: Simulation, params: Mapping[str, Any]) -> None:
        members = _members(sim, params["groups"])
        member_set = set(members)
        targets = [name for name in members if not _behind_nat(sim, name)]
        if len(targets) < len(members):
            sim.note(f"mesh workload: {len(members) - len(targets)} of {len(members)} nodes are "
                     "behind a NAT and are never dialled (no address to reach them at); they "
                     f"dial the {len(targets)} public ones")
        warned: list[bool] = []

        def started(sim_node: SimNode, node: Node) -> None:
            if sim_node.name in member_set and node.peers is None and not warned:
                warned.append(True)
                sim.note("mesh workload: nodes have no transport plugin, no sessions opened")
            if sim_node.name in member_set and node.peers is not None:
                node.nursery.start_soon(self._node_loop, sim, sim_node, node, targets, params)

        sim.on_node_start(started)

    async def _node_loop(self, sim: Simulation, me: SimNode, node: Node, targets: list[str],
                         params: Mapping[str, Any]) -> None:
        rng = sim.rng("mesh", me.name, me.starts)
        peers = node.peers
        assert peers is not None
        metrics = sim.metrics
        while True:
            outbound = [p for p in peers.all() if p.initiated]
            if len(outbound) < params["degree"]:
                choice = _random_running(sim, rng, targets, me.name)
                if choice is not None:
                    target = sim.nodes[choice]
                    with trio.move_on_after(params["connect_timeout"]) as scope:
                        try:
                            await peers.connect(target.address)
                            metrics.count("mesh_connect_ok", node=me.name)
                        except (SessionClosed, RemoteProtocolError, trio.TooSlowError):
                            metrics.count("mesh_connect_failed", node=me.name)
                    if scope.cancelled_caught:
                        metrics.count("mesh_connect_failed", node=me.name)
            if params["ping"]:
                ping = _TIME.pack(_PING, sim.now)
                for peer in peers.all():
                    _send_soon(node, peer, ping, CHANNEL_CONTROL)
                    metrics.count("mesh_pings", node=me.name)
            await sim.sleep(params["interval"] * (0.5 + rng.random()))


class PunchWorkload:
    """Plain-UDP hole punching through the NAT boxes (no NAT plugin needed)."""

    def validate(self, w: _Reader, groups: Mapping[str, GroupSpec]) -> dict[str, Any]:
        params = {
            "rendezvous": _group_ref(w, "rendezvous", groups, node=False),
            "clients": _group_ref(w, "clients", groups, node=False),
            "port": w.get("port", int, 4000),
            "start": w.number("start", 1.0),
            "punch_s": w.number("punch_s", 5.0),
            "interval": w.number("interval", 0.5),
        }
        if params["interval"] <= 0:
            raise w.error("interval", "must be > 0")
        return params

    def install(self, sim: Simulation, params: Mapping[str, Any]) -> None:
        rendezvous = sim.host(_members(sim, params["rendezvous"])[0])
        clients = _members(sim, params["clients"])
        heard: dict[str, set[str]] = {name: set() for name in clients}
        sim.spawn(self._rendezvous, sim, rendezvous, params)
        for name in clients:
            sim.spawn(self._client, sim, name, rendezvous, params, heard)
        sim.spawn(self._summarize, sim, clients, params, heard)

    async def _rendezvous(self, sim: Simulation, host: Any, params: Mapping[str, Any]) -> None:
        endpoint = host.bind(3478)
        registry: dict[str, tuple[str, int]] = {}

        def dispatch(batch: list[tuple[bytes, tuple[str, int]]], now: float) -> None:
            for data, addr in batch:
                parts = data.split()
                if len(parts) == 2 and parts[0] == b"REG":
                    registry[parts[1].decode(errors="replace")] = addr
                    endpoint.send(b"OBS %s %d" % (addr[0].encode(), addr[1]), addr)
                elif parts == [b"LIST"]:
                    listing = ";".join(f"{n} {a[0]} {a[1]}" for n, a in registry.items())
                    endpoint.send(b"PEERS " + listing.encode(), addr)
                else:
                    sim.metrics.count("punch_garbage")

        await endpoint.run(dispatch)

    async def _client(self, sim: Simulation, name: str, rendezvous: Any,
                      params: Mapping[str, Any], heard: dict[str, set[str]]) -> None:
        host = sim.host(name)
        endpoint = host.bind(params["port"])
        server = (rendezvous.ip, 3478)
        peers: dict[str, tuple[str, int]] = {}
        me = name.encode()

        def dispatch(batch: list[tuple[bytes, tuple[str, int]]], now: float) -> None:
            for data, addr in batch:
                parts = data.split(maxsplit=1)
                if not parts:
                    continue
                if parts[0] == b"PEERS" and len(parts) == 2:
                    for entry in parts[1].decode(errors="replace").split(";"):
                        fields = entry.split()
                        if len(fields) == 3 and fields[0] != name and fields[2].isdigit():
                            peers[fields[0]] = (fields[1], int(fields[2]))
                elif parts[0] in (b"PUNCH", b"ACK") and len(parts) == 2:
                    other = parts[1].decode(errors="replace")
                    heard[name].add(other)
                    if parts[0] == b"PUNCH":
                        endpoint.send(b"ACK " + me, addr)

        async with trio.open_nursery() as nursery:
            await nursery.start(endpoint.run, dispatch)
            await sim.sleep_until(params["start"])
            endpoint.send(b"REG " + me, server)
            await sim.sleep(1.0)
            endpoint.send(b"LIST", server)
            await sim.sleep(1.0)
            rounds = max(1, int(params["punch_s"] / params["interval"]))
            for _ in range(rounds):
                for other in sorted(peers):
                    endpoint.send(b"PUNCH " + me, peers[other])
                await sim.sleep(params["interval"])
            nursery.cancel_scope.cancel()

    async def _summarize(self, sim: Simulation, clients: list[str], params: Mapping[str, Any],
                         heard: dict[str, set[str]]) -> None:
        await sim.sleep_until(params["start"] + 2.5 + params["punch_s"])
        nat_of = {}
        for name in clients:
            host = sim.host(name)
            nat_of[name] = host.nat.type.value if host.nat is not None else "open"
        pairs: list[dict[str, Any]] = []
        matrix: dict[str, list[int]] = {}
        for i, a in enumerate(clients):
            for b in clients[i + 1:]:
                ok = b in heard[a] and a in heard[b]
                pairs.append({"a": a, "b": b, "nat_a": nat_of[a], "nat_b": nat_of[b], "ok": ok})
                key = " | ".join(sorted((nat_of[a], nat_of[b])))
                cell = matrix.setdefault(key, [0, 0])
                cell[0] += ok
                cell[1] += 1
        sim.results["punch"] = {
            "pairs": pairs,
            "by_nat_pair": {k: {"ok": v[0], "tried": v[1]} for k, v in sorted(matrix.items())},
        }
        sim.metrics.count("punch_pairs_ok", sum(p["ok"] for p in pairs))
        sim.metrics.count("punch_pairs", len(pairs))


WORKLOADS: dict[str, Workload] = {
    "bulk": BulkWorkload(),
    "mesh": MeshWorkload(),
    "punch": PunchWorkload(),
}
