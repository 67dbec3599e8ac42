"""Flooding at simulator scale: what discovery costs a few hundred churning nodes.

N simulated nodes with the default plugins (store, rudp, swarm, flooding) arrive over the
first 10 virtual seconds, stay online for exponential sessions (mean 40 s), crash, and
rejoin after exponential downtimes (mean 15 s); each keeps sessions to ``--degree``
random others and pings them every second (the built-in ``churn`` scenario's workload,
scaled up), and flooding adds its own peers (peer exchange) and lists. Side by side, in
the same run: the same network with flooding disabled, so the difference is flooding's
share of the cost. Each variant runs in a child process of its own, so its peak RSS is
its own.

    python -m benchmarks.flooding_scale [--nodes 200] [--duration 40] [--quick]

Reported per variant: wall and CPU seconds (``time.process_time``: what the code costs,
which a busy shared machine changes less than the wall clock), speedup (virtual / wall
seconds), peak RSS, datagrams delivered and the flooding counters summed over every node
instance (announces handled, new lists, duplicates...). The datagram and counter figures
are deterministic per seed, so they also show that a change to the code left the
protocol's behaviour as it was. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from typing import Any

SCENARIO = """
[scenario]
name = "flooding-scale"
duration = {duration}
seed = {seed}
resolution_ms = 1.0

[config]
node = {{ plugins = ["p2pkit.plugins.rudp"], disable = {disable} }}

[core]
distribution = "uniform"
low_ms = 10.0
high_ms = 60.0

[links.broadband]
down_mbps = 50.0
up_mbps = 10.0
latency_ms = 5.0
jitter_ms = 1.0
queue_ms = 50.0

[[groups]]
name = "peer"
count = {nodes}
link = "broadband"
arrivals = {arrivals}
session = {{ dist = "exponential", mean = 40.0 }}
downtime = {{ dist = "exponential", mean = 15.0 }}
leave = "crash"

[[workload]]
kind = "mesh"
groups = "peer"
degree = {degree}
interval = 1.0
"""

VARIANTS = ("flooding", "without")


def run_variant(variant: str, nodes: int, duration: float, degree: int, seed: int) -> dict[str, Any]:
    """One run in this process: ``variant`` "flooding" (every default plugin) or
    "without" (flooding disabled)."""
    from p2pkit.simulator._runner import scenario_function, simulation_for
    from p2pkit.simulator._scenario import parse_scenario

    disable = '["flooding"]' if variant == "without" else "[]"
    spec = parse_scenario(SCENARIO.format(duration=duration, seed=seed, nodes=nodes,
                                          arrivals=nodes / 10.0, degree=degree, disable=disable))
    sim = simulation_for(spec)
    counters: list[dict[str, int]] = []

    def started(sim_node: Any, node: Any) -> None:
        core = getattr(node.discovery, "core", None)
        if core is not None:
            counters.append(core.counters)  # the dict only: a crashed node's state goes

    inner = scenario_function(spec)

    async def scenario(sim: Any) -> None:
        sim.on_node_start(started)
        await inner(sim)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    report = sim.run(scenario)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    totals: Counter[str] = Counter()
    for c in counters:
        totals.update(c)
    net = report["network"]
    agg = report["aggregate"]
    return {
        "variant": variant, "nodes": nodes, "duration_s": duration,
        "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "speedup": round(duration / wall, 3), "cpu_speedup": round(duration / cpu, 3),
        "peak_rss_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "node_starts": agg.get("node_starts", 0),
        "datagrams_delivered": net["datagrams_delivered"],
        "bytes_delivered": net["bytes_delivered"],
        "flood_counters": dict(sorted(totals.items())),
    }


def _child(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.flooding_scale", "--variant", variant,
               "--nodes", str(args.nodes), "--duration", str(args.duration),
               "--degree", str(args.degree), "--seed", str(args.seed)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # as `p2pkit sim run` does
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the {variant} run failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--duration", type=float, default=40.0, help="virtual seconds")
    parser.add_argument("--degree", type=int, default=4, help="mesh sessions each node opens")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="60 nodes, 20 virtual s")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # a child run
    args = parser.parse_args(argv)
    if args.quick:
        args.nodes, args.duration = 60, 20.0
    if args.variant:
        result = run_variant(args.variant, args.nodes, args.duration, args.degree, args.seed)
        print(json.dumps(result))
        return result
    runs = {variant: _child(variant, args) for variant in VARIANTS}
    flooding, without = runs["flooding"], runs["without"]
    for run in (flooding, without):
        name = "default plugins" if run["variant"] == "flooding" else "flooding disabled"
        print(f"{name:17}: {run['wall_s']:.1f} wall s, {run['cpu_s']:.1f} CPU s "
              f"({run['speedup']:.2f}x real time, {run['cpu_speedup']:.2f}x per CPU s), "
              f"peak RSS {run['peak_rss_MB']:.0f} MB, "
              f"{run['datagrams_delivered']} datagrams delivered")
    share = (flooding["cpu_s"] - without["cpu_s"]) / flooding["cpu_s"] if flooding["cpu_s"] else 0.0
    counters = flooding["flood_counters"]
    print(f"flooding's share of the CPU time: {share:.0%}; announces handled "
          f"{counters.get('announces_in', 0)}, new lists {counters.get('announces_new', 0)}")
    result = {
        "nodes": args.nodes, "duration_s": args.duration, "degree": args.degree,
        "seed": args.seed, "flooding": flooding, "without_flooding": without,
        "flooding_cpu_share": round(share, 3),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
