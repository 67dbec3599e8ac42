"""The built-in kernel-node workloads as a researcher reads their results: connects that
fail only for real reasons, flows that end either complete or with an error."""

from __future__ import annotations

from typing import Any

from p2pkit.simulator import parse_scenario
from p2pkit.simulator._runner import scenario_function, simulation_for
from p2pkit.simulator._summary import summary_tables

RUDP_NODES = """
[scenario]
duration = 30.0
resolution_ms = 1.0
[config]
node = { plugins = ["p2pkit.plugins.rudp"], disable = ["store", "swarm"] }
"""

MESH_THROUGH_NATS = RUDP_NODES + """
[[groups]]
name = "pub"
count = 3
[[groups]]
name = "natted"
count = 3
nat = "full-cone"
[[workload]]
kind = "mesh"
groups = ["pub", "natted"]
degree = 3
"""


def _run_toml(text: str) -> dict[str, Any]:
    spec = parse_scenario(text, "test.toml")
    return simulation_for(spec).run(scenario_function(spec))


def test_mesh_dials_no_node_behind_a_nat() -> None:
    """Every per-host NAT hands out 10.0.0.2: a NAT'd node dialling another's private
    address reached itself, and a third of the connects 'failed'."""
    report = _run_toml(MESH_THROUGH_NATS)
    counters = report["aggregate"]["counters"]
    assert counters.get("mesh_connect_failed", 0) == 0, counters
    assert counters["mesh_connect_ok"] >= 6  # every node reached the public ones
    assert any("3 of 6" in note and "behind a NAT" in note for note in report["notes"])


def test_bulk_to_a_receiver_behind_a_nat_is_an_error_not_a_connect_to_nowhere() -> None:
    report = _run_toml(MESH_THROUGH_NATS.replace('kind = "mesh"', 'kind = "bulk"').replace(
        'groups = ["pub", "natted"]\ndegree = 3', 'from = "pub"\nto = "natted"\nbytes = 10000'))
    flows = report["results"]["bulk"]
    assert len(flows) == 3
    assert all("behind a NAT" in flow["error"] and flow["received"] == 0 for flow in flows)


CRASHING_SENDER = RUDP_NODES.replace("30.0", "20.0") + """
[[groups]]
name = "src"
link = { up_mbps = 10.0, latency_ms = 5.0 }
[[groups]]
name = "dst"
link = { latency_ms = 5.0 }
[[timeline]]
at = 3.0
action = "crash"
target = "src-0"
[[workload]]
kind = "bulk"
from = "src"
to = "dst"
bytes = 4_000_000
start = 1.0
"""


def test_a_flow_whose_sender_crashed_after_queueing_everything_is_an_error() -> None:
    """The sender's loop ended with its last message queued, so the flow was reported
    unfinished, without an error, its goodput averaged over the rest of the run."""
    report = _run_toml(CRASHING_SENDER)
    (flow,) = report["results"]["bulk"]
    assert flow["completed_s"] is None and flow["received"] < flow["bytes"]
    assert flow["error"] == "the sender src-0 stopped before dst-0 had every byte"
    assert flow["failed_s"] == 3.0
    assert flow["goodput_bps"] == flow["received"] * 8 / (3.0 - flow["started_s"])
    table = summary_tables(report, 1.0)[1]
    assert table.columns[-1].header == "error"
    (cell,) = table.columns[-1].cells
    assert cell == "at 3 s: the sender src-0 stopped before dst-0 had every byte"
