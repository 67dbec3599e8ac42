"""The summary tables ``p2pkit sim run`` prints at the end."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def summary_tables(report: Mapping[str, Any], wall_seconds: float) -> list[Table]:
    net = report["network"]
    agg = report["aggregate"]
    overview = Table(title=f"{report['scenario']} (seed {report['seed']})", show_header=False)
    overview.add_column("what")
    overview.add_column("value", justify="right")
    rows = [
        ("virtual time", f"{report['duration_s']:g} s"),
        ("wall time", f"{wall_seconds:.2f} s"),
        ("speed-up", f"{report['duration_s'] / max(wall_seconds, 1e-9):.1f}x"),
        ("time resolution", f"{report['time_resolution_s'] * 1000:g} ms"
         if report["time_resolution_s"] else "exact"),
        ("hosts / nodes", f"{agg['hosts']} / {agg['nodes']}"),
        ("node starts / crashes / leaves",
         f"{agg['node_starts']} / {agg['node_crashes']} / {agg['node_leaves']}"),
        ("datagrams sent / delivered", f"{net['datagrams_sent']} / {net['datagrams_delivered']}"),
    ]
    for reason, count in net["drops"].items():
        rows.append((f"dropped: {reason}", str(count)))
    for name, value in agg["counters"].items():
        rows.append((name, _fmt(value)))
    for name, summary in agg["samples"].items():
        if summary.get("count"):
            rows.append((f"{name} p50 / p90 / max",
                         f"{_fmt(summary['p50'])} / {_fmt(summary['p90'])} / {_fmt(summary['max'])}"))
    for what, value in rows:
        overview.add_row(what, value)
    tables = [overview]

    flows = report["results"].get("bulk")
    if flows:
        table = Table(title="bulk transfers")
        for column in ("flow", "bytes", "received", "duration s", "goodput Mbit/s", "of link"):
            table.add_column(column, justify="right")
        errors = any("error" in flow for flow in flows)
        if errors:
            table.add_column("error")
        for flow in flows:
            row = [
                f"{flow['from']} -> {flow['to']}", str(flow["bytes"]), str(flow["received"]),
                _fmt(flow["duration_s"]) if flow["duration_s"] is not None else "-",
                f"{flow['goodput_bps'] / 1e6:.2f}",
                f"{flow['fraction_of_link']:.1%}" if "fraction_of_link" in flow else "-",
            ]
            if errors:
                failed = flow.get("failed_s")
                row.append("" if "error" not in flow else flow["error"] if failed is None
                           else f"at {failed:g} s: {flow['error']}")
            table.add_row(*row)
        tables.append(table)
    punch = report["results"].get("punch")
    if punch:
        table = Table(title="hole punching by NAT pair")
        table.add_column("NAT pair")
        table.add_column("connected", justify="right")
        for pair, cell in punch["by_nat_pair"].items():
            table.add_row(pair, f"{cell['ok']}/{cell['tried']}")
        tables.append(table)
    return tables
