"""``p2pkit sim list`` / ``p2pkit sim run`` through the kernel's command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p2pkit.cli import main


def test_sim_list_names_the_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("lossy-link", "nat-zoo", "churn"):
        assert name in out


def test_sim_run_writes_report_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "run", "nat-zoo", "--seed", "3", "--out", str(tmp_path), "--quiet",
                 "--set", "scenario.duration=12.0"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["seed"] == 3 and report["duration_s"] == 12.0
    assert report["results"]["punch"]["pairs"]
    assert (tmp_path / "throughput.png").stat().st_size > 1000
    assert (tmp_path / "loss.png").exists()
    assert "hole punching by NAT pair" in capsys.readouterr().out


def test_bad_scenario_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[scenario]\nduration = 5.0\n\n[[groups]]\nname = "a"\nnat = "cone"\n')
    assert main(["sim", "run", str(bad), "--quiet", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.toml:6: groups[0].nat: unknown NAT type 'cone'" in " ".join(err.split())


@pytest.mark.parametrize(("content", "expected"), [
    (b"\xff\xfe[scenario]\n", "not UTF-8 text"),                       # was a UnicodeDecodeError traceback
    (None, "is a directory, not a scenario file"),                     # was 'Is a directory', exit 1
    (b"# " + b"x" * (5 * 1024 * 1024), "larger than 4194304 bytes"),  # 50 MB took 1.9 GB
    # every node of the group failed alike: one line, not a group of tracebacks
    (b'[scenario]\nduration = 2.0\n[[groups]]\nname = "a"\ncount = 2\n'
     b'[groups.config]\nnode = { max_connections = 3 }\n', "unknown config key node.max_connections"),
])
def test_a_file_that_is_no_scenario_is_one_clear_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, expected: str) -> None:
    target = tmp_path / "s.toml"
    if content is None:
        target.mkdir()
    else:
        target.write_bytes(content)
    assert main(["sim", "run", str(target), "--quiet", "--no-plots", "--out", str(tmp_path / "o")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert expected in err and "Traceback" not in err


def test_python_scenario_module(tmp_path: Path) -> None:
    script = tmp_path / "custom.py"
    script.write_text(
        "from p2pkit.simulator import LinkProfile\n"
        "DURATION = 3.0\nSEED = 11\n"
        "async def scenario(sim):\n"
        "    a = sim.add_host('a', LinkProfile(latency=0.02)).bind(1000)\n"
        "    b = sim.add_host('b').bind(2000)\n"
        "    got = []\n"
        "    async def serve():\n"
        "        await b.run(lambda batch, now: got.extend(batch))\n"
        "    sim.spawn(serve)\n"
        "    await sim.sleep(0.1)\n"
        "    a.send(b'hi', b.local_address)\n"
        "    await sim.sleep(1)\n"
        "    sim.results['got'] = [d.decode() for d, _ in got]\n"
    )
    out = tmp_path / "out"
    assert main(["sim", "run", str(script), "--quiet", "--no-plots", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["results"]["got"] == ["hi"] and report["seed"] == 11
    assert report["duration_s"] == 3.0


@pytest.mark.parametrize(("text", "args", "expected"), [
    # --set was silently ignored for a Python scenario
    ("async def scenario(sim):\n    pass\n", ["--set", "scenario.duration=5"],
     "--set applies to TOML scenarios"),
    # a full traceback (TOML got one line)
    ("DURATION = -5\nasync def scenario(sim):\n    pass\n", [],
     "duration must be a finite number > 0, got -5.0"),
    # "object NoneType can't be used in 'await' expression"
    ("def scenario(sim):\n    pass\n", [], "defines `async def scenario(sim)`"),
])
def test_a_bad_python_scenario_is_one_clear_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, args: list[str],
        expected: str) -> None:
    script = tmp_path / "mine.py"
    script.write_text(text)
    assert main(["sim", "run", str(script), "--quiet", "--no-plots",
                 "--out", str(tmp_path / "o"), *args]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert expected in err and "Traceback" not in err


def test_sim_run_prints_the_reports_notes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "slow.py"
    script.write_text(
        "DURATION = 2.0\n"
        "async def scenario(sim):\n"
        "    sim.note('a note of my own')\n"
        "    await sim.sleep(10)\n"
    )
    out = tmp_path / "out"
    assert main(["sim", "run", str(script), "--quiet", "--no-plots", "--out", str(out)]) == 0
    notes = json.loads((out / "report.json").read_text())["notes"]
    assert len(notes) == 2 and "still running when the run ended" in notes[1]
    printed = " ".join(capsys.readouterr().out.split())
    for note in notes:
        assert " ".join(note.split()) in printed
