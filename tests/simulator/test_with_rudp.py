"""Real nodes with the rudp transport over the virtual network (skipped without rudp)."""

from __future__ import annotations

from p2pkit.simulator import LinkProfile, LossSpec, NatType, Simulation
from p2pkit.simulator._workloads import WORKLOADS

RUDP = {"node": {"plugins": ["p2pkit.plugins.rudp"], "disable": ["store", "swarm"]}}


def test_bulk_transfer_completes_exactly_over_a_lossy_link() -> None:
    link = LinkProfile(up_bps=5e6, latency=0.01, queue_bytes=25_000,
                       up_loss=LossSpec.bernoulli(0.05))

    async def scenario(sim: Simulation) -> None:
        sim.add_node("src", link=link, config=RUDP, group="src")
        sim.add_node("dst", link=LinkProfile(latency=0.01), config=RUDP, group="dst")
        WORKLOADS["bulk"].install(sim, {"from": "src", "to": "dst", "bytes": 300_000,
                                        "message_bytes": 16384, "start": 0.5})
        await sim.start("src")
        await sim.start("dst")

    sim = Simulation(seed=3, duration=30.0)
    report = sim.run(scenario)
    (flow,) = report["results"]["bulk"]
    assert flow["received"] == 300_000 and flow["completed_s"] is not None, flow
    assert report["nodes"]["src"]["uplink"]["loss_drops"] > 0  # the loss really happened
    assert report["aggregate"]["samples"]["bulk_completion_s"]["count"] == 1
    # the goodput time series (bits per second per 1 s bin) adds up to the bytes received
    assert sum(v for _t, v in report["series"]["goodput.src_bps"]) / 8 == 300_000


def test_sessions_through_nats_towards_a_public_node() -> None:
    async def scenario(sim: Simulation) -> None:
        sim.add_node("server", config=RUDP)
        for nat in (NatType.FULL_CONE, NatType.PORT_RESTRICTED_CONE, NatType.SYMMETRIC):
            sim.add_node(nat.value, nat=nat, config=RUDP, link=LinkProfile(latency=0.02))
        for name in list(sim.nodes):
            await sim.start(name)
        server = sim.nodes["server"]
        for name in ("full-cone", "port-restricted-cone", "symmetric"):
            node = sim.nodes[name].node
            assert node is not None and node.peers is not None
            peer = await node.peers.connect(server.address)
            sim.results.setdefault("connected", []).append([name, peer.address[0]])
        await sim.sleep(1)
        server_node = server.node
        assert server_node is not None and server_node.peers is not None
        sim.results["server_sees"] = sorted(p.address[0] for p in server_node.peers.all())

    sim = Simulation(seed=1, duration=5.0)
    report = sim.run(scenario)
    assert len(report["results"]["connected"]) == 3
    # the server sees the NATs' public addresses, never the private 10.x ones
    assert report["results"]["server_sees"] == sorted(
        report["nodes"][n]["public_ip"] for n in ("full-cone", "port-restricted-cone", "symmetric"))
