"""Scenario files: parsing, clear errors naming key and line, overrides, built-ins."""

from __future__ import annotations

import pytest
import trio
from p2pkit.simulator import (
    HEADER_BYTES,
    LinkProfile,
    NatType,
    Network,
    ScenarioError,
    builtin_scenarios,
    parse_scenario,
)
from p2pkit.simulator._runner import run_file

from .helpers import running

GOOD = """
[scenario]
name = "t"
duration = 10.0
resolution_ms = 1.0

[links.dsl]
up_mbps = 1.0
down_mbps = 8.0
latency_ms = 10.0
loss = { model = "ge", p = 0.01, r = 0.3 }

[[groups]]
name = "a"
count = 3
link = "dsl"
nat = "symmetric"

[[groups]]
name = "b"
link = { rate_mbps = 100.0, loss = 0.02 }
session = { dist = "exponential", mean = 5.0 }

[[timeline]]
at = 2.0
action = "partition"
sides = [["a"], ["b"]]
"""


def test_parse_a_complete_scenario() -> None:
    spec = parse_scenario(GOOD, "t.toml")
    assert spec.name == "t" and spec.resolution == 0.001
    a, b = spec.groups
    assert a.count == 3 and a.link.up_bps == 1e6 and a.link.latency == 0.010
    assert a.nat is not None and a.nat.type is NatType.SYMMETRIC
    assert a.link.loss.expected_loss == pytest.approx(0.01 / 0.31)
    assert b.link.loss.rate == 0.02 and b.session is not None and b.session.mean == 5.0
    assert spec.timeline[0].sides == (("a",), ("b",))


@pytest.mark.parametrize(
    ("bad", "good", "expected"),
    [
        ('latency_ms = 10.0', 'latency_ms = "ten"', r"t\.toml:10: links\.dsl\.latency_ms: must be float"),
        ('nat = "symmetric"', 'nat = "cone"', r"t\.toml:17: groups\[0\]\.nat: unknown NAT type 'cone'"),
        ('link = "dsl"', 'link = "fibre"', r"t\.toml:16: groups\[0\]\.link: no link profile named 'fibre'"),
        ('p = 0.01', 'p = 1.5', r"t\.toml:11: links\.dsl\.loss: p must be a probability"),
        ('sides = [["a"], ["b"]]', 'sides = [["a"], ["nobody"]]',
         r"t\.toml:27: timeline\[0\]\.sides: no host or group named 'nobody'"),
        ('count = 3', 'count = 3\ncolour = "red"', r"t\.toml:\d+: groups\[0\]\.colour: unknown key"),
        ('action = "partition"', 'action = "explode"', r"timeline\[0\]\.action: must be one of"),
        # a link's values are checked by key: the error names the key and its line
        ('latency_ms = 10.0', 'latency_ms = 10.0\nqueue_ms = -1', r"t\.toml:11: links\.dsl\.queue_ms: must be >= 0"),
        ('latency_ms = 10.0', 'latency_ms = 10.0\nduplicate = 2', r"t\.toml:11: links\.dsl\.duplicate: must be a probability"),
        ('latency_ms = 10.0', 'latency_ms = 10.0\nmtu = 0', r"t\.toml:11: links\.dsl\.mtu: must be >= 68"),  # dropped every packet
        ('latency_ms = 10.0', 'latency_ms = 10.0\nqueue_bytes = 1.5', r"links\.dsl\.queue_bytes: must be int"),
        # silently never happened
        ('at = 2.0', 'at = 20.0', r"t\.toml:25: timeline\[0\]\.at: is not before the scenario's end \(10 s\)"),
        ('count = 3', 'count = 3\nstart = 10', r"groups\[0\]\.start: is not before the scenario's end"),
    ],
)
def test_errors_name_file_line_and_key(bad: str, good: str, expected: str) -> None:
    assert bad in GOOD
    with pytest.raises(ScenarioError, match=expected):
        parse_scenario(GOOD.replace(bad, good, 1), "t.toml")


ASYMMETRIC = """
[links.dsl]
up_mbps = 2.0
down_mbps = 20.0
queue_ms = 50.0
"""


@pytest.mark.parametrize("up", [True, False])
async def test_queue_ms_holds_that_long_in_each_direction(up: bool, autojump_clock: object) -> None:
    dsl = parse_scenario(ASYMMETRIC, "t.toml").links["dsl"]
    net = Network(seed=1)
    dsl_host, other = net.add_host("dsl", dsl), net.add_host("other", LinkProfile())
    sender, receiver = (dsl_host, other) if up else (other, dsl_host)
    src, dst = sender.bind(4000), receiver.bind(4000)
    async with running(net, dst) as (recorder,):
        t0 = trio.current_time()
        for _ in range(1000):  # a burst far larger than either queue
            src.send(bytes(1000 - HEADER_BYTES), dst.local_address)
        await trio.sleep(5)
    delays = [t - t0 for t, _data, _src in recorder.received]
    # the uplink's queue was sized from the downlink's rate: it held 500 ms
    assert 0.045 < max(delays) <= 0.050 + 1e-9


def test_queue_ms_and_queue_bytes_together_are_refused() -> None:
    with pytest.raises(ScenarioError, match=r"links\.dsl\.queue_bytes: .*queue_ms"):
        parse_scenario(ASYMMETRIC + "queue_bytes = 50000\n", "t.toml")


@pytest.mark.parametrize(("override", "expected"), [
    # nan passed every ">= 0" check: a traceback from the clock, a NaN in the report
    ("scenario.duration=nan", r"scenario\.duration: must be a finite number, got nan"),
    ("scenario.duration=inf", r"scenario\.duration: must be a finite number, got inf"),  # ran for ever
    ("links.dsl.latency_ms=nan", r"t\.toml:10: links\.dsl\.latency_ms: must be a finite number"),
    ("groups.0.start=nan", r"groups\[0\]\.start: must be a finite number"),
    ("timeline.0.at=nan", r"timeline\[0\]\.at: must be a finite number"),
    ("groups.1.session=-5", r"groups\[1\]\.session: must be > 0 seconds"),  # crashed and rejoined in a loop
    ("groups.0.count=1000000000", r"groups\[0\]\.count: the groups would hold 1000000000 hosts; at most 100000"),
])
def test_values_that_cannot_run_are_refused_in_one_line(override: str, expected: str) -> None:
    with pytest.raises(ScenarioError, match=expected):
        parse_scenario(GOOD, "t.toml", [override])


def test_toml_nested_past_the_parsers_recursion_is_one_line() -> None:
    with pytest.raises(ScenarioError, match=r"t\.toml: invalid TOML: nested too deeply"):
        parse_scenario("x = " + "[" * 100_000 + "]" * 100_000, "t.toml")


def test_invalid_toml_reports_position() -> None:
    with pytest.raises(ScenarioError, match=r"t\.toml: invalid TOML: .*line 3"):
        parse_scenario("[scenario]\nname = 'x'\nduration = = 3\n", "t.toml")


def test_overrides_change_values_and_reject_bad_paths() -> None:
    spec = parse_scenario(GOOD, "t.toml", ["links.dsl.latency_ms=25", "groups.0.count=7",
                                           "scenario.name=renamed"])
    assert spec.groups[0].link.latency == 0.025 and spec.groups[0].count == 7
    assert spec.name == "renamed"
    with pytest.raises(ScenarioError, match="groups\\[5\\] does not exist"):
        parse_scenario(GOOD, "t.toml", ["groups.5.count=1"])
    with pytest.raises(ScenarioError, match=r"expected key\.path=value"):
        parse_scenario(GOOD, "t.toml", ["nonsense"])


def test_an_override_of_a_link_profile_the_scenario_lacks_is_refused() -> None:
    # a typo (links.dls for dsl) made a new profile nothing used: the run was unchanged,
    # rc 0, not a word said
    with pytest.raises(ScenarioError, match=r"no link profile 'dls' .*it has: dsl"):
        parse_scenario(GOOD, "t.toml", ["links.dls.latency_ms=25"])
    # a new profile that a group is then given is fine
    spec = parse_scenario(GOOD, "t.toml", ["links.fast.latency_ms=1", "groups.0.link=fast"])
    assert spec.groups[0].link.latency == 0.001


def test_builtin_scenarios_parse() -> None:
    names = builtin_scenarios()
    assert {"lossy-link", "nat-zoo", "churn"} <= set(names)
    for path in names.values():
        parse_scenario(path.read_text(), str(path))


def test_nat_zoo_reachability_matrix_is_the_textbook_one() -> None:
    _sim, report = run_file("nat-zoo")
    cells: dict[str, dict[str, int]] = report["results"]["punch"]["by_nat_pair"]

    def ok(pair: str) -> bool:
        return cells[pair]["ok"] == cells[pair]["tried"]

    def never(pair: str) -> bool:
        return cells[pair]["ok"] == 0

    assert ok("full-cone | symmetric") and ok("restricted-cone | symmetric")
    assert ok("port-restricted-cone | port-restricted-cone") and ok("open | symmetric")
    assert never("port-restricted-cone | symmetric") and never("symmetric | symmetric")
    assert all(never(pair) for pair in cells if "udp-blocked" in pair)
    assert report["network"]["drops"]["nat_filtered"] > 0
