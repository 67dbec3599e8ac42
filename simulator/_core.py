"""Latency of the core network between two sites (a public host or a NAT box)."""

from __future__ import annotations

import attrs

from ._rng import derive_rng
from ._validate import finite


@attrs.frozen
class CoreLatency:
    """One-way core latency between sites, in seconds.

    ``matrix`` maps ``(group_a, group_b)`` to a fixed latency (symmetric; looked up both ways).
    Other pairs draw once from the distribution: ``"constant"`` (``mean``), ``"uniform"``
    (``low`` .. ``high``) or ``"normal"`` (``mean``, ``sd``, clamped at 0). The draw for a pair
    depends only on the seed and the two sites' names (``"host:<name>"`` for a public host,
    ``"nat:<name>"`` for a NAT box), not on the order sites were added or pairs first used.
    """

    distribution: str = "constant"
    mean: float = 0.0
    sd: float = 0.0
    low: float = 0.0
    high: float = 0.0
    matrix: dict[tuple[str, str], float] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.distribution not in ("constant", "uniform", "normal"):
            raise ValueError(
                f"core distribution must be constant, uniform or normal, got {self.distribution!r}"
            )
        for name in ("mean", "sd", "low", "high"):
            finite(f"core {name}", getattr(self, name))
        for (group_a, group_b), latency in self.matrix.items():
            finite(f"core latency {group_a}:{group_b}", latency)
        if self.distribution == "uniform" and self.high < self.low:
            raise ValueError("core uniform latency needs low <= high")

    def sample(self, seed: int, site_a: str, group_a: str, site_b: str, group_b: str) -> float:
        fixed = self.matrix.get((group_a, group_b))
        if fixed is None:
            fixed = self.matrix.get((group_b, group_a))
        if fixed is not None:
            return fixed
        if self.distribution == "constant":
            return self.mean
        low, high = sorted((site_a, site_b))
        rng = derive_rng(seed, "core", low, high)
        if self.distribution == "uniform":
            return rng.uniform(self.low, self.high)
        return max(0.0, rng.gauss(self.mean, self.sd))
