"""Timeline events from a TOML scenario: link change, crash/rejoin, leave, arrivals."""

from __future__ import annotations

from p2pkit.simulator import parse_scenario
from p2pkit.simulator._runner import scenario_function, simulation_for

SCENARIO = """
[scenario]
duration = 20.0
resolution_ms = 1.0

[config]
node = { disable = ["store", "swarm"] }

[[groups]]
name = "a"
count = 3

[[groups]]
name = "late"
count = 4
arrivals = 0.5
start = 2.0

[[groups]]
name = "bare"
count = 1
node = false

[[timeline]]
at = 3.0
action = "link"
target = "a-0"
link = { rate_mbps = 2.0, latency_ms = 30.0 }

[[timeline]]
at = 4.0
action = "crash"
target = ["a-1", "bare"]

[[timeline]]
at = 9.0
action = "rejoin"
target = ["a-1", "bare"]

[[timeline]]
at = 5.0
action = "leave"
target = "a-2"

[[timeline]]
at = 6.0
action = "crash"
target = "a-0"
"""


def _run(text: str, seed: int = 1) -> dict:  # type: ignore[type-arg]
    spec = parse_scenario(text, "timeline.toml")
    sim = simulation_for(spec, seed)
    return sim.run(scenario_function(spec))


def test_timeline_events_happen() -> None:
    report = _run(SCENARIO)
    nodes = report["nodes"]
    assert nodes["a-0"]["link"] == {"up_bps": 2e6, "down_bps": 2e6, "latency_s": 0.03,
                                    "online": False}
    assert nodes["a-0"]["node"]["crashes"] == 1 and nodes["a-0"]["node"]["online_s"] == 6.0
    a1 = nodes["a-1"]["node"]
    assert (a1["starts"], a1["crashes"], a1["online_s"]) == (2, 1, 4.0 + 11.0)
    a2 = nodes["a-2"]["node"]
    assert (a2["leaves"], a2["online_s"]) == (1, 5.0)
    assert nodes["bare-0"]["link"]["online"] is True
    counters = report["aggregate"]["counters"]
    assert counters["timeline_crash"] == 2 and counters["timeline_rejoin"] == 1


def test_poisson_arrivals_start_late_nodes_in_order() -> None:
    report = _run(SCENARIO, seed=5)
    online = [report["nodes"][f"late-{i}"]["node"]["online_s"] for i in range(4)]
    starts = [20.0 - s for s in online]
    assert all(s > 2.0 for s in starts if s < 20.0)
    assert starts == sorted(starts)  # cumulative exponential gaps
    assert len(set(online)) == len(online)
    other = _run(SCENARIO, seed=6)
    assert [other["nodes"][f"late-{i}"]["node"]["online_s"] for i in range(4)] != online
