"""``p2pkit get``'s last word when a download cannot finish: what its missing blocks
were waiting for, nobody at the bootstrap address, nobody offering the rid (the
end-to-end run is in tests/e2e/test_swarm_e2e.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from p2pkit.plugins.swarm._cli import BOOTSTRAP_WAIT_S, waiting_for
from p2pkit.plugins.swarm._output import output_problem


def report(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"missing_blocks": 0, "requested": 0, "requested_from": {},
                            "askable": {"ready": 0, "backing_off": 0, "pipelines_full": 0},
                            "only_choking_peers": 0, "nobody": 0, "peers": {}}
    return {**base, **fields}


def test_blocks_asked_of_a_slow_peer_are_named_as_such() -> None:
    line = waiting_for(report(missing_blocks=12, requested=12, requested_from={"p" * 64: 12}))
    assert line == "; 12 blocks missing: 12 asked of 1 peer(s)"


def test_every_reason_present_is_told_and_absent_ones_are_not() -> None:
    line = waiting_for(report(
        missing_blocks=30, requested=5, requested_from={"a": 3, "b": 2},
        askable={"ready": 0, "backing_off": 4, "pipelines_full": 1},
        only_choking_peers=15, nobody=5))
    assert line == ("; 30 blocks missing: 5 asked of 2 peer(s), 5 held by peers that unchoke"
                    " us, not asked yet, 15 held only by peers that choke us, 5 offered by no"
                    " peer yet")
    assert "choke" not in waiting_for(report(missing_blocks=3, nobody=3))


def test_nothing_is_added_without_a_download_or_with_nothing_missing() -> None:
    assert waiting_for(None) == ""
    assert waiting_for(report()) == ""


def p2pkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "p2pkit", *args], capture_output=True,
                          text=True, timeout=50)


def test_get_from_an_address_where_nobody_answers_says_so_after_the_bootstrap_wait() -> None:
    # a mistyped port: `p2pkit files` says so after 10 s, `get` said it after the 60 s
    # wait for a provider
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:
        quiet.bind(("127.0.0.1", 0))
        where = f"127.0.0.1:{quiet.getsockname()[1]}"
        result = p2pkit("get", "ab" * 32, "--bootstrap", where, "--quiet")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"no peer answered at {where} within {BOOTSTRAP_WAIT_S:g} s" in result.stderr


def test_get_of_a_rid_nobody_offers_says_so_when_its_time_is_up(tmp_path: Path) -> None:
    # "the download did not finish within 5 s" and nothing else: a mistyped rid looked
    # like a slow download
    node = subprocess.Popen(
        [sys.executable, "-m", "p2pkit", "node", "--host", "127.0.0.1", "--port", "0",
         "--data-dir", str(tmp_path / "n"), "--repeater", "off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})
    try:
        assert node.stderr is not None
        address = ""
        while not address:
            line = node.stderr.readline()
            assert line, "the node stopped"
            if line.strip().startswith("udp"):
                address = line.split()[1]
        result = p2pkit("get", "00" * 32, "--bootstrap", address, "--quiet", "--timeout", "3")
    finally:
        node.send_signal(signal.SIGTERM)
        node.communicate(timeout=30)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "did not finish within 3 s; no peer offers 000000000000 (yet)" in result.stderr


def test_a_file_given_as_a_directory_is_said_to_be_no_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("a file")
    assert output_problem(f"{tmp_path}/notes.txt/") == f"{tmp_path}/notes.txt/: is not a directory"
    assert output_problem(f"{tmp_path}/missing/") == f"{tmp_path}/missing/: no such directory"
