"""The examples in docs/simulator.md run."""

from __future__ import annotations

import re
from pathlib import Path

from p2pkit.simulator import parse_scenario

DOC = Path(__file__).resolve().parents[2] / "docs" / "simulator.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_toml_example_is_valid() -> None:
    (example,) = _blocks("toml")
    spec = parse_scenario(example, "docs/simulator.md")
    assert [g.name for g in spec.groups] == ["eu", "us"]
    assert [w["kind"] for w in spec.workloads] == ["mesh", "bulk"]


def test_python_example_runs() -> None:
    example = _blocks("python")[0]
    imported: dict[str, object] = {"__name__": "a_scenario"}  # as `p2pkit sim run` loads it
    exec(compile(example, str(DOC), "exec"), imported)
    assert "report" not in imported and imported["SEED"] == 1  # it ran twice when imported
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec(compile(example, str(DOC), "exec"), namespace)
    report = namespace["report"]
    assert isinstance(report, dict)
    assert report["nodes"]["client"]["node"]["starts"] == 2
    assert report["nodes"]["client"]["node"]["crashes"] == 1
    assert report["nodes"]["client"]["nat"] == "symmetric"


def test_capture_example_counts_what_the_host_sent() -> None:
    (capture,) = [block for block in _blocks("python") if "sim.capture(" in block]
    namespace: dict[str, object] = {}
    exec(compile(capture, str(DOC), "exec"), namespace)
    report = namespace["report"]
    assert isinstance(report, dict)
    assert report["results"]["bytes_on_the_wire"] == {"a": 5 + 28}
