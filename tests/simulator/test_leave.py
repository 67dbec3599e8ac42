"""How nodes stop in the simulator: a leave takes leave of its peers, a crash says nothing."""

from __future__ import annotations

from typing import Any

import pytest
from p2pkit.simulator import LinkProfile, Simulation

PLUGINS = ["p2pkit.plugins.rudp", "p2pkit.plugins.flooding"]


def _run(stop: str, *, cut_off: bool) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def scenario(sim: Simulation) -> None:
        a = sim.add_node("a", link=LinkProfile(latency=0.05),
                         config={"node": {"plugins": PLUGINS}})
        b = sim.add_node("b", link=LinkProfile(latency=0.05),
                         config={"node": {"plugins": PLUGINS, "bootstrap": [f"{a.host.ip}:7700"]}})
        await sim.start(a)
        await sim.start(b)
        await sim.sleep(2)
        assert b.node is not None and b.node.peers is not None
        seen["peers"] = len(b.node.peers)
        if cut_off:
            sim.partition(["a"], ["b"])
        began = sim.now
        await (sim.leave(b) if stop == "leave" else sim.crash(b))
        seen["took"] = sim.now - began

    Simulation(seed=1, duration=10.0, resolution=0.001).run(scenario)
    return seen


def test_a_leave_closes_its_sessions_in_about_a_round_trip() -> None:
    seen = _run("leave", cut_off=False)
    assert seen["peers"] == 1
    assert 0.09 <= seen["took"] < 0.5  # FIN and its answer over two 50 ms links


def test_a_leave_whose_peers_do_not_answer_waits_stop_grace_at_most() -> None:
    assert _run("leave", cut_off=True)["took"] == pytest.approx(0.5, abs=0.002)  # [node] stop_grace


def test_a_crash_takes_no_time() -> None:
    assert _run("crash", cut_off=False)["took"] == 0.0


@pytest.mark.parametrize("before_end", [0.0, 0.0004])
def test_a_node_that_starts_as_the_run_ends_does_not_hold_the_run(before_end: float) -> None:
    """A node still starting when the run ended was shielded already, finished starting
    and then waited for ever: the run never ended (a churn rejoin in the last step)."""

    async def scenario(sim: Simulation) -> None:
        a = sim.add_node("a", link=LinkProfile(latency=0.01), config={"node": {"plugins": PLUGINS}})
        b = sim.add_node("b", link=LinkProfile(latency=0.01), config={
            "node": {"plugins": PLUGINS, "bootstrap": [f"{a.host.ip}:7700"]}})
        await sim.start(a)

        async def late() -> None:
            await sim.sleep_until(sim.duration - before_end)
            await sim.start(b)

        sim.spawn(late)

    report = Simulation(seed=1, duration=5.0, resolution=0.001).run(scenario)
    assert report["aggregate"]["nodes"] == 2
