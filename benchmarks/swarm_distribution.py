"""Swarm distribution time against the theoretical minimum (Kumar & Ross 2006).

In the simulator (virtual time, real kernel + rudp + store + swarm), one seeder and N
leechers with heterogeneous upload bandwidths; every leecher starts downloading a file of
F bytes at the same instant. Measured: the time until every leecher has the whole file,
verified. Compared in the same run with

* the P2P lower bound D = max(F/u_s, F/d_min, N·F/(u_s + Σu_i)), and
* the client-server time max(N·F/u_s, F/d_min) (the seeder alone serving everyone).

    python -m benchmarks.swarm_distribution [--quick] [-n N] [--size-mb F] [--seed S]
        [--upload-limit FRACTION] [--swarm KEY=VALUE ...] [--rudp KEY=VALUE ...] [--timeline [STEP]]
        [--diagnose T[,T...]] [--wire]

``--timeline [STEP]`` prints, every STEP virtual seconds (half a second by default), how
busy the seeder's uplink and each upload class of leechers were and how much checked
content the leechers held (whole pieces and the checked blocks of pieces in progress,
which they already serve): where the time goes. ``--diagnose`` prints, at the given
virtual times, what the leechers' missing blocks wait for (``SwarmProvider.diagnose`` summed over the swarm): a peer they
were asked of, by upload class; a pipeline with room, one backing off after a Reject, or
a full one, at a peer that unchokes them; only members that choke them; nobody. Either
option adds wake-ups to the run, which shifts the simulation's event order: its figures
differ a little from a run without it. ``--wire`` splits what the hosts sent from the
start until the last leecher is done (what their uplinks' queues dropped included) by
kind of datagram — rudp's packet types, DATA in full-size datagrams (the bulk of piece
data) apart from shorter ones (mostly control messages on their own) — with the bytes of
headers in them, from a capture tap on the simulated network (``Simulation.capture``);
it adds no wake-up, and the run's figures are those of a run without it.

The headline runs on the defaults, where each node finds its upload limit by itself
from its uplink's queueing delay (rudp's ``uplink_target_ms``; ``--rudp
uplink_target_ms=0`` turns that off, as before 30 Nov). ``--upload-limit`` is a separate
configuration, never the headline figure: every node sets ``cfg.upload_limit_kbps`` to
that fraction of its uplink, as a user who knows their line would (rudp holds all of
the node's sessions together to it, headers included). ``--swarm``/``--rudp`` set a
config key on every node for side-by-side comparisons.

The last line of output is one JSON object: n, ratio_to_bound, seconds, bound_seconds,
client_server_seconds, and the parameters. Target: ratio at most 1.3 at N = 100. One seed
is one event order; ``python -m benchmarks.seeds swarm_distribution --seeds 1-8 -- ARGS``
gives the mean over seeds that a change is judged on.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import wave
from collections import Counter
from pathlib import Path
from typing import Any

import trio
from p2pkit.plugins.rudp import RudpConfig
from p2pkit.plugins.rudp.packet import MAGIC, MalformedPacket, PacketType, decode_frames
from p2pkit.plugins.store import LEAF_SIZE
from p2pkit.plugins.swarm._provider import SwarmConfig
from p2pkit.simulator import HEADER_BYTES, Host, LinkProfile, LossSpec, Simulation

from p2pkit.compiled import build_description

MBIT = 1e6
UPLOAD_CHOICES_MBIT = (2.0, 5.0, 10.0, 20.0)  # leecher uploads, drawn per leecher
SEEDER_UP_MBIT = 20.0
DOWN_MBIT = 100.0
LATENCY = 0.010  # one-way, per access link
QUEUE_SECONDS = 0.1  # each access link buffers 100 ms of its rate (drop-tail)


def make_media(path: Path, size: int, seed: int) -> Path:
    """A WAV of ``size`` bytes (noise): real media the store accepts."""
    rng = random.Random(seed)
    frames = max(1, (size - 44) // 2)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(rng.randbytes(frames * 2))
    return path


class _Finished(Exception):
    """Raised by the scenario once every leecher is done: ends the run at once instead of
    simulating the rest of the scenario's duration."""


def bounds(size: int, n: int, seeder_up: float, ups: list[float], down: float) -> dict[str, float]:
    """Times in seconds; rates in bits/s, size in bytes."""
    bits = size * 8
    p2p = max(bits / seeder_up, bits / down, n * bits / (seeder_up + sum(ups)))
    client_server = max(n * bits / seeder_up, bits / down)
    return {"bound_seconds": p2p, "client_server_seconds": client_server}


def run(n: int, size: int, seed: int, loss: float, verbose: bool, *, piece_kib: int = 256,
        block_kib: int = 16, max_peers: int | None = None, upload_limit: float = 0.0,
        swarm: dict[str, Any] | None = None, rudp: dict[str, Any] | None = None,
        timeline: float = 0.0, diagnose: list[float] | None = None,
        wire: bool = False) -> dict[str, Any]:
    rng = random.Random(seed)
    ups = [rng.choice(UPLOAD_CHOICES_MBIT) * MBIT for _ in range(n)]
    b = bounds(size, n, SEEDER_UP_MBIT * MBIT, ups, DOWN_MBIT * MBIT)
    finished: dict[str, float] = {}
    result: dict[str, Any] = {}
    # Discovery is not needed: leechers know the seeder, and the swarm's own peer exchange
    # introduces them to each other.
    node_cfg = {"disable": ["flooding"]}
    cfg = {"cfg": {"max_connections": n + 10},
           "swarm": {"block_size": block_kib * 1024,
                     # None: the plugin's default (what a user gets), as for every other key
                     **({"max_peers": max_peers} if max_peers is not None else {}),
                     **(swarm or {})},
           **({"rudp": rudp} if rudp else {}),
           "store": {"piece_size": piece_kib * 1024}, "node": node_cfg}

    with tempfile.TemporaryDirectory(prefix="p2pkit-bench-") as tmp:
        media = make_media(Path(tmp) / "clip.wav", size, seed)

        async def scenario(sim: Simulation) -> None:
            def link(up: float) -> LinkProfile:
                return LinkProfile(up_bps=up, down_bps=DOWN_MBIT * MBIT, latency=LATENCY,
                                   queue_bytes=max(16384, int(up / 8 * QUEUE_SECONDS)),
                                   loss=LossSpec.bernoulli(loss))

            def node_cfg_for(up: float) -> dict[str, Any]:
                if upload_limit <= 0:
                    return cfg
                # the user's upload limit: a fraction of the access link's rate, in KiB/s
                return {**cfg, "cfg": {**cfg["cfg"],
                                       "upload_limit_kbps": int(upload_limit * up / 8 / 1024)}}

            seeder_sim = sim.add_node("seeder", link=link(SEEDER_UP_MBIT * MBIT),
                                      config=node_cfg_for(SEEDER_UP_MBIT * MBIT))
            seeder = await sim.start(seeder_sim)
            manifest = await seeder.share(media)
            seeder_addr = f"{seeder_sim.address[0]}:{seeder_sim.address[1]}"
            leechers = []
            for i, up in enumerate(ups):
                sim_node = sim.add_node(f"l{i}", link=link(up), config={
                    **node_cfg_for(up), "node": {**node_cfg, "bootstrap": [seeder_addr]}})
                leechers.append(await sim.start(sim_node))
            with trio.fail_after(120):
                while not all(node.peers is not None and len(node.peers) >= 1 for node in leechers):  # noqa: ASYNC110
                    await trio.sleep(0.1)
            t0 = sim.now
            tally = WireTally(full_size=int((rudp or {}).get("mtu", RudpConfig().mtu))) if wire else None
            stop_capture = sim.capture(tally) if tally is not None else None

            async def fetch(name: str, node: Any) -> None:
                await node.swarm.fetch(manifest.rid)
                finished[name] = sim.now - t0
                if verbose:
                    print(f"  {name} done at {finished[name]:.2f} s "
                          f"({len(finished)}/{n})", file=sys.stderr)

            async with trio.open_nursery() as nursery:
                for i, node in enumerate(leechers):
                    nursery.start_soon(fetch, f"l{i}", node)
                if timeline:
                    nursery.start_soon(_timeline, sim, t0, ups, leechers, manifest, finished,
                                       timeline)
                if diagnose:
                    classes = {seeder.id: "seeder", **{node.id: f"{up / MBIT:g}M"
                                                       for node, up in zip(leechers, ups)}}
                    nursery.start_soon(_diagnose, sim, t0, leechers, classes, manifest,
                                       finished, sorted(diagnose))
            if tally is not None and stop_capture is not None:
                stop_capture()
                result["wire"] = tally.report()
            result["seconds"] = max(finished.values())
            result["mean_seconds"] = sum(finished.values()) / len(finished)
            result["seeder_uploaded"] = sum(seeder.swarm.bytes_to_peers.values())
            # what the uplinks really carried (retransmissions and headers included)
            # against their capacity over the run, and what their queues dropped
            span = result["seconds"]
            uplinks = [sim.host(name).up for name in _host_names(n)]
            caps = [SEEDER_UP_MBIT * MBIT / 8, *(u / 8 for u in ups)]
            carried = sum(u.bytes_sent for u in uplinks)
            result["wire_utilisation"] = carried / (sum(caps) * span)
            result["queue_drops"] = sum(u.drops_queue for u in uplinks)
            # of what the wires carried: piece payload (duplicates included), and the
            # content each leecher needed once; ratio = 1 / (useful share x utilisation)
            nodes = (seeder, *leechers)
            payload = sum(sum(node.swarm.bytes_to_peers.values()) for node in nodes)
            result["payload_share"] = payload / carried
            result["useful_share"] = size * n / carried
            if verbose:
                totals: Counter[str] = Counter()
                for node in nodes:
                    totals.update(node.swarm.counters)
                print("  swarm counters, all nodes: " + ", ".join(
                    f"{k} {v}" for k, v in sorted(totals.items())), file=sys.stderr)
                for up in sorted(set(ups)):
                    times = [finished[f"l{i}"] for i in range(n) if ups[i] == up]
                    print(f"  leechers with {up / MBIT:g} Mbit/s up: mean {sum(times) / len(times):.2f} s, "
                          f"last {max(times):.2f} s", file=sys.stderr)
            for node in leechers:
                assert node.store.is_complete(manifest.rid)
            raise _Finished

        started = time.perf_counter()
        try:
            Simulation(seed=seed, duration=3600, resolution=0.001).run(scenario)
        except* _Finished:
            pass
        wall = time.perf_counter() - started
    if "seconds" not in result:
        raise SystemExit("the swarm did not finish within the simulated hour")
    return {
        "n": n, "size_bytes": size, "loss": loss, "seed": seed, "piece_kib": piece_kib,
        "block_kib": block_kib, "max_peers": max_peers or SwarmConfig().max_peers,
        "upload_limit": upload_limit,
        "swarm": swarm or {}, "rudp": rudp or {},
        "seconds": round(result["seconds"], 3),
        "mean_seconds": round(result["mean_seconds"], 3),
        "bound_seconds": round(b["bound_seconds"], 3),
        "client_server_seconds": round(b["client_server_seconds"], 3),
        "ratio_to_bound": round(result["seconds"] / b["bound_seconds"], 3),
        "speedup_vs_client_server": round(b["client_server_seconds"] / result["seconds"], 2),
        "seeder_upload_copies": round(result["seeder_uploaded"] / size, 2),
        "wire_utilisation": round(result["wire_utilisation"], 3),
        "queue_drops": result["queue_drops"],
        "payload_share": round(result["payload_share"], 3),
        "useful_share": round(result["useful_share"], 3),
        "wall_seconds": round(wall, 1),
        "build": build_description(),  # wall seconds depend on it, the rest does not
        **({"wire": result["wire"]} if "wire" in result else {}),
    }


class WireTally:
    """A capture tap: what the hosts sent, by kind of datagram, with the bytes of headers
    (IP/UDP, rudp's header and its frames' headers) in them."""

    def __init__(self, full_size: int) -> None:
        self.full_size = full_size  # a DATA datagram this long was filled to the MTU
        self.datagrams: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self.header_bytes: Counter[str] = Counter()

    def kind(self, data: bytes) -> tuple[str, int]:
        """(kind, payload bytes: stream data in it) of one datagram."""
        if len(data) < 3 or data[0] != MAGIC or not 1 <= data[2] <= max(PacketType):
            return "not rudp", 0
        ptype = PacketType(data[2])
        if ptype is PacketType.DATA:
            try:
                streams, _sacks = decode_frames(data)
            except MalformedPacket:
                return "not rudp", 0
            payload = sum(len(chunk) for _channel, _offset, chunk in streams)
            return ("DATA, full size" if len(data) >= self.full_size else "DATA, shorter"), payload
        if ptype in (PacketType.ACK, PacketType.PING):
            return ptype.name, 0
        return "handshake, close, reset", 0

    def __call__(self, now: float, host: Host, port: int, data: bytes, dst: tuple[str, int]) -> None:
        kind, payload = self.kind(data)
        size = len(data) + HEADER_BYTES
        self.datagrams[kind] += 1
        self.bytes[kind] += size
        self.header_bytes[kind] += size - payload

    def report(self) -> dict[str, dict[str, int]]:
        return {kind: {"datagrams": self.datagrams[kind], "bytes": self.bytes[kind],
                       "header_bytes": self.header_bytes[kind]}
                for kind in sorted(self.bytes, key=lambda k: -self.bytes[k])}


TIMELINE_STEP = 0.5  # virtual seconds between the rows of --timeline (its default)


def _host_names(n: int) -> list[str]:
    """The seeder, then the leechers, as the scenario names them."""
    return ["seeder", *(f"l{i}" for i in range(n))]


def _held(node: Any, manifest: Any) -> int:
    """Checked bytes a leecher holds: its whole pieces, and the checked leaves of the
    pieces it is still putting together (which it already serves)."""
    if manifest.rid not in node.store:
        return 0  # still waiting for the manifest
    whole = node.store.progress(manifest.rid)[0] * manifest.piece_size
    t = node.swarm.torrents.get(manifest.rid)
    partial = 0 if t is None else sum(
        min(asm.verified.bit_count() * LEAF_SIZE, len(asm.data)) for asm in t.assemblies.values())
    return int(whole + partial)


async def _timeline(sim: Simulation, t0: float, ups: list[float], leechers: list[Any],
                    manifest: Any, finished: dict[str, float], step: float) -> None:
    """Every ``step`` virtual seconds until every leecher is done: the share of its
    capacity the seeder's uplink carried, the same for each upload class of leechers, and
    the checked bytes the leechers hold (of pieces in progress too)."""
    names = _host_names(len(ups))
    rates = [SEEDER_UP_MBIT * MBIT, *ups]
    groups = [("seeder", [0])] + [(f"{c / MBIT:g}M", [i + 1 for i, u in enumerate(ups) if u == c])
                                  for c in sorted(set(ups))]
    previous = [sim.host(name).up.bytes_sent for name in names]
    print(f"  {'t':>5}  uplink busy: " + " ".join(f"{g:>6}" for g, _ in groups)
          + "    held   done", file=sys.stderr)
    total = manifest.size * len(leechers)
    while len(finished) < len(leechers):
        await trio.sleep(step)
        now = [sim.host(name).up.bytes_sent for name in names]
        busy = [sum(now[i] - previous[i] for i in members) * 8
                / (sum(rates[i] for i in members) * step) for _g, members in groups]
        previous = now
        held = sum(_held(node, manifest) for node in leechers)
        print(f"  {sim.now - t0:5.2f}  {'':13}" + " ".join(f"{b:6.0%}" for b in busy)
              + f"  {min(1.0, held / total):6.1%}  {len(finished):5d}", file=sys.stderr)


async def _diagnose(sim: Simulation, t0: float, leechers: list[Any], classes: dict[str, str],
                    manifest: Any, finished: dict[str, float], times: list[float]) -> None:
    """At each of ``times`` (virtual seconds from the start): the leechers still
    downloading, and per leecher what its missing blocks wait for (SwarmProvider.diagnose)."""
    order = ["seeder", *sorted({c for c in classes.values() if c != "seeder"},
                               key=lambda c: float(c[:-1]))]
    for when in times:
        await trio.sleep(max(0.0, t0 + when - sim.now))
        if len(finished) == len(leechers):
            return
        reports = [r for node in leechers
                   if (r := node.swarm.diagnose(manifest.rid)) is not None and r["missing_blocks"]]
        if not reports:
            continue
        k = len(reports)
        total: Counter[str] = Counter()
        asked_of: Counter[str] = Counter()
        backing_off_at: Counter[str] = Counter()  # blocks held by peers backing off, by class
        for r in reports:
            for pid, view in r["peers"].items():
                if view["state"] == "backing_off" and view["unchokes_us"]:
                    backing_off_at[classes.get(pid, "other")] += view["holds_unasked"]
            total.update({key: r[key] for key in ("missing_blocks", "requested",
                                                  "only_choking_peers", "nobody")})
            total.update(r["askable"])
            for pid, count in r["requested_from"].items():
                asked_of[classes.get(pid, "other")] += count
        askable = sum(total[key] for key in ("ready", "backing_off", "pipelines_full"))
        print(f"  diagnose at {sim.now - t0:.2f} s: {k} leechers downloading; per leecher, of "
              f"{total['missing_blocks'] / k:.1f} missing blocks:\n"
              f"    asked for {total['requested'] / k:.1f} ("
              + ", ".join(f"{c} {asked_of[c] / k:.1f}" for c in order if asked_of[c]) + ")\n"
              f"    held by peers that unchoke it, not asked for {askable / k:.1f} (pipeline "
              f"with room {total['ready'] / k:.1f}, backing off {total['backing_off'] / k:.1f}, "
              f"full {total['pipelines_full'] / k:.1f}); held by peers backing off: "
              + (", ".join(f"{c} {backing_off_at[c] / k:.1f}" for c in order if backing_off_at[c])
                 or "none") + "\n"
              f"    held only by members that choke it {total['only_choking_peers'] / k:.1f}, "
              f"by no member {total['nobody'] / k:.1f}", file=sys.stderr)


def _settings(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (TOML values) as a config section."""
    import tomllib

    return tomllib.loads("\n".join(pairs)) if pairs else {}


def _step(text: str) -> float:
    """``--timeline 0.1``: a step of virtual seconds, at least a millisecond."""
    try:
        step = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.001 <= step <= 60:
        raise argparse.ArgumentTypeError(f"a step must be 0.001 to 60 seconds: {text!r}")
    return step


def _times(text: str) -> list[float]:
    """``--diagnose 1,7.5``: virtual seconds, each at least 0."""
    try:
        times = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of seconds: {text!r}") from None
    if not times or any(not 0 <= t < 3600 for t in times):
        raise argparse.ArgumentTypeError(f"times must be seconds from 0 to 3600: {text!r}")
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=20, 4 MB")
    parser.add_argument("-n", type=int, help="leechers (default 100, quick 20)")
    parser.add_argument("--size-mb", type=float, help="file size in MB (default 8, quick 4)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--loss", type=float, default=0.0, help="packet loss on every link")
    parser.add_argument("--piece-kib", type=int, default=256, help="store piece size")
    parser.add_argument("--block-kib", type=int, default=16, help="swarm request size")
    parser.add_argument("--max-peers", type=int, default=None,
                        help="swarm members per node (default: the plugin's, 40)")
    parser.add_argument("--upload-limit", type=float, default=0.0, metavar="FRACTION",
                        help="every node sets cfg.upload_limit_kbps to this fraction of its "
                             "uplink (0 = unlimited, the default)")
    parser.add_argument("--swarm", action="append", default=[], metavar="KEY=VALUE",
                        help="a [swarm] setting for every node (TOML value), repeatable")
    parser.add_argument("--rudp", action="append", default=[], metavar="KEY=VALUE",
                        help="a [rudp] setting for every node (TOML value), repeatable")
    parser.add_argument("--timeline", type=_step, nargs="?", const=TIMELINE_STEP, default=0.0,
                        metavar="STEP", help="print uplink use and the checked content held "
                        f"every STEP virtual seconds (default {TIMELINE_STEP})")
    parser.add_argument("--diagnose", type=_times, default=[], metavar="T[,T...]",
                        help="at these virtual seconds, print what the missing blocks wait for")
    parser.add_argument("--wire", action="store_true",
                        help="split what the hosts sent by kind of datagram, with headers")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    n = args.n or (20 if args.quick else 100)
    size = int((args.size_mb or (4 if args.quick else 8)) * 1e6)
    out = run(n, size, args.seed, args.loss, args.verbose, piece_kib=args.piece_kib,
              block_kib=args.block_kib, max_peers=args.max_peers, upload_limit=args.upload_limit,
              swarm=_settings(args.swarm), rudp=_settings(args.rudp), timeline=args.timeline,
              diagnose=args.diagnose, wire=args.wire)
    print(f"N={n} leechers, F={size / 1e6:.1f} MB, seeder {SEEDER_UP_MBIT:g} Mbit/s up, "
          f"leechers {'/'.join(f'{u:g}' for u in UPLOAD_CHOICES_MBIT)} Mbit/s up, "
          f"{DOWN_MBIT:g} Mbit/s down, {LATENCY * 1000:g} ms per link, "
          f"{QUEUE_SECONDS * 1000:g} ms queues, {args.piece_kib} KiB pieces, loss {args.loss:g}")
    print(f"  swarm (measured)   {out['seconds']:9.2f} s   (mean leecher {out['mean_seconds']:.2f} s)")
    print(f"  P2P lower bound    {out['bound_seconds']:9.2f} s   ratio {out['ratio_to_bound']:.3f}")
    print(f"  client-server      {out['client_server_seconds']:9.2f} s   "
          f"swarm is {out['speedup_vs_client_server']:.1f}x faster")
    print(f"  seeder uploaded {out['seeder_upload_copies']:.2f} copies; uplinks carried "
          f"{out['wire_utilisation']:.0%} of their capacity (queues dropped "
          f"{out['queue_drops']} datagrams); wall {out['wall_seconds']} s")
    print(f"  of what they carried {out['payload_share']:.1%} was piece payload and "
          f"{out['useful_share']:.1%} content a leecher needed (the rest: duplicate blocks, "
          "headers, acks, control messages, retransmissions)")
    if "wire" in out:
        _print_wire(out["wire"])
    print(json.dumps(out))


def _print_wire(kinds: dict[str, dict[str, int]]) -> None:
    total = sum(k["bytes"] for k in kinds.values()) or 1
    print("  what the hosts sent from the start until the last leecher was done (with what "
          "their uplinks' queues dropped):")
    for kind, k in kinds.items():
        print(f"    {kind:24} {k['datagrams']:9,d} datagrams {k['bytes'] / 1e6:8.1f} MB "
              f"{k['bytes'] / total:6.1%}   of which headers {k['header_bytes'] / total:5.1%}")
    headers = sum(k["header_bytes"] for k in kinds.values())
    print(f"    headers in all            {headers / 1e6:28.1f} MB {headers / total:6.1%}")


if __name__ == "__main__":
    main()
