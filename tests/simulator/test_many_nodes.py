"""A many-node smoke run: real kernel nodes start, crash, rejoin; the report adds up."""

from __future__ import annotations

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
