"""Checking numbers handed to the Python API, at construction.

nan passes every ``value < 0`` check and inf every ``value > 0`` one: a link with a nan
latency lost every packet without a word, and a simulation of ``duration=inf`` never
ended. Every time, rate and size the simulator takes goes through :func:`finite`.
"""

from __future__ import annotations

import math
import numbers


def finite(name: str, value: float, *, minimum: float = 0.0, strict: bool = False) -> float:
    """``value`` if it is a finite number >= ``minimum`` (> with ``strict``); else a
    ValueError naming it."""
    relation = ">" if strict else ">="
    # numbers.Real, not only int and float: numpy's (rng.choice, arange) were refused
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or value < minimum or (strict and value == minimum)):
        raise ValueError(f"{name} must be a finite number {relation} {minimum:g}, got {value!r}")
    return value if isinstance(value, int | float) else float(value)
