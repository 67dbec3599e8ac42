"""Metrics a simulation collects: counters, samples (for CDFs) and binned time series."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping


def summarize(values: list[float]) -> dict[str, float]:
    """count, mean, min, p50, p90, p99, max of a list of samples (empty -> count 0)."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    n = len(ordered)

    def pct(q: float) -> float:
        return ordered[min(n - 1, max(0, math.ceil(q * n) - 1))]

    return {
        "count": n,
        "mean": _r(sum(ordered) / n),
        "min": _r(ordered[0]),
        "p50": _r(pct(0.50)),
        "p90": _r(pct(0.90)),
        "p99": _r(pct(0.99)),
        "max": _r(ordered[-1]),
    }


def _r(value: float) -> float:
    # Rounded so the report is stable text and easy to read.
    return round(value, 9)


class Metrics:
    """Everything workloads and scenario code record.

    * ``count(name, n, node=)`` — a counter (per node and total).
    * ``observe(name, value, node=)`` — a sample at the current virtual time (RTTs,
      completion times); the report gives percentiles, the plots a CDF.
    * ``add_series(name, amount)`` — an amount added to the current time bin (bytes
      received -> throughput over time).
    """

    def __init__(self, clock: Callable[[], float], bin_seconds: float = 1.0) -> None:
        self._clock = clock
        self.bin_seconds = bin_seconds
        self.counters: dict[str, float] = {}
        self.node_counters: dict[str, dict[str, float]] = {}
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self.node_samples: dict[str, dict[str, list[float]]] = {}
        self.series: dict[str, dict[int, float]] = {}

    def count(self, name: str, amount: float = 1, *, node: str | None = None) -> None:
        self.counters[name] = self.counters.get(name, 0) + amount
        if node is not None:
            per = self.node_counters.setdefault(node, {})
            per[name] = per.get(name, 0) + amount

    def observe(self, name: str, value: float, *, node: str | None = None) -> None:
        self.samples.setdefault(name, []).append((self._clock(), value))
        if node is not None:
            self.node_samples.setdefault(node, {}).setdefault(name, []).append(value)

    def add_series(self, name: str, amount: float) -> None:
        bins = self.series.setdefault(name, {})
        b = int(self._clock() / self.bin_seconds)
        bins[b] = bins.get(b, 0) + amount

    # ------------------------------------------------------------------ report

    def aggregate(self) -> dict[str, object]:
        return {
            "counters": {k: _r(v) for k, v in sorted(self.counters.items())},
            "samples": {
                k: summarize([v for _t, v in values]) for k, values in sorted(self.samples.items())
            },
        }

    def per_node(self, node: str) -> dict[str, object]:
        out: dict[str, object] = {}
        counters = self.node_counters.get(node)
        if counters:
            out["counters"] = {k: _r(v) for k, v in sorted(counters.items())}
        samples = self.node_samples.get(node)
        if samples:
            out["samples"] = {k: summarize(v) for k, v in sorted(samples.items())}
        return out

    def series_table(self, until: float) -> Mapping[str, list[list[float]]]:
        """Each series as [[bin start time, amount per second], ...] with empty bins as 0."""
        last = int(until / self.bin_seconds)
        return {
            name: [
                [_r(b * self.bin_seconds), _r(bins.get(b, 0) / self.bin_seconds)]
                for b in range(last + 1)
            ]
            for name, bins in sorted(self.series.items())
        }

    def raw_samples(self) -> Mapping[str, list[list[float]]]:
        return {k: [[_r(t), _r(v)] for t, v in vals] for k, vals in sorted(self.samples.items())}
