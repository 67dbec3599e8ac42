"""The p2pkit command as a user runs it: real subprocesses, one-line errors, clean exits."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from p2pkit import __version__
from p2pkit.compiled import build_description


def p2pkit(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "p2pkit", *args], capture_output=True,
                          text=True, timeout=60, **kwargs)


def test_version() -> None:
    result = p2pkit("version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"p2pkit {__version__}, {build_description()}"


def test_unknown_flag_is_a_usage_error() -> None:
    result = p2pkit("node", "--no-such-flag")
    assert result.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in result.stderr


def assert_one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert text in result.stderr


def test_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        result = p2pkit("node", "--host", "127.0.0.1", "--port", str(port),
                        "--data-dir", str(tmp_path), "--repeater", "off")
    assert_one_line_error(result, "already in use")


def test_unwritable_data_dir_is_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = p2pkit("node", "--port", "0", "--data-dir", str(blocker / "d"))
    assert_one_line_error(result, "not writable")


def test_bad_config_value_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[node]\nport = "x"\n')
    result = p2pkit("node", "--config", str(config))
    assert_one_line_error(result, "node.port: expected int")
    result = p2pkit("node", "--set", "nosuch.key=1", "--port", "0", "--data-dir", str(tmp_path))
    assert_one_line_error(result, "unknown config section [nosuch]")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_node_runs_until_interrupted_and_exits_zero(tmp_path: Path, signum: signal.Signals) -> None:
    sock = tmp_path / "r.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2pkit", "node", "--host", "127.0.0.1", "--port", "0",
         "--data-dir", str(tmp_path), "--repeater", str(sock)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert proc.stderr is not None  # stderr=PIPE
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "node did not start"
            time.sleep(0.05)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert not sock.exists()  # the repeater removed its socket on the way out
    identity = (tmp_path / "identity.key").read_bytes()
    assert len(identity) == 32


def test_shared_file_names_are_printed_as_they_are(tmp_path: Path) -> None:
    """A name with brackets is not rich markup: '[live]' must not vanish, '[bold]' must
    not restyle the line."""
    import wave

    media = tmp_path / "song [live] [bold].wav"
    with wave.open(str(media), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(16000))
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2pkit", "node", "--host", "127.0.0.1", "--port", "0",
         "--data-dir", str(tmp_path / "data"), "--repeater", "off", "--share", str(media)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "300", "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None  # stderr=PIPE
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while not any(line.startswith("  shared ") for line in lines):
            line = proc.stderr.readline()  # the console (node summary, logs) is stderr
            assert line or proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "the file was not shared"
            lines.append(line)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert "song [live] [bold].wav" in lines[-1]
    assert proc.returncode == 0 and "Traceback" not in "".join(lines) + err, err
