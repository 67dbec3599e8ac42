"""How many real nodes the simulator runs, and how fast.

N nodes, each running the kernel and the transport plugin (rudp), every node opening
sessions to ``--degree`` random others (so about 2 * degree sessions each, one new
session per node every ~5 s until it has ``degree`` of its own) that then live on rudp
heartbeats (the seed's 1000 ms), for ``--duration`` virtual seconds at 1 ms time
resolution — the issue's workload. ``--pings`` adds an application message each way per
peer every ~5 s (the kernel's message path: tasks, peer layer) and reports its RTT. Side
by side, the same traffic pattern on bare virtual endpoints (no kernel) shows what the
network model itself costs.

    python -m benchmarks.sim_scale [--nodes 1000] [--quick] [--pings]

Last line: JSON with nodes, speedup (virtual / wall seconds, the whole run: starting the
nodes and forming the mesh included), steady_speedup (the same over the last sixth of the
run, when the mesh is nearly complete and the traffic is heartbeats), datagrams_per_s
(delivered per wall second), rss_MB_per_node (peak RSS growth / nodes), and the
bare-network figures; cpu_speedup (virtual / CPU seconds: what the code costs, which a
busy shared machine does not change as much as the wall clock), and for 1000 nodes or
more the issue's target (at least 3x real time) and whether this run met it.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from typing import Any

import trio
from p2pkit.simulator import CoreLatency, LinkProfile, Simulation

from p2pkit.compiled import compiled_modules

LINK = LinkProfile(up_bps=10e6, down_bps=50e6, latency=0.005, jitter=0.001, queue_bytes=64_000)
# kernel + transport only: the store plugin would open an SQLite file per node.
NODE_CONFIG = {"node": {"plugins": ["p2pkit.plugins.rudp"], "disable": ["store", "swarm", "webui", "flooding"]}}
CORE = CoreLatency(distribution="uniform", low=0.010, high=0.060)
TARGET_NODES = 1000  # the issue: 1000 real nodes in one process ...
TARGET_SPEEDUP = 3.0  # ... at least this much faster than real time


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def kernel_run(nodes: int, degree: int, duration: float, seed: int, *, pings: bool = False,
               ) -> dict[str, Any]:
    from p2pkit.simulator._workloads import WORKLOADS

    sim = Simulation(seed, duration=duration, resolution=0.001, core=CORE)
    timings: dict[str, float] = {}

    async def scenario(sim: Simulation) -> None:
        for i in range(nodes):
            sim.add_node(f"n{i}", link=LINK, group="peer", config=NODE_CONFIG)
        WORKLOADS["mesh"].install(sim, {"groups": "peer", "degree": degree, "interval": 5.0,
                                        "connect_timeout": 5.0, "ping": pings})
        t0 = time.perf_counter()
        for i in range(nodes):
            await sim.start(f"n{i}")
        timings["start_wall_s"] = time.perf_counter() - t0
        timings["rss_after_start_MB"] = _current_rss_mb()

    gc.collect()
    base = _current_rss_mb()
    started = time.perf_counter()
    last = [-1]

    marks: list[tuple[float, float]] = []  # (virtual, wall) seconds since the start

    def progress(now: float, total: float) -> None:
        marks.append((now, time.perf_counter() - started))
        tenth = int(now / total * 10)
        if tenth > last[0]:
            last[0] = tenth
            print(f"  ... {now:.0f}/{total:.0f} virtual s after {time.perf_counter() - started:.0f} "
                  "wall s", file=sys.stderr, flush=True)

    cpu_started = time.process_time()
    report = sim.run(scenario, progress=progress)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    peak = _rss_mb()
    net = report["network"]
    transports = [e["node"]["transport"] for e in report["nodes"].values()
                  if e.get("node", {}).get("transport")]
    sessions = sum(t.get("connections", 0) for t in transports) / max(1, len(transports))
    rtt = report["aggregate"]["samples"].get("rtt_s", {})
    # The mesh forms during the first ~40 s (a session per node every ~5 s, each an
    # authenticated handshake); the last sixth of the run is nearly all heartbeats.
    steady = [(v, w) for v, w in marks if v >= duration * 5 / 6]
    steady_speedup = ((steady[-1][0] - steady[0][0]) / (steady[-1][1] - steady[0][1])
                      if len(steady) > 1 and steady[-1][1] > steady[0][1] else 0.0)
    return {
        "wall_s": wall,
        "steady_speedup": steady_speedup,
        "cpu_s": cpu,  # wall above this one = the machine was busy with something else
        "start_wall_s": timings.get("start_wall_s", 0.0),
        "speedup": duration / wall,
        "datagrams": net["datagrams_delivered"],
        "datagrams_per_s": net["datagrams_delivered"] / wall,
        "dispatch_instants": net["dispatch_instants"],
        "rss_MB_per_node": (max(peak, timings.get("rss_after_start_MB", 0)) - base) / nodes,
        "connects_ok": report["aggregate"]["counters"].get("mesh_connect_ok", 0),
        "connects_failed": report["aggregate"]["counters"].get("mesh_connect_failed", 0),
        "sessions_per_node": sessions,
        "rtt_p50_ms": rtt.get("p50", 0.0) * 1000,
        "notes": report["notes"],
    }


def bare_run(nodes: int, degree: int, duration: float, seed: int) -> dict[str, float]:
    """Same pattern without the kernel: every host pings `degree` others each second
    (and answers pings), like rudp heartbeats + acks."""
    sim = Simulation(seed, duration=duration, resolution=0.001, core=CORE)

    async def host_task(sim: Simulation, index: int) -> None:
        endpoint = sim.host(f"h{index}").bind(7700)
        rng = sim.rng("bare", index)
        targets = [sim.host(f"h{rng.randrange(nodes)}").ip for _ in range(degree)]

        def dispatch(batch: list[tuple[bytes, tuple[str, int]]], now: float) -> None:
            replies = [(b"A" + data[1:], addr) for data, addr in batch if data[:1] == b"P"]
            if replies:
                endpoint.send_batch(replies)

        async with trio.open_nursery() as nursery:
            await nursery.start(endpoint.run, dispatch)
            await sim.sleep(rng.random())
            while True:
                endpoint.send_batch([(b"P" + bytes(40), (ip, 7700)) for ip in targets])
                await sim.sleep(1.0)

    async def scenario(sim: Simulation) -> None:
        for i in range(nodes):
            sim.add_host(f"h{i}", LINK)
        for i in range(nodes):
            sim.spawn(host_task, sim, i)

    started = time.perf_counter()
    report = sim.run(scenario)
    wall = time.perf_counter() - started
    delivered = report["network"]["datagrams_delivered"]
    return {"wall_s": wall, "speedup": duration / wall, "datagrams": delivered,
            "datagrams_per_s": delivered / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--degree", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="200 nodes, 20 virtual s")
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--pings", action="store_true",
                        help="also an application ping each way per peer every ~5 s")
    args = parser.parse_args()
    nodes, duration = (200, 20.0) if args.quick else (args.nodes, args.duration)
    print(f"{nodes} nodes, degree {args.degree}, {duration:g} virtual s, 1 ms resolution")
    bare = {} if args.skip_bare else bare_run(nodes, args.degree, duration, args.seed)
    if bare:
        print(f"bare network : {bare['wall_s']:.1f} wall s, {bare['speedup']:.1f}x real time, "
              f"{bare['datagrams_per_s']:.0f} datagrams/s")
    kernel = kernel_run(nodes, args.degree, duration, args.seed, pings=args.pings)
    print(f"kernel + rudp: {kernel['wall_s']:.1f} wall s ({kernel['cpu_s']:.1f} CPU s; starting nodes "
          f"{kernel['start_wall_s']:.1f} s), "
          f"{kernel['speedup']:.2f}x real time (last sixth: {kernel['steady_speedup']:.2f}x), "
          f"{kernel['datagrams_per_s']:.0f} datagrams/s, "
          f"{kernel['rss_MB_per_node']:.2f} MB/node, {kernel['sessions_per_node']:.1f} sessions/node, "
          f"connects ok/failed {kernel['connects_ok']:.0f}/{kernel['connects_failed']:.0f}"
          + (f", ping RTT p50 {kernel['rtt_p50_ms']:.1f} ms" if args.pings else ""))
    for note in kernel["notes"]:
        print(f"note: {note}")
    cpu_speedup = duration / kernel["cpu_s"] if kernel["cpu_s"] > 0 else 0.0
    meets = kernel["speedup"] >= TARGET_SPEEDUP if nodes >= TARGET_NODES else None
    print(f"virtual / CPU seconds {cpu_speedup:.2f}x"
          + ("" if meets is None else f"; target {TARGET_SPEEDUP:g}x real time at "
             f"{TARGET_NODES} nodes {'met' if meets else 'NOT met'} in this run"))
    compiled = compiled_modules()
    print(f"compiled modules (mypyc): {len(compiled)}" + (f" ({', '.join(compiled)})" if compiled
                                                          else " — pure Python"))
    print(json.dumps({
        "nodes": nodes,
        "duration_s": duration,
        "pings": args.pings,
        "speedup": round(kernel["speedup"], 3),
        "steady_speedup": round(kernel["steady_speedup"], 3),
        "cpu_speedup": round(cpu_speedup, 3),
        "target_speedup": TARGET_SPEEDUP if nodes >= TARGET_NODES else None,
        "meets_target": meets,
        "datagrams_per_s": round(kernel["datagrams_per_s"]),
        "rss_MB_per_node": round(kernel["rss_MB_per_node"], 3),
        "wall_s": round(kernel["wall_s"], 2),
        "cpu_s": round(kernel["cpu_s"], 2),
        "start_wall_s": round(kernel["start_wall_s"], 2),
        "sessions_per_node": round(kernel["sessions_per_node"], 2),
        "bare_speedup": round(bare.get("speedup", 0.0), 3),
        "bare_datagrams_per_s": round(bare.get("datagrams_per_s", 0.0)),
        "compiled_modules": len(compiled),
    }))


if __name__ == "__main__":
    main()
