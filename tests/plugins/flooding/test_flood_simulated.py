"""Flooding in the simulator: real, unmodified nodes over lossy virtual links, virtual time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from p2pkit.simulator import LinkProfile, SimNode, Simulation

from benchmarks.flooding import lossy_chain, tone
from p2pkit import Node

PLUGINS = ["p2pkit.plugins.rudp", "p2pkit.plugins.flooding"]
FLOODING = {"announce_interval": 5.0, "entry_expiry": 16.0, "peer_down_grace": 3.0,
            "pex_interval": 2.0, "ttl": 4}
N = 12


def _peers(sim_node: SimNode) -> Any:
    """The running node's peer manager."""
    return _kernel(sim_node).peers


def _kernel(sim_node: SimNode) -> Node:
    """The running kernel node of ``sim_node`` (None only while it is down)."""
    assert sim_node.node is not None
    return sim_node.node


async def _lossy_chain(sim: Simulation) -> list[SimNode]:
    return await lossy_chain(sim, N, FLOODING)


def test_a_share_reaches_every_node_over_lossy_links_and_expires_after_a_crash(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def scenario(sim: Simulation) -> None:
        nodes = await _lossy_chain(sim)
        first = _kernel(nodes[0])
        manifest = await first.share(tone(tmp_path / "lossy.wav"), title="Lossy Tone")
        await sim.sleep(10)
        seen["rid"] = manifest.rid
        seen["origin"] = first.id
        seen["listed"] = {n.name: [f["rid"] for f in _kernel(n).network_files()] for n in nodes}
        seen["search"] = await _kernel(nodes[-1]).search("LOSSY")
        # nobody has it: the flood's Done messages end the search, not search_timeout
        started = sim.now
        seen["nothing"] = await _kernel(nodes[-1]).search("no such thing")
        seen["nothing_took"] = sim.now - started
        await sim.crash(nodes[0])
        await sim.sleep(FLOODING["entry_expiry"] + 6)
        seen["after"] = {n.name: [f["rid"] for f in _kernel(n).network_files()] for n in nodes[1:]}

    Simulation(seed=3, duration=50.0, resolution=0.001).run(scenario)
    assert all(rids == [seen["rid"]] for rids in seen["listed"].values()), seen["listed"]
    (hit,) = seen["search"]
    assert hit["rid"] == seen["rid"] and hit["providers"] == [seen["origin"]]
    # virtual seconds: round trips of ~40 ms over lossy links (0.5-0.9 s measured), where
    # it took search_timeout (3 s)
    assert seen["nothing"] == [] and seen["nothing_took"] < 2.0, seen["nothing_took"]
    assert all(rids == [] for rids in seen["after"].values()), seen["after"]


def test_a_node_that_leaves_in_an_orderly_way_vanishes_from_every_list_at_once(tmp_path: Path) -> None:
    """A node that stops says so: its files leave every node's list within a second,
    not an ``entry_expiry`` later (a crashed node's files wait for that, as above)."""
    seen: dict[str, Any] = {}

    async def scenario(sim: Simulation) -> None:
        nodes = await _lossy_chain(sim)
        leaving, crashing = _kernel(nodes[0]), _kernel(nodes[1])
        left = await leaving.share(tone(tmp_path / "left.wav"), title="Left")
        crashed = await crashing.share(tone(tmp_path / "crashed.wav"), title="Crashed")
        await sim.sleep(10)
        seen["before"] = {n.name: sorted(f["rid"] for f in _kernel(n).network_files())
                          for n in nodes[2:]}
        await sim.leave(nodes[0])
        await sim.crash(nodes[1])
        await sim.sleep(1.0)
        seen["after"] = {n.name: sorted(f["rid"] for f in _kernel(n).network_files())
                         for n in nodes[2:]}
        seen["left"], seen["crashed"] = left.rid, crashed.rid

    Simulation(seed=5, duration=40.0, resolution=0.001).run(scenario)
    both = sorted([seen["left"], seen["crashed"]])
    assert all(rids == both for rids in seen["before"].values()), seen["before"]
    # the crashed node's file is still listed (it expires later); the one that left is gone
    assert all(rids == [seen["crashed"]] for rids in seen["after"].values()), seen["after"]


def test_a_node_whose_clock_is_an_hour_fast_is_told_so_and_still_sees_every_file(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def scenario(sim: Simulation) -> None:
        nodes = []
        for i in range(6):
            boot = [f"{sim.host('n0').ip}:7700"] if i else []
            config = {"node": {"plugins": PLUGINS, "bootstrap": boot}, "flooding": FLOODING}
            nodes.append(sim.add_node(f"n{i}", link=LinkProfile(latency=0.02), config=config))
        for node in nodes:
            await sim.start(node)
        fast = _kernel(nodes[5])
        fast.discovery.core.epoch += 3600.0  # its clock jumps an hour ahead
        await sim.sleep(12)
        files = []
        for i, node in enumerate(nodes[:5]):
            files.append((await _kernel(node).share(tone(tmp_path / f"f{i}.wav"), title=f"F{i}")).rid)
        await sim.sleep(12)
        seen["files"] = sorted(files)
        seen["fast_sees"] = sorted(f["rid"] for f in fast.network_files())
        seen["offsets"] = [_kernel(n).fields.get("flood.clock_offset_s") for n in nodes]
        seen["warned"] = [_kernel(n).discovery._clock_warned for n in nodes]

    Simulation(seed=7, duration=40.0, resolution=0.001).run(scenario)
    assert seen["fast_sees"] == seen["files"]
    assert seen["offsets"][5] == pytest.approx(3600.0, abs=1.0)
    assert all(abs(offset) < 1.0 for offset in seen["offsets"][:5]), seen["offsets"]
    assert seen["warned"] == [False] * 5 + [True]


def test_a_node_back_after_40_s_is_found_by_neighbours_that_have_each_other(tmp_path: Path) -> None:
    """The reviewer's case in virtual time with the default intervals: Y and Z bootstrap
    from X and meet by peer exchange; X stops, comes back 40 s later without bootstrap
    addresses. 90 s on, Y listed none of X's files and had only Z (peers=2 counting
    itself): the bootstrap address was redialled only by a node alone, and peer exchange
    forgot X at its first failed dial. (Simulated nodes keep nothing on disk: here the
    neighbours find X, X does not remember them.)"""
    seen: dict[str, Any] = {}

    async def scenario(sim: Simulation) -> None:
        nodes = []
        for i in range(3):
            boot = [f"{sim.host('x').ip}:7700"] if i else []
            config = {"node": {"plugins": PLUGINS, "bootstrap": boot}}
            nodes.append(sim.add_node("xyz"[i], link=LinkProfile(latency=0.02), config=config))
        for node in nodes:
            await sim.start(node)
        x, y, z = nodes
        await sim.sleep(20)  # a round of peer exchange: Y and Z meet
        seen["met"] = _peers(y).get(_kernel(z).id) is not None
        await sim.leave(x)
        await sim.sleep(40)
        manifest = await (await sim.start(x)).share(tone(tmp_path / "back.wav"), title="Back")
        await sim.sleep(90)
        seen["listed"] = [manifest.rid in {f["rid"] for f in _kernel(n).network_files()}
                          for n in (y, z)]
        seen["peers"] = [len(_peers(n)) for n in nodes]
        seen["redials"] = [_kernel(n).fields.get("flood.counters")["redials"] for n in (y, z)]

    Simulation(seed=11, duration=200.0, resolution=0.001).run(scenario)
    assert seen["met"]
    assert seen["listed"] == [True, True]
    assert seen["peers"] == [2, 2, 2]
    assert all(count <= 3 for count in seen["redials"]), seen["redials"]


def test_nodes_that_left_for_good_are_redialled_a_few_times_then_forgotten() -> None:
    """Bounded effort: a lost neighbour costs a handful of dials over ``redial_for``."""
    seen: dict[str, Any] = {}

    async def scenario(sim: Simulation) -> None:
        nodes = await _lossy_chain(sim)
        lost = {n.name: set(_kernel(n).discovery._queues) for n in nodes[4:]}
        gone = {_kernel(n).id for n in nodes[:4]}
        for node in nodes[:4]:  # the first is everyone's first bootstrap address
            await sim.crash(node)
        await sim.sleep(330.0)  # the idle timeout (10 s) that notices a crash, redial_for, a round
        seen["lost"] = {name: len(ids & gone) for name, ids in lost.items()}
        seen["redials"] = {n.name: _kernel(n).fields.get("flood.counters")["redials"] for n in nodes[4:]}
        seen["still"] = [_kernel(n).discovery._redial.lost_peers() for n in nodes[4:]]
        seen["peers"] = [len(_peers(n)) for n in nodes[4:]]

    Simulation(seed=13, duration=450.0, resolution=0.001).run(scenario)
    assert seen["still"] == [{}] * (N - 4)
    assert all(count >= 1 for count in seen["peers"]), seen["peers"]
    for name, count in seen["redials"].items():
        # each lost neighbour: waits doubling from pex_interval over 300 s (8 dials at
        # most); the one bootstrap address that died (n4's): every 8 pex_intervals
        bootstrap = 300.0 / (8 * FLOODING["pex_interval"]) + 4 if name == "n4" else 0
        assert count <= 8 * seen["lost"][name] + bootstrap, (name, count, seen["lost"][name])
