"""Flooding discovery: what a new session costs, and how long a search waits.

* **Sync.** N flooding cores (the sans-IO state machine the plugin runs) on a random
  connected graph (``--degree`` on average), each sharing ``--files`` files, exchange
  their lists until quiet. Then ``--sessions`` new sessions open between random pairs
  that were not neighbours, one at a time, each side syncing the other as the plugin does
  (flood/3: our announce, a digest of the lists we hold, then the lists the other lacks
  or holds older); every message it causes is counted. Side by side, from the same state
  at the same moment: what the full-table sync of flood/2 sent on that session — each
  side's announce and every list it held, as relayed copies (a lower bound: flood/2 also
  announced under a new seq at every session, which the network flooded on).
* **Search.** 12 real nodes (rudp, flooding) over simulated links with 40 ms round trips
  and 2 % loss, bootstrapped in a chain (peer exchange adds shortcuts); searches that
  nobody can answer and searches answered from the far end of the network, timed in
  virtual seconds, against ``search_timeout`` (what a search nobody answered took
  before the flood's Done messages).

    python -m benchmarks.flooding [--quick] [--nodes 100] [--seed 1]

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import tempfile
import wave
from collections import deque
from pathlib import Path
from typing import Any

import msgspec
from p2pkit.plugins.flooding import Entry, FloodCore
from p2pkit.plugins.flooding._messages import encode
from p2pkit.simulator import LinkProfile, LossSpec, SimNode, Simulation

from p2pkit import Identity

SEARCH_NODES = 12
SEARCH_TIMEOUT = 3.0  # the plugin's default
FLOODING = {"announce_interval": 5.0, "entry_expiry": 30.0, "pex_interval": 2.0, "ttl": 4,
            "search_timeout": SEARCH_TIMEOUT}


class Mesh:
    """Cores wired by an in-memory, in-order delivery queue (every message counted)."""

    def __init__(self, n: int, rng: random.Random) -> None:
        self.ids: list[str] = []
        self.cores: dict[str, FloodCore] = {}
        for i in range(n):
            ident = Identity.from_seed(hashlib.sha256(b"bench-%d" % i).digest())
            core = FloodCore(ident.node_id, ident.public_key, ident.sign, ttl=4)
            core.port = 7000 + i
            self.ids.append(ident.node_id)
            self.cores[ident.node_id] = core
        self.links: dict[str, set[str]] = {i: set() for i in self.ids}
        self.queue: deque[tuple[str, str, bytes]] = deque()
        self.rng = rng
        self.now = 0.0
        self.messages = self.bytes = 0

    def link(self, a: str, b: str) -> None:
        self.links[a].add(b)
        self.links[b].add(a)

    def post(self, sender: str, sends: list[tuple[str, bytes]]) -> None:
        self.queue.extend((sender, to, data) for to, data in sends)

    def run(self) -> None:
        while self.queue:
            sender, to, data = self.queue.popleft()
            self.messages += 1
            self.bytes += len(data)
            out = self.cores[to].receive(sender, "10.0.0.1", data, self.now, self.links[to])
            self.post(to, out.sends)
            if out.backfill is not None:  # the lists a new neighbour lacks (the glue: as room allows)
                peer, origins = out.backfill
                copies = [self.cores[to].relayed_copy(origin, self.now) for origin in origins]
                self.post(to, [(peer, copy) for copy in copies if copy is not None])


def random_graph(mesh: Mesh, degree: int) -> None:
    ids = mesh.ids
    for i in range(1, len(ids)):  # a random tree keeps it connected
        mesh.link(ids[i], ids[mesh.rng.randrange(i)])
    for _ in range(len(ids) * max(0, degree - 2) // 2):
        a, b = mesh.rng.sample(ids, 2)
        mesh.link(a, b)


def full_sync_bytes(core: FloodCore, peer: str, now: float) -> int:
    """What flood/2's sync sent ``peer``: our announce (the size of our last: a new one
    would change the state measured) and every list we held."""
    last = core._last_announce
    total = len(encode(last)) if last is not None else 0
    for rec in core.records.values():
        if rec.origin != peer and rec.expires_at > now:
            relayed = msgspec.structs.replace(rec.announce, ttl=max(1, core.ttl - 1),
                                              age=max(0.0, now - rec.born))
            total += len(encode(relayed))
    return total


def measure_sync(n: int, degree: int, files: int, sessions: int, seed: int) -> dict[str, Any]:
    mesh = Mesh(n, random.Random(seed))
    random_graph(mesh, degree)
    for i, node in enumerate(mesh.ids):
        core = mesh.cores[node]
        core.set_local([Entry(rid=hashlib.sha256(f"{i}-{k}".encode()).hexdigest(),
                              name=f"clip {i}-{k}.mp4", size=10_000_000 + k, mime="video/mp4",
                              category="video", title=f"Clip {k} of node {i}",
                              description="a holiday clip, shared over p2pkit " * 2)
                        for k in range(files)])
        mesh.post(node, core.announce_to(mesh.links[node], now=mesh.now))
    mesh.run()
    held = statistics.mean(len(c.records) for c in mesh.cores.values())
    digest_bytes, digest_messages, full_bytes = [], [], []
    for _ in range(sessions):
        while True:
            a, b = mesh.rng.sample(mesh.ids, 2)
            if b not in mesh.links[a]:
                break
        mesh.now += 1.0
        # flood/2's cost from this very state, before the session changes anything
        full_bytes.append(full_sync_bytes(mesh.cores[a], b, mesh.now)
                          + full_sync_bytes(mesh.cores[b], a, mesh.now))
        mesh.link(a, b)
        before_messages, before_bytes = mesh.messages, mesh.bytes
        mesh.post(a, mesh.cores[a].sync_for(b, mesh.now))
        mesh.post(b, mesh.cores[b].sync_for(a, mesh.now))
        mesh.run()
        digest_messages.append(mesh.messages - before_messages)
        digest_bytes.append(mesh.bytes - before_bytes)
    return {
        "nodes": n, "degree": degree, "files_per_node": files, "lists_held": round(held, 1),
        "sessions": sessions,
        "sync_messages_per_session": round(statistics.mean(digest_messages), 1),
        "sync_bytes_per_session": round(statistics.mean(digest_bytes)),
        "full_sync_bytes_per_session": round(statistics.mean(full_bytes)),
        "sync_bytes_ratio": round(statistics.mean(full_bytes) / statistics.mean(digest_bytes), 1),
    }


def tone(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x10\x00" * 8000)
    return path


async def lossy_chain(sim: Simulation, n: int, flooding: dict[str, Any]) -> list[SimNode]:
    """``n`` flooding nodes over links with 40 ms round trips and 2 % loss, each
    bootstrapped from the one before (peer exchange adds shortcuts), started and given
    10 s to connect (also the tests' simulated network)."""
    link = LinkProfile(latency=0.02, jitter=0.005, loss=LossSpec.bernoulli(0.02))
    plugins = ["p2pkit.plugins.rudp", "p2pkit.plugins.flooding"]
    nodes = []
    for i in range(n):
        boot = [f"{sim.host(f'n{i - 1}').ip}:7700"] if i else []
        config = {"node": {"plugins": plugins, "bootstrap": boot}, "flooding": flooding}
        nodes.append(sim.add_node(f"n{i}", link=link, config=config))
    for node in nodes:
        await sim.start(node)
    await sim.sleep(10)
    return nodes


def measure_search(seed: int, queries: int) -> dict[str, Any]:
    timings: dict[str, list[float]] = {"nothing": [], "far": []}
    found: list[int] = []

    with tempfile.TemporaryDirectory(prefix="p2pkit-bench-") as tmp:
        async def scenario(sim: Simulation) -> None:
            nodes = await lossy_chain(sim, SEARCH_NODES, FLOODING)
            first, last = nodes[0].node, nodes[-1].node
            assert first is not None and last is not None
            await first.share(tone(Path(tmp) / "far.wav"), title="Far Bells")
            await sim.sleep(1)
            for q in range(queries):
                started = sim.now
                await last.search(f"nothing like {q}")
                timings["nothing"].append(sim.now - started)
                started = sim.now
                found.append(len(await last.search("bells")))
                timings["far"].append(sim.now - started)

        Simulation(seed=seed, duration=60.0 + 8 * queries, resolution=0.001).run(scenario)
    return {
        "search_nodes": SEARCH_NODES, "search_queries": queries,
        "search_unanswered_seconds": round(statistics.median(timings["nothing"]), 3),
        "search_unanswered_max_seconds": round(max(timings["nothing"]), 3),
        "search_answered_seconds": round(statistics.median(timings["far"]), 3),
        "search_answered_found": min(found),
        "search_timeout_seconds": SEARCH_TIMEOUT,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 nodes, 10 sessions, 3 searches")
    parser.add_argument("--nodes", type=int, help="cores in the sync measurement (default 100)")
    parser.add_argument("--degree", type=int, default=6)
    parser.add_argument("--files", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    nodes = args.nodes or (30 if args.quick else 100)
    sessions, queries = (10, 3) if args.quick else (40, 10)
    result = {**measure_sync(nodes, args.degree, args.files, sessions, args.seed),
              **measure_search(args.seed, queries), "seed": args.seed}
    print(f"sync: {result['sync_bytes_per_session']} bytes per new session "
          f"({result['sync_messages_per_session']} messages) against at least "
          f"{result['full_sync_bytes_per_session']} for the full table of flood/2 "
          f"({nodes} nodes holding {result['lists_held']} lists each)")
    print(f"search: nobody answers {result['search_unanswered_seconds']} s (median; max "
          f"{result['search_unanswered_max_seconds']} s), answered from far "
          f"{result['search_answered_seconds']} s, against search_timeout {SEARCH_TIMEOUT} s")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
