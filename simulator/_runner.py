"""Turning a TOML :class:`ScenarioSpec` into a running :class:`Simulation`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._scenario import (
    EventSpec,
    GroupSpec,
    ScenarioError,
    ScenarioSpec,
    load_python_scenario,
    parse_scenario,
    resolve_scenario_path,
)
from ._sim import ProgressFn, ScenarioFn, SimNode, Simulation
from ._workloads import WORKLOADS


def simulation_for(spec: ScenarioSpec, seed: int | None = None) -> Simulation:
    sim = Simulation(
        spec.seed if seed is None else seed, duration=spec.duration, resolution=spec.resolution,
        core=spec.core, bin_seconds=spec.bin_seconds, name=spec.name,
    )
    sim.raw_samples_limit = spec.raw_samples
    return sim


def scenario_function(spec: ScenarioSpec) -> ScenarioFn:
    """The ``async def scenario(sim)`` equivalent of a TOML scenario."""

    async def scenario(sim: Simulation) -> None:
        for group in spec.groups:
            shared = (sim.add_nat(f"{group.name}.nat", group.nat, group=group.name)
                      if group.nat is not None and group.nat_shared else None)
            for index in range(group.count):
                name = f"{group.name}-{index}"
                nat: Any = shared if shared is not None else group.nat
                if group.node:
                    sim.add_node(name, link=group.link, nat=nat, group=group.name,
                                 config=group.config, port=group.port)
                else:
                    sim.add_host(name, group.link, nat=nat, group=group.name)
        for workload in spec.workloads:
            WORKLOADS[workload["kind"]].install(sim, workload)
        for group in spec.groups:
            if group.node:
                for name, start in _start_times(sim, group):
                    sim.spawn(_lifecycle, sim, sim.nodes[name], group, start)
        for event in spec.timeline:
            sim.spawn(_timeline_event, sim, event)

    return scenario


def _start_times(sim: Simulation, group: GroupSpec) -> list[tuple[str, float]]:
    names = sim.groups.get(group.name, [])
    if group.arrivals is None:
        return [(name, group.start) for name in names]
    rng = sim.rng("arrivals", group.name)
    t = group.start
    times = []
    for name in names:
        t += rng.expovariate(group.arrivals)
        times.append((name, t))
    return times


async def _lifecycle(sim: Simulation, node: SimNode, group: GroupSpec, start: float) -> None:
    if start >= sim.duration:
        return
    await sim.sleep_until(start)
    await sim.start(node)
    if group.session is None:
        return
    rng = sim.rng("churn", node.name)
    while True:
        await sim.sleep(max(0.0, group.session.sample(rng)))
        if group.leave == "graceful":
            await sim.leave(node)
        else:
            await sim.crash(node)
        sim.metrics.count("churn_departures")
        if group.downtime is None:
            return
        await sim.sleep(max(0.0, group.downtime.sample(rng)))
        await sim.start(node)
        sim.metrics.count("churn_rejoins")


async def _timeline_event(sim: Simulation, event: EventSpec) -> None:
    await sim.sleep_until(event.at)
    action = event.action
    if action == "partition":
        sim.partition(*event.sides)
    elif action == "heal":
        sim.heal()
    elif action == "link":
        assert event.link is not None
        sim.set_link(event.target, event.link)
    else:
        for host in sim.resolve(event.target):
            node = sim.nodes.get(host.name)
            if action == "rejoin":
                host.online = True
                if node is not None:
                    await sim.start(node)
            elif node is None:
                host.online = action != "crash"
            elif action == "crash":
                await sim.crash(node)
            else:
                await sim.leave(node)
    sim.metrics.count(f"timeline_{action}")


def load(path_or_name: str, overrides: list[str] | tuple[str, ...] = ()) -> tuple[
        Simulation, ScenarioFn, ScenarioSpec | None]:
    """Load a TOML or Python scenario (file or built-in name): (simulation, function, spec)."""
    path = resolve_scenario_path(path_or_name)
    if path.suffix == ".py":
        if overrides:
            raise ScenarioError(f"{path}: --set applies to TOML scenarios; a Python scenario "
                                "sets its own values (SEED, DURATION, RESOLUTION, NAME)")
        fn, settings = load_python_scenario(path)
        try:
            sim = Simulation(
                int(settings.get("seed", 0)), duration=float(settings.get("duration", 60.0)),
                resolution=float(settings.get("resolution", 0.0)),
                name=str(settings.get("name", path.stem)),
            )
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"{path}: {exc}") from None
        return sim, fn, None
    spec = parse_scenario(_scenario_text(path), str(path), overrides)
    return simulation_for(spec), scenario_function(spec), spec


MAX_SCENARIO_BYTES = 4 * 1024 * 1024  # a scenario is a page of TOML; 50 MB took 1.9 GB


def _scenario_text(path: Path) -> str:
    """The scenario file's text; ScenarioError (one line) for what is not a scenario."""
    try:
        if path.stat().st_size > MAX_SCENARIO_BYTES:
            raise ScenarioError(f"{path}: larger than {MAX_SCENARIO_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not UTF-8 text") from None
    except IsADirectoryError:
        raise ScenarioError(f"{path}: is a directory, not a scenario file") from None


def run_file(path_or_name: str, *, seed: int | None = None, overrides: list[str] | tuple[str, ...] = (),
             out_dir: Path | None = None, progress: ProgressFn | None = None,
             plots: bool = True) -> tuple[Simulation, dict[str, Any]]:
    """Load and run a scenario; write report.json (and plots) to ``out_dir`` if given."""
    sim, fn, _spec = load(path_or_name, overrides)
    if seed is not None:
        sim = sim.reseeded(seed)
    report = sim.run(fn, progress=progress)
    if out_dir is not None:
        from ._report import write_plots, write_report

        write_report(report, out_dir)
        if plots:
            write_plots(sim, report, out_dir)
    return sim, report
