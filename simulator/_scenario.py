"""Scenario files: TOML (declarative) or a Python module with ``async def scenario(sim)``.

A mistake in a TOML scenario raises :class:`ScenarioError` naming the file, the line and
the key (``churn.toml:12: groups[0].link.loss: must be a probability ...``).
See docs/simulator.md for the format.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from p2pkit._exceptions import ConfigError

from ._core import CoreLatency
from ._dist import Distribution
from ._link import MIN_MTU, LinkProfile
from ._loss import LossSpec
from ._nat import NatProfile, NatType

BUILTIN_DIR = Path(__file__).parent / "scenarios"


class ScenarioError(ConfigError, ValueError):
    """A scenario file is malformed; the message names the file, line and key."""


# ---------------------------------------------------------------------------- locating keys


def _line_of(text: str, path: Sequence[str | int]) -> int | None:
    """Best-effort line number of a key path in TOML text (None if not found)."""
    lines = text.splitlines()
    start, end = 0, len(lines)
    header: list[str] = []
    i = 0
    # walk down table headers: [a], [[a]] (n-th), [a.b]
    while i < len(path):
        part = path[i]
        nxt = path[i + 1] if i + 1 < len(path) else None
        if isinstance(part, str) and isinstance(nxt, int):
            name = ".".join([*header, part])
            pattern = re.compile(rf"^\s*\[\[\s*{re.escape(name)}\s*\]\]")
            hits = [n for n in range(start, end) if pattern.match(lines[n])]
            if nxt < len(hits):
                start = hits[nxt] + 1
                end = next((n for n in range(start, len(lines)) if lines[n].lstrip().startswith("[")),
                           len(lines))
                header = [*header, part]
                i += 2
                continue
            break
        if isinstance(part, str) and i < len(path) - 1:
            name = ".".join([*header, part])
            pattern = re.compile(rf"^\s*\[\s*{re.escape(name)}\s*\]")
            hit = next((n for n in range(len(lines)) if pattern.match(lines[n])), None)
            if hit is not None:
                start = hit + 1
                end = next((n for n in range(start, len(lines)) if lines[n].lstrip().startswith("[")),
                           len(lines))
                header = [*header, part]
                i += 1
                continue
        break
    # the remaining key (or inline-table key) inside [start, end)
    for part in reversed(path[i:] or path[-1:]):
        if not isinstance(part, str):
            continue
        pattern = re.compile(rf'(^|[\s{{,]){re.escape(part)}\s*=|^\s*"{re.escape(part)}"\s*=')
        for n in range(start, end):
            if pattern.search(lines[n]):
                return n + 1
    return start if 0 < start <= len(lines) else None


def _format_path(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class _Reader:
    """Typed access to a TOML table that reports errors with file, line and key."""

    def __init__(self, data: Mapping[str, Any], path: tuple[str | int, ...], ctx: _Context) -> None:
        if not isinstance(data, Mapping):
            raise ctx.error(path, "must be a table")
        self.data = data
        self.path = path
        self.ctx = ctx
        self.used: set[str] = set()

    def error(self, key: str | int | None, message: str) -> ScenarioError:
        return self.ctx.error(self.path if key is None else (*self.path, key), message)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise self.error(key, "is required")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.error(key, f"must be {names}, got {value!r}")
        if not _finite(value):
            # nan passes every ">= 0" check (and inf runs for ever): a traceback from the
            # clock, a hang, or a report with NaN in it (not JSON) came of them
            raise self.error(key, f"must be a finite number, got {value!r}")
        return value

    def number(self, key: str, default: Any = ..., *, minimum: float | None = 0.0,
               kind: type = float) -> Any:
        value = self.get(key, kind, default)
        if value is not None and minimum is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {value!r}")
        return value

    def probability(self, key: str) -> float:
        value: float = self.number(key, 0.0)
        if value > 1:
            raise self.error(key, f"must be a probability in [0, 1], got {value!r}")
        return value

    def table(self, key: str) -> _Reader:
        self.used.add(key)
        return _Reader(self.data.get(key, {}), (*self.path, key), self.ctx)

    def finish(self) -> None:
        unknown = [k for k in self.data if k not in self.used]
        if unknown:
            raise self.error(unknown[0], "unknown key")


def _finite(value: Any) -> bool:
    """No nan or inf in ``value`` (a number, or a list of them, as a link matrix is)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


@attrs.define
class _Context:
    source: str
    text: str

    def error(self, path: Sequence[str | int], message: str) -> ScenarioError:
        line = _line_of(self.text, path)
        where = f"{self.source}:{line}" if line else self.source
        return ScenarioError(f"{where}: {_format_path(path) or '(top level)'}: {message}")


# ---------------------------------------------------------------------------- the spec


@attrs.frozen
class GroupSpec:
    name: str
    count: int
    link: LinkProfile
    nat: NatProfile | None
    nat_shared: bool
    node: bool
    port: int
    config: Mapping[str, Any]
    start: float
    arrivals: float | None  # Poisson arrival rate (hosts/s), None = all at `start`
    session: Distribution | None  # churn: online time before leaving
    downtime: Distribution | None  # churn: offline time before rejoining (None = never)
    leave: str  # "crash" or "graceful"


@attrs.frozen
class EventSpec:
    at: float
    action: str
    target: tuple[str, ...] = ()
    sides: tuple[tuple[str, ...], ...] = ()
    link: LinkProfile | None = None


@attrs.frozen
class ScenarioSpec:
    name: str
    description: str
    duration: float
    seed: int
    resolution: float
    bin_seconds: float
    core: CoreLatency
    links: Mapping[str, LinkProfile]
    groups: tuple[GroupSpec, ...]
    timeline: tuple[EventSpec, ...]
    workloads: tuple[Mapping[str, Any], ...]
    source: str
    raw_samples: int = 2000  # sample lists up to this long appear raw in report.json


MAX_HOSTS = 100_000  # in all groups of a scenario
ACTIONS = ("partition", "heal", "link", "crash", "leave", "rejoin")


def _loss(reader: _Reader, key: str) -> LossSpec | None:
    if not reader.has(key):
        reader.used.add(key)
        return None
    value = reader.get(key, (float, dict))
    try:
        if isinstance(value, float):
            return LossSpec.bernoulli(value)
        table = _Reader(value, (*reader.path, key), reader.ctx)
        model = table.get("model", str, "ge")
        if model == "bernoulli":
            spec = LossSpec.bernoulli(table.number("rate"))
        elif model == "ge":
            r = table.get("r", float, None)
            spec = LossSpec.gemodel(table.number("p"), r, table.number("bad_loss", 1.0),
                                    table.number("good_loss", 0.0))
        else:
            raise table.error("model", f"must be 'bernoulli' or 'ge', got {model!r}")
        table.finish()
        return spec
    except ValueError as exc:
        if isinstance(exc, ScenarioError):
            raise
        raise reader.error(key, str(exc)) from None


def _link(reader: _Reader) -> LinkProfile:
    both = reader.number("rate_mbps", 0.0)
    up = reader.number("up_mbps", both) * 1e6
    down = reader.number("down_mbps", both) * 1e6
    latency = reader.number("latency_ms", 0.0) / 1000
    mtu = reader.number("mtu", 1500, minimum=MIN_MTU, kind=int)
    queue_ms = reader.number("queue_ms", None)
    queue = reader.number("queue_bytes", None, kind=int)
    queues: dict[str, int] = {}
    if queue is not None:
        if queue_ms is not None:  # one was ignored
            raise reader.error("queue_bytes", "give queue_ms or queue_bytes, not both")
        queues["queue_bytes"] = queue
    elif queue_ms is not None:
        # in time: each direction at its own rate (both were sized from the faster one, so
        # an asymmetric link's uplink held ten times as long); unlimited: never queues
        if up:
            queues["up_queue_bytes"] = LinkProfile.queue_for(up, queue_ms / 1000, mtu)
        if down:
            queues["down_queue_bytes"] = LinkProfile.queue_for(down, queue_ms / 1000, mtu)
    # every value checked here, by key, so that an error names the line it is on
    profile = LinkProfile(
        up_bps=up, down_bps=down, latency=latency,
        jitter=reader.number("jitter_ms", 0.0) / 1000, **queues,
        loss=_loss(reader, "loss") or LossSpec(), up_loss=_loss(reader, "up_loss"),
        down_loss=_loss(reader, "down_loss"), duplicate=reader.probability("duplicate"),
        reorder=reader.probability("reorder"), mtu=mtu,
    )
    reader.finish()
    return profile


def _distribution(reader: _Reader, key: str) -> Distribution | None:
    if not reader.has(key):
        reader.used.add(key)
        return None
    value = reader.get(key, (float, dict))
    if isinstance(value, float):
        if value <= 0:  # a session of -5 s crashed and rejoined in a loop
            raise reader.error(key, f"must be > 0 seconds, got {value!r}")
        return Distribution(value=value)
    table = _Reader(value, (*reader.path, key), reader.ctx)
    kwargs: dict[str, Any] = {"kind": table.get("dist", str)}
    for name in ("value", "mean", "low", "high", "shape", "scale", "median", "sigma"):
        if table.has(name):
            kwargs[name] = table.number(name)
    table.finish()
    try:
        return Distribution(**kwargs)
    except ValueError as exc:
        raise reader.error(key, str(exc)) from None


def _link_ref(reader: _Reader, key: str, links: Mapping[str, LinkProfile]) -> LinkProfile:
    value = reader.get(key, (str, dict), None)
    if value is None:
        return LinkProfile()
    if isinstance(value, str):
        if value not in links:
            raise reader.error(key, f"no link profile named {value!r} (have: {', '.join(links)})")
        return links[value]
    return _link(_Reader(value, (*reader.path, key), reader.ctx))


def _names(reader: _Reader, key: str) -> tuple[str, ...]:
    value = reader.get(key, (str, list))
    items = [value] if isinstance(value, str) else value
    if not all(isinstance(v, str) for v in items):
        raise reader.error(key, "must be a name or a list of names")
    return tuple(items)


def parse_scenario(text: str, source: str = "<scenario>",
                   overrides: Sequence[str] = ()) -> ScenarioSpec:
    """Parse and validate TOML scenario text (``overrides``: ``"key.path=value"``)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: invalid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and tables by recursion
        raise ScenarioError(f"{source}: invalid TOML: nested too deeply") from None
    ctx = _Context(source, text)
    links_before = set(data.get("links", {})) if isinstance(data.get("links"), dict) else set()
    for override in overrides:
        _apply_override(data, override, ctx)
    _check_new_links_used(data, links_before, overrides)
    top = _Reader(data, (), ctx)

    meta = top.table("scenario")
    name = meta.get("name", str, Path(source).stem)
    description = meta.get("description", str, "")
    duration = meta.number("duration", 60.0)
    if duration <= 0:
        raise meta.error("duration", "must be > 0")
    seed = meta.get("seed", int, 0)
    resolution = meta.number("resolution_ms", 0.0) / 1000
    bin_seconds = meta.number("bin_s", 1.0)
    if bin_seconds <= 0:
        raise meta.error("bin_s", "must be > 0")
    meta.finish()

    core_t = top.table("core")
    matrix_t = core_t.table("matrix")
    matrix: dict[tuple[str, str], float] = {}
    for pair in matrix_t.data:
        a, sep, b = pair.partition(":")
        if not sep:
            raise matrix_t.error(pair, "keys are 'group_a:group_b'")
        matrix[(a, b)] = matrix_t.number(pair) / 1000
    try:
        core = CoreLatency(
            distribution=core_t.get("distribution", str, "constant"),
            mean=core_t.number("latency_ms", 0.0) / 1000, sd=core_t.number("sd_ms", 0.0) / 1000,
            low=core_t.number("low_ms", 0.0) / 1000, high=core_t.number("high_ms", 0.0) / 1000,
            matrix=matrix,
        )
    except ValueError as exc:
        raise core_t.error(None, str(exc)) from None
    core_t.finish()

    links_t = top.table("links")
    links = {key: _link(links_t.table(key)) for key in list(links_t.data)}

    from ._sim import merge_config

    shared_config = top.get("config", dict, {})
    groups: list[GroupSpec] = []
    raw_groups = top.get("groups", list, [])
    seen: set[str] = set()
    hosts = 0
    for index, raw in enumerate(raw_groups):
        g = _Reader(raw, ("groups", index), ctx)
        gname = g.get("name", str)
        if gname in seen or not re.fullmatch(r"[A-Za-z0-9_.-]+", gname):
            raise g.error("name", f"{gname!r} is a duplicate or not [A-Za-z0-9_.-]+")
        seen.add(gname)
        count = g.get("count", int, 1)
        if count < 0:
            raise g.error("count", "must be >= 0")
        hosts += count
        if hosts > MAX_HOSTS:  # a billion names were built (3.6 GB) before anything ran
            raise g.error("count", f"the groups would hold {hosts} hosts; at most {MAX_HOSTS}")
        nat_name = g.get("nat", str, "open")
        try:
            nat_type = NatType.parse(nat_name)
        except ValueError as exc:
            raise g.error("nat", str(exc)) from None
        nat = None if nat_type is NatType.OPEN else NatProfile(
            type=nat_type, mapping_timeout=g.number("nat_timeout", 30.0),
            hairpin=g.get("hairpin", bool, False),
            inbound_refresh=g.get("nat_inbound_refresh", bool, False),
        )
        if nat is None:
            g.used.update(("nat_timeout", "hairpin", "nat_inbound_refresh"))
        leave = g.get("leave", str, "crash")
        if leave not in ("crash", "graceful"):
            raise g.error("leave", "must be 'crash' or 'graceful'")
        arrivals = g.get("arrivals", float, None)
        if arrivals is not None and arrivals <= 0:
            raise g.error("arrivals", "must be > 0 (hosts per second)")
        port = g.get("port", int, 7700)
        if not 0 < port < 65536:
            raise g.error("port", "must be 1..65535")
        start = g.number("start", 0.0)
        if start >= duration:
            raise g.error("start", f"is not before the scenario's end ({duration:g} s): the group would never run")
        groups.append(GroupSpec(
            name=gname, count=count, link=_link_ref(g, "link", links), nat=nat,
            nat_shared=g.get("nat_shared", bool, False), node=g.get("node", bool, True),
            port=port, config=merge_config(shared_config, g.get("config", dict, {})),
            start=start,
            arrivals=arrivals, session=_distribution(g, "session"),
            downtime=_distribution(g, "downtime"), leave=leave,
        ))
        g.finish()

    for a, b in matrix:  # a misspelt group silently fell back to the distribution
        for group in (a, b):
            if group not in seen:
                raise matrix_t.error(f"{a}:{b}", f"no group named {group!r}")

    names = set(seen) | {f"{g.name}-{i}" for g in groups for i in range(g.count)}
    events: list[EventSpec] = []
    for index, raw in enumerate(top.get("timeline", list, [])):
        e = _Reader(raw, ("timeline", index), ctx)
        action = e.get("action", str)
        if action not in ACTIONS:
            raise e.error("action", f"must be one of {', '.join(ACTIONS)}, got {action!r}")
        at = e.number("at")
        if at >= duration:  # it would never happen, and nothing would say so
            raise e.error("at", f"is not before the scenario's end ({duration:g} s): it would never happen")
        kwargs: dict[str, Any] = {}
        if action == "partition":
            sides = e.get("sides", list)
            if not all(isinstance(s, list) and all(isinstance(n, str) for n in s) for s in sides):
                raise e.error("sides", "must be a list of lists of host/group names")
            kwargs["sides"] = tuple(tuple(s) for s in sides)
            targets = [n for s in sides for n in s]
        elif action == "heal":
            targets = []
        else:
            kwargs["target"] = _names(e, "target")
            targets = list(kwargs["target"])
            if action == "link":
                kwargs["link"] = _link_ref(e, "link", links)
        for target in targets:
            if target not in names:
                raise e.error("sides" if action == "partition" else "target",
                              f"no host or group named {target!r}")
        e.finish()
        events.append(EventSpec(at=at, action=action, **kwargs))
    events.sort(key=lambda ev: ev.at)

    workloads: list[Mapping[str, Any]] = []
    from ._workloads import WORKLOADS

    for index, raw in enumerate(top.get("workload", list, [])):
        w = _Reader(raw, ("workload", index), ctx)
        kind = w.get("kind", str)
        if kind not in WORKLOADS:
            raise w.error("kind", f"must be one of {', '.join(WORKLOADS)}, got {kind!r}")
        params = WORKLOADS[kind].validate(w, {g.name: g for g in groups})
        w.finish()
        workloads.append({"kind": kind, **params})

    metrics_t = top.table("metrics")
    bin_seconds = metrics_t.number("bin_s", bin_seconds)
    if bin_seconds <= 0:
        raise metrics_t.error("bin_s", "must be > 0")
    raw_samples = metrics_t.get("raw_samples", int, 2000)
    if raw_samples < 0:
        raise metrics_t.error("raw_samples", "must be >= 0")
    metrics_t.finish()
    top.finish()
    return ScenarioSpec(
        name=name, description=description, duration=duration, seed=seed,
        resolution=resolution, bin_seconds=bin_seconds, core=core, links=links,
        groups=tuple(groups), timeline=tuple(events), workloads=tuple(workloads), source=source,
        raw_samples=raw_samples,
    )


def _check_new_links_used(data: dict[str, Any], before: set[str], overrides: Sequence[str]) -> None:
    """A link profile that ``--set`` made and nothing names is a typo of one that exists
    (``links.los1.up_loss`` for ``loss1``): it changed nothing, and the run said nothing."""
    links = data.get("links")
    if not isinstance(links, dict):
        return
    items = [item for key in ("groups", "timeline") if isinstance(data.get(key), list)
             for item in data[key]]
    named = {item["link"] for item in items if isinstance(item, dict) and isinstance(item.get("link"), str)}
    for name in sorted(set(links) - before - named):
        where = next((o for o in overrides if o.strip().startswith(f"links.{name}.")), f"links.{name}")
        have = ", ".join(sorted(before)) or "none"
        raise ScenarioError(f"--set {where!r}: the scenario has no link profile {name!r} (it has: "
                            f"{have}); a new one must also be named by a group or an event")


def _apply_override(data: dict[str, Any], override: str, ctx: _Context) -> None:
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ScenarioError(f"--set {override!r}: expected key.path=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in key.strip().split(".")]
    target: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if not isinstance(target, list) or part >= len(target):
                raise ScenarioError(f"--set {override!r}: {_format_path(parts[:i + 1])} does not exist")
            target = target[part]
        else:
            if part not in target:
                target[part] = [] if isinstance(nxt, int) else {}
            target = target[part]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(target, list) or last >= len(target):
            raise ScenarioError(f"--set {override!r}: {_format_path(parts)} does not exist")
        target[last] = value
    else:
        if not isinstance(target, dict):
            raise ScenarioError(f"--set {override!r}: {_format_path(parts[:-1])} is not a table")
        target[last] = value


# ---------------------------------------------------------------------------- finding files


def builtin_scenarios() -> dict[str, Path]:
    """Built-in scenario name -> file, sorted by name."""
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.toml"))}


def resolve_scenario_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.exists():
        return path
    builtin = builtin_scenarios().get(name_or_path.removesuffix(".toml"))
    if builtin is not None:
        return builtin
    raise ScenarioError(
        f"{name_or_path}: no such file and no built-in scenario of that name "
        f"(built-ins: {', '.join(builtin_scenarios())})"
    )


def load_python_scenario(path: Path) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The ``scenario`` function of a Python module and its optional ``DURATION``/``SEED``/
    ``RESOLUTION``/``NAME`` settings."""
    spec = importlib.util.spec_from_file_location(f"p2pkit_scenario_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ScenarioError(f"{path}: cannot import")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, "scenario", None)
    if fn is None or not inspect.iscoroutinefunction(fn):
        raise ScenarioError(f"{path}: a Python scenario defines `async def scenario(sim)`"
                            + ("" if fn is None else f" (its `scenario` is {fn!r})"))
    settings = {
        key.lower(): getattr(module, key)
        for key in ("DURATION", "SEED", "RESOLUTION", "NAME")
        if hasattr(module, key)
    }
    return fn, settings
