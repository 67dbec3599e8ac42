"""``p2pkit files`` and ``p2pkit search``: parsing and output in process, and the real
command as a separate process against a node running on loopback."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import trio
from p2pkit.plugins.flooding._cli import add_commands, cmd_files, human_size, print_table

from p2pkit import NodeConfig, open_node
from p2pkit.cli import UsageError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p2pkit")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def test_commands_parse() -> None:
    args = _parser().parse_args(["files", "--bootstrap", "127.0.0.1:7700", "--json"])
    assert args.func is cmd_files and args.json and args.bootstrap == ["127.0.0.1:7700"]
    args = _parser().parse_args(["search", "cat video", "--bootstrap", "h:1", "--timeout", "2"])
    assert args.query == "cat video" and args.timeout == 2.0
    with pytest.raises(SystemExit):
        _parser().parse_args(["search", "--bootstrap", "h:1"])  # no query


def test_a_command_without_bootstrap_is_a_usage_error() -> None:
    args = _parser().parse_args(["files"])
    with pytest.raises(UsageError, match="--bootstrap"):
        args.func(args)
    args = _parser().parse_args(["files", "--bootstrap", "h:1", "--timeout", "0"])
    with pytest.raises(UsageError, match="--timeout"):
        args.func(args)


@pytest.mark.parametrize("flags", [["--data-dir", "/tmp/x"], ["--profile", "b"], ["--repeater", "off"]])
def test_flags_a_throwaway_node_cannot_use_are_refused_not_ignored(flags: list[str]) -> None:
    # `p2pkit files --data-dir D` succeeded and never made D
    for command in (["files"], ["search", "cat"]):
        args = _parser().parse_args([*command, "--bootstrap", "h:1", *flags])
        with pytest.raises(UsageError, match=f"throwaway node: {flags[0]} does not apply"):
            args.func(args)


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 1023, 1024, 5 * 1024**2, 3 * 1024**4)] == [
        "0 B", "1023 B", "1.0 KiB", "5.0 MiB", "3.0 TiB"]


def test_table_lists_rid_name_title_size_category_and_providers(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    row = {"rid": "ab" * 32, "name": "x.wav", "title": "Tone", "size": 2048,
           "category": "audio", "providers": ["p1", "p2"]}
    monkeypatch.setenv("COLUMNS", "80")
    print_table([row])
    out = capsys.readouterr().out
    assert "ab" * 8 + "…" in out and "ab" * 32 not in out and "--json" in out
    assert "x.wav" in out and "Tone" in out and "2.0 KiB" in out and "audio" in out and "1 file(s)" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    monkeypatch.setenv("COLUMNS", "160")
    print_table([row])
    assert "ab" * 32 in capsys.readouterr().out


@pytest.mark.parametrize("title", ["[/bold] closes nothing", "[red]Hacked[/red]", "\x1b[2Jcleared"])
def test_titles_from_peers_are_shown_as_text_never_as_markup_or_terminal_codes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, title: str,
) -> None:
    """Titles, names and categories come from other nodes: one peer's title must not
    crash the command (rich MarkupError) nor restyle or clear the user's terminal."""
    monkeypatch.setenv("COLUMNS", "200")
    print_table([{"rid": "ab" * 32, "name": "x.wav", "title": title, "size": 1,
                  "category": "[blink]audio", "providers": ["p1"]}])
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "[blink]audio" in out
    assert title.replace("\x1b", "\ufffd") in out


# ---------------------------------------------------------------------------- real process


def _wav(path: Path) -> Path:
    t = np.arange(4000) / 8000
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes((np.sin(2 * np.pi * 500 * t) * 9000).astype("<i2").tobytes())
    return path


async def _cli(*argv: str, columns: int = 80) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(60):
        return await trio.run_process([sys.executable, "-m", "p2pkit.cli", *argv],
                                      capture_stdout=True, capture_stderr=True, check=False,
                                      env={**os.environ, "COLUMNS": str(columns)})


async def test_files_and_search_against_a_running_node(tmp_path: Path) -> None:
    config = NodeConfig.from_mapping({"node": {"ephemeral": True, "port": 0, "host": "127.0.0.1"}})
    async with open_node(config) as node:
        manifest = await node.share(_wav(tmp_path / "harbour.wav"), title="Harbour Bells",
                                    description="Recorded at noon")
        where = f"127.0.0.1:{node.endpoint.local_address[1]}"
        done = await _cli("files", "--bootstrap", where, "--json", "--timeout", "20")
        assert done.returncode == 0, done.stderr.decode()
        (row,) = json.loads(done.stdout)
        assert row["rid"] == manifest.rid and row["providers"] == [node.id]
        assert (row["name"], row["category"], row["size"]) == ("harbour.wav", "audio", manifest.size)

        done = await _cli("search", "BELLS", "--bootstrap", where, "--json", "--timeout", "20")
        assert done.returncode == 0, done.stderr.decode()
        assert [r["rid"] for r in json.loads(done.stdout)] == [manifest.rid]

        done = await _cli("files", "--bootstrap", where, "--timeout", "20", columns=160)
        assert done.returncode == 0 and manifest.rid in done.stdout.decode()
        assert "Harbour Bells" in done.stdout.decode()


async def test_no_peer_answering_is_a_clear_error() -> None:
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = await _cli("files", "--bootstrap", f"127.0.0.1:{port}", "--timeout", "1")
    assert done.returncode == 1
    assert b"no peer answered" in done.stderr
