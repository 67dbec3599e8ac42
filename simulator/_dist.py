"""Random distributions for scenario parameters (session lengths, downtimes, start times)."""

from __future__ import annotations

import math
import random

import attrs

from ._validate import finite

KINDS = ("constant", "exponential", "uniform", "pareto", "lognormal")


@attrs.frozen
class Distribution:
    """``constant`` (value), ``exponential`` (mean), ``uniform`` (low, high),
    ``pareto`` (shape, scale = minimum), ``lognormal`` (median, sigma)."""

    kind: str = "constant"
    value: float = 0.0
    mean: float = 0.0
    low: float = 0.0
    high: float = 0.0
    shape: float = 1.5
    scale: float = 1.0
    median: float = 1.0
    sigma: float = 1.0

    def __attrs_post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"distribution must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for field in attrs.fields(Distribution)[1:]:
            finite(field.name, getattr(self, field.name), minimum=-math.inf)
        if self.kind == "exponential" and self.mean <= 0:
            raise ValueError("exponential distribution needs mean > 0")
        if self.kind == "uniform" and self.high < self.low:
            raise ValueError("uniform distribution needs low <= high")
        if self.kind == "pareto" and (self.shape <= 0 or self.scale <= 0):
            raise ValueError("pareto distribution needs shape > 0 and scale > 0")

    def sample(self, rng: random.Random) -> float:
        kind = self.kind
        if kind == "constant":
            return self.value
        if kind == "exponential":
            return rng.expovariate(1.0 / self.mean)
        if kind == "uniform":
            return rng.uniform(self.low, self.high)
        if kind == "pareto":
            return self.scale * rng.paretovariate(self.shape)
        return rng.lognormvariate(math.log(self.median), self.sigma)
