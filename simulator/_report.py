"""The report of a run: ``report.json`` (deterministic) and PNG plots."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._metrics import summarize

if TYPE_CHECKING:
    from ._sim import Simulation

def _clean(value: Any) -> Any:
    """JSON-safe, rounded floats so the file is stable text."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _host_entry(sim: Simulation, name: str) -> dict[str, Any]:
    host = sim.network.hosts[name]
    entry: dict[str, Any] = {
        "group": host.group,
        "ip": host.ip,
        "public_ip": host.public_ip,
        "nat": host.nat.type.value if host.nat is not None else "open",
        "datagrams_sent": host.datagrams_sent,
        "datagrams_received": host.datagrams_received,
        "bytes_sent": host.bytes_sent,
        "bytes_received": host.bytes_received,
        "drops": dict(sorted(host.drops.items())),
        "link": {"up_bps": host.link.up_bps, "down_bps": host.link.down_bps,
                 "latency_s": host.link.latency, "online": host.online},
        "uplink": {"packets": host.up.packets_sent, "bytes": host.up.bytes_sent,
                   "loss_drops": host.up.drops_loss, "queue_drops": host.up.drops_queue},
        "downlink": {"packets": host.down.packets_sent, "bytes": host.down.bytes_sent,
                     "loss_drops": host.down.drops_loss, "queue_drops": host.down.drops_queue},
    }
    sim_node = sim.nodes.get(name)
    if sim_node is not None:
        entry["node"] = {
            "starts": sim_node.starts,
            "crashes": sim_node.crashes,
            "leaves": sim_node.leaves,
            "online_s": sim_node.online_time,
            "node_id": sim_node.node_id,
            "transport": sim_node.final_transport_stats,
        }
    metrics = sim.metrics.per_node(name)
    if metrics:
        entry["metrics"] = metrics
    return entry


def build_report(sim: Simulation) -> dict[str, Any]:
    network = sim.network
    samples: dict[str, Any] = {}
    for name, values in sorted(sim.metrics.samples.items()):
        if len(values) <= sim.raw_samples_limit:
            samples[name] = [[t, v] for t, v in values]
    delivered = network.delivered_bytes_by_bin
    last_bin = int(sim.duration / network.bin_seconds)
    throughput = [
        [b * network.bin_seconds, delivered.get(b, 0) * 8 / network.bin_seconds]
        for b in range(last_bin + 1)
    ]
    nodes = sim.nodes.values()
    report = {
        "scenario": sim.name,
        "seed": sim.seed,
        "duration_s": sim.duration,
        "time_resolution_s": network.resolution,
        "network": dict(network.stats()),
        "aggregate": {
            "hosts": len(network.hosts),
            "nodes": len(sim.nodes),
            "node_starts": sum(n.starts for n in nodes),
            "node_crashes": sum(n.crashes for n in nodes),
            "node_leaves": sum(n.leaves for n in nodes),
            "node_online_s": summarize([n.online_time for n in nodes]),
            **sim.metrics.aggregate(),
        },
        "results": sim.results,
        "series": {
            "network_delivered_bps": throughput,
            # amounts recorded as bytes per bin are reported as bits per second
            **{(k.removesuffix("_bytes") + "_bps" if k.endswith("_bytes") else k):
               ([[t, v * 8] for t, v in rows] if k.endswith("_bytes") else rows)
               for k, rows in sim.metrics.series_table(sim.duration).items()},
        },
        "samples": samples,
        "notes": sim.notes,
        "nodes": {name: _host_entry(sim, name) for name in network.hosts},
    }
    cleaned: dict[str, Any] = _clean(report)
    return cleaned


def report_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=1, sort_keys=False) + "\n"


def write_report(report: Mapping[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.json"
    path.write_text(report_json(report))
    return path


def write_plots(sim: Simulation, report: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """throughput.png, completion_cdf.png, rtt_cdf.png, loss.png (those with data)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        path = out_dir / name
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, rows in report["series"].items():
        if name.endswith("_bps"):
            ax.plot([r[0] for r in rows], [r[1] / 1e6 for r in rows], label=name)
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel("Mbit/s")
    ax.set_title("Throughput over time")
    ax.legend(fontsize="small")
    save(fig, "throughput.png")

    def cdf(names: list[str], title: str, xlabel: str, filename: str, scale: float = 1.0) -> None:
        present = [n for n in names if sim.metrics.samples.get(n)]
        if not present:
            return
        fig, ax = plt.subplots(figsize=(6, 4))
        for name in present:
            values = sorted(v * scale for _t, v in sim.metrics.samples[name])
            ax.step(values, [(i + 1) / len(values) for i in range(len(values))], where="post",
                    label=name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction")
        ax.set_title(title)
        ax.legend(fontsize="small")
        save(fig, filename)

    names = sorted(sim.metrics.samples)
    cdf([n for n in names if "completion" in n], "Completion time CDF", "seconds",
        "completion_cdf.png")
    cdf([n for n in names if "rtt" in n], "RTT CDF", "milliseconds", "rtt_cdf.png", 1000.0)

    drops = report["network"]["drops"]
    if drops or report["network"]["datagrams_sent"]:
        fig, ax = plt.subplots(figsize=(6, 4))
        labels = list(drops) or ["none"]
        ax.bar(labels, [drops.get(k, 0) for k in labels])
        sent = report["network"]["datagrams_sent"] or 1
        ax.set_title(f"Dropped datagrams by reason ({sum(drops.values()) / sent:.2%} of sent)")
        ax.tick_params(axis="x", rotation=30)
        save(fig, "loss.png")
    return written
