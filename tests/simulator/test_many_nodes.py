"""A many-node smoke run: real kernel nodes start, crash, rejoin; the report adds up."""

from __future__ import annotations

import gc

from p2pkit.simulator import LinkProfile, Simulation


async def _scenario(sim: Simulation) -> None:
    nodes = [sim.add_node(f"n{i}", link=LinkProfile(latency=0.01),
                          nat="port-restricted-cone" if i % 3 == 0 else None)
             for i in range(60)]
    for node in nodes:
        await sim.start(node)
    await sim.sleep(2)
    for node in nodes[:10]:
        await sim.crash(node)
    await sim.sleep(2)
    for node in nodes[:5]:
        await sim.start(node)
    for node in nodes[10:15]:
        await sim.leave(node)


def test_sixty_nodes() -> None:
    sim = Simulation(seed=2, duration=10.0, resolution=0.001)
    report = sim.run(_scenario)
    agg = report["aggregate"]
    assert (agg["nodes"], agg["node_starts"], agg["node_crashes"], agg["node_leaves"]) == (
        60, 65, 10, 5)
    assert len({entry["node"]["node_id"] for entry in report["nodes"].values()}) == 60
    online = {name: entry["node"]["online_s"] for name, entry in report["nodes"].items()}
    assert online["n0"] == 2.0 + 6.0 and online["n7"] == 2.0 and online["n12"] == 4.0
    assert online["n59"] == 10.0
    assert all(not n.running for n in sim.nodes.values())  # everything stopped at the end


async def _two_nodes(sim: Simulation) -> None:
    for name in ("a", "b"):
        await sim.start(sim.add_node(name))
    await sim.sleep(1)


def test_a_run_restores_the_collector_and_leaves_frozen_objects_frozen() -> None:
    thresholds = gc.get_threshold()
    gc.collect()
    sim = Simulation(seed=1, duration=2.0)  # young: too short a run for a collection
    sim.run(_two_nodes)
    # the run's survivors were moved to the oldest generation, not left frozen
    assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0
    assert any(obj is sim.nodes for obj in gc.get_objects(generation=2))
    gc.freeze()  # an application that froze its start-up heap (a pre-forking server)
    try:
        frozen = gc.get_freeze_count()
        Simulation(seed=1, duration=2.0).run(_two_nodes)
        assert gc.get_freeze_count() == frozen  # not thawed by the run
    finally:
        gc.unfreeze()
