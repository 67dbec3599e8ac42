"""Bad numbers given to the Python API are refused when they are given, by name — not
deep inside a run (or never: a nan latency lost every packet without a word)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from p2pkit.simulator import CoreLatency, LinkProfile, LossSpec, Simulation
from p2pkit.simulator._dist import Distribution

NUMBERS = st.one_of(st.floats(), st.integers(-(10**20), 10**20))
LINK_NUMBERS = ("up_bps", "down_bps", "latency", "jitter", "queue_bytes", "up_queue_bytes",
                "down_queue_bytes", "duplicate", "reorder", "mtu")


@pytest.mark.parametrize("field", ["latency", "up_bps", "jitter", "queue_bytes", "up_queue_bytes",
                                   "mtu"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_link_refuses_what_is_not_a_finite_number(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        LinkProfile(**{field: value})


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"duration": math.inf}, "duration"), ({"duration": math.nan}, "duration"),
    ({"resolution": math.nan}, "resolution"), ({"bin_seconds": 0}, "bin_seconds"),
    ({"bin_seconds": -1.0}, "bin_seconds"),
])
def test_a_simulation_refuses_bad_times_when_made(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Simulation(1, **kwargs)


def test_core_latency_refuses_nan() -> None:
    with pytest.raises(ValueError, match="core mean"):
        CoreLatency(mean=math.nan)
    with pytest.raises(ValueError, match="eu:us"):
        CoreLatency(matrix={("eu", "us"): math.inf})


@given(field=st.sampled_from(LINK_NUMBERS), value=NUMBERS)
def test_a_link_holds_finite_values_or_says_which_is_wrong(field: str, value: float) -> None:
    try:
        link = LinkProfile(**{field: value})
    except ValueError as exc:
        assert field in str(exc)
    else:
        held = getattr(link, field)
        assert math.isfinite(held) and held >= 0


@given(duration=NUMBERS, resolution=NUMBERS, bin_seconds=NUMBERS)
def test_a_simulation_holds_finite_times_or_refuses(duration: float, resolution: float,
                                                    bin_seconds: float) -> None:
    try:
        Simulation(1, duration=duration, resolution=resolution, bin_seconds=bin_seconds)
    except ValueError as exc:
        assert any(name in str(exc) for name in ("duration", "resolution", "bin_seconds"))
    else:
        assert 0 < duration < math.inf and 0 <= resolution < math.inf
        assert 0 < bin_seconds < math.inf


@given(kind=st.sampled_from(["constant", "exponential", "uniform", "pareto", "lognormal"]),
       field=st.sampled_from(["value", "mean", "low", "high", "shape", "scale", "median",
                              "sigma"]),
       value=NUMBERS)
def test_a_distribution_holds_finite_values_or_refuses(kind: str, field: str,
                                                       value: float) -> None:
    kwargs: dict[str, Any] = {"kind": kind, field: value}
    if kind == "exponential" and field != "mean":
        kwargs["mean"] = 1.0
    try:
        Distribution(**kwargs)
    except ValueError:
        pass
    else:
        assert math.isfinite(value)


def test_a_number_is_bernoulli_loss() -> None:
    """`LinkProfile(loss=0.02)` (TOML takes `loss = 0.02`) failed in add_host with
    AttributeError: 'float' object has no attribute 'build'."""
    link = LinkProfile(loss=0.5, down_loss=0.0)
    assert link.loss == LossSpec.bernoulli(0.5) and link.down_loss == LossSpec()
    with pytest.raises(ValueError, match="loss"):
        LinkProfile(up_loss=math.nan)

    async def scenario(sim: Simulation) -> None:
        a, b = sim.add_host("a", link), sim.add_host("b")
        receiver, sender = b.bind(5000), a.bind(4000)
        for _ in range(200):
            sender.send(b"x", receiver.local_address)
        await sim.sleep(1)

    report = Simulation(1, duration=2).run(scenario)
    assert 50 < report["network"]["drops"]["loss"] < 150


def test_numpy_numbers_are_taken() -> None:
    """numpy's numbers (rng.choice, arange) were refused once every number was checked:
    `LinkProfile(queue_bytes=np.int64(65536))` had worked."""
    import numpy as np

    link = LinkProfile(queue_bytes=np.int64(65536), mtu=np.int64(1500), latency=np.float64(0.01))
    assert (link.queue_bytes, link.mtu) == (65536, 1500) and type(link.queue_bytes) is int
    assert Simulation(1, duration=np.int64(60)).duration == 60  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latency"):
        LinkProfile(latency=np.float64("nan"))
