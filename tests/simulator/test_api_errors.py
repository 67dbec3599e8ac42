"""Mistakes in a Python scenario or a TOML file get an error that says what is wrong, and a
run cut short by its duration says so in the report."""

from __future__ import annotations

import pytest
import trio
from p2pkit.simulator import ScenarioError, Simulation, parse_scenario


def test_an_unknown_group_in_the_core_matrix_is_named() -> None:
    text = '[core.matrix]\n"eu:usa" = 40.0\n[[groups]]\nname = "eu"\n[[groups]]\nname = "us"\n'
    with pytest.raises(ScenarioError, match=r"t\.toml:2: core\.matrix\.eu:usa: no group named 'usa'"):
        parse_scenario(text, "t.toml")


@pytest.mark.parametrize("port", [0, 70000, -1])
def test_a_node_port_out_of_range_is_refused(port: int) -> None:
    """port 0 bound 49152, but SimNode.address said 0."""
    with pytest.raises(ValueError, match=r"port must be 1\.\.65535"):
        Simulation(1).add_node("a", port=port)


def _run(scenario_body: object) -> dict[str, object]:
    return Simulation(1, duration=5).run(scenario_body)  # type: ignore[arg-type]


def test_starting_an_unknown_node_names_it() -> None:
    async def scenario(sim: Simulation) -> None:
        await sim.start("nosuch")

    with pytest.raises(KeyError, match="no node named 'nosuch'"):
        _run(scenario)


def test_a_partition_of_one_side_is_refused() -> None:
    """It cut nothing and still counted a partition."""
    async def scenario(sim: Simulation) -> None:
        sim.add_host("a")
        sim.partition(["a"])

    with pytest.raises(ValueError, match="at least two sides"):
        _run(scenario)


class ScenarioBug(Exception):
    pass


def test_an_error_in_a_scenario_comes_out_as_itself() -> None:
    # it came out wrapped in the ExceptionGroups of the nurseries it crossed
    async def scenario(sim: Simulation) -> None:
        await sim.sleep(1)
        try:
            int("not a number")
        except ValueError as exc:
            raise ScenarioBug("my scenario broke") from exc

    with pytest.raises(ScenarioBug, match="my scenario broke") as caught:
        _run(scenario)
    assert caught.value.__traceback__ is not None
    assert caught.traceback[-1].name == "scenario"  # where it was raised is still shown
    assert isinstance(caught.value.__cause__, ValueError)  # and its cause (it was wiped)


def test_several_errors_at_once_stay_a_group() -> None:
    async def fail(message: str) -> None:
        raise ScenarioBug(message)

    async def scenario(sim: Simulation) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fail, "one")
            nursery.start_soon(fail, "two")

    with pytest.RaisesGroup(pytest.RaisesExc(ScenarioBug, match="one"),
                            pytest.RaisesExc(ScenarioBug, match="two"), flatten_subgroups=True):
        _run(scenario)


def test_a_scenario_cut_off_by_the_duration_leaves_a_note() -> None:
    async def scenario(sim: Simulation) -> None:
        await sim.sleep(10)
        sim.results["late"] = True

    report = _run(scenario)
    assert "late" not in report["results"]  # type: ignore[operator]
    assert any("still running when the run ended at 5 s" in note
               for note in report["notes"])  # type: ignore[attr-defined]


def test_a_scenario_that_returns_leaves_no_note() -> None:
    async def scenario(sim: Simulation) -> None:
        await sim.sleep(1)

    assert _run(scenario)["notes"] == []
