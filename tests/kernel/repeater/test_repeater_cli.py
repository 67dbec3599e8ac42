"""``p2pkit ctl`` against a real repeater server (and once against a real node process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from p2pkit.repeater.cli import default_socket_path, main

from .conftest import NODE_ID, ThreadedServer, make_registry


@pytest.fixture(scope="module")
def node() -> Iterator[tuple[Path, dict[str, Any]]]:
    """A served registry in <data-dir>/repeater.sock: (data dir, the fields' state)."""
    registry, state = make_registry()
    with tempfile.TemporaryDirectory(prefix="p2pk-") as name:
        data_dir = Path(name)
        with ThreadedServer(registry, data_dir / "repeater.sock", frame_timeout=5):
            yield data_dir, state


def ctl(
    capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str
) -> tuple[int, str, str]:
    code = main(["ctl", "--socket", os.fspath(data_dir / "repeater.sock"), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_get_prints_values_by_type(node: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    data_dir, _ = node
    assert ctl(capsys, data_dir, "get", "peer.count") == (0, "7\n", "")
    assert ctl(capsys, data_dir, "get", "node.id") == (0, NODE_ID + "\n", "")
    assert ctl(capsys, data_dir, "get", "cfg.p2p_enabled")[1] == "true\n"
    assert ctl(capsys, data_dir, "get", "net.up_rate")[1] == "1234.5\n"
    assert ctl(capsys, data_dir, "get", "test.blob")[1] == "0001ff\n"
    code, out, _ = ctl(capsys, data_dir, "get", "test.doc")
    assert code == 0 and json.loads(out) == {"a": [1, 2.5, None, True], "b": "ü"}


@pytest.mark.parametrize(
    ("field", "text", "printed", "stored"),
    [
        ("cfg.upload_limit_kbps", "512", "512", 512),
        ("cfg.cache_limit_mb", "0x10", "16", 16),
        ("cfg.p2p_enabled", "off", "false", False),
        ("cfg.p2p_enabled", "TRUE", "true", True),
        ("test.ratio", "2.5", "2.5", 2.5),
        ("test.name", "hello world", "hello world", "hello world"),
        ("test.blob", "cafe", "cafe", b"\xca\xfe"),
        ("test.doc", '{"k": [1, 2]}', '{\n  "k": [\n    1,\n    2\n  ]\n}', {"k": [1, 2]}),
    ],
)
def test_set_parses_value_by_field_type(
    node: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str],
    field: str, text: str, printed: str, stored: Any,
) -> None:
    data_dir, state = node
    assert ctl(capsys, data_dir, "set", field, text) == (0, printed + "\n", "")
    assert state[field] == stored


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set", "cfg.upload_limit_kbps", "fast"), "cfg.upload_limit_kbps is int: cannot parse 'fast'"),
        (("set", "cfg.p2p_enabled", "maybe"), "expected true/false"),
        (("set", "test.doc", "{"), "is json: cannot parse"),
        (("set", "peer.count", "3"), "field 'peer.count' is read-only"),
        (("set", "cfg.max_connections", "-1"), "the node says: cfg.max_connections: must be >= 0"),
        (("get", "no.such.field"), "unknown field 'no.such.field'"),
        (("get", "x" * 40), "unknown field"),
        (("get", "test.boom"), "the node says: test.boom: internal error"),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(
    node: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...], message: str,
) -> None:
    data_dir, _ = node
    code, out, err = ctl(capsys, data_dir, *args)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message in err


def test_list_shows_every_field_with_type_settable_and_value(
    node: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, _ = node
    code, out, _ = ctl(capsys, data_dir, "list")
    assert code == 0
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 4}
    assert {"node.id", "peer.count", "cfg.p2p_enabled", "meta.fields", "test.boom"} <= set(lines)
    assert "yes" in lines["cfg.upload_limit_kbps"] and " int " in lines["cfg.upload_limit_kbps"]
    assert "yes" not in lines["peer.count"]
    assert "internal error" in lines["test.boom"]  # one broken getter does not spoil the list


def test_list_json(node: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    data_dir, _ = node
    code, out, _ = ctl(capsys, data_dir, "list", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert code == 0
    assert rows["peer.count"] == {"name": "peer.count", "type": "int", "settable": False, "value": 7}
    assert rows["test.blob"]["type"] == "bytes" and isinstance(rows["test.blob"]["value"], str)
    assert "error" in rows["test.boom"]


def test_default_socket_comes_from_the_data_dir(
    node: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, _ = node
    assert main(["ctl", "--data-dir", os.fspath(data_dir), "get", "peer.count"]) == 0
    assert capsys.readouterr().out == "7\n"


def test_default_socket_path_follows_the_node_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("P2PKIT_NODE__REPEATER", raising=False)
    monkeypatch.delenv("P2PKIT_NODE__DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", os.fspath(tmp_path))
    assert default_socket_path() == tmp_path / "p2pkit" / "default" / "repeater.sock"
    assert default_socket_path(profile="alt") == tmp_path / "p2pkit" / "alt" / "repeater.sock"
    assert default_socket_path(data_dir="/srv/d") == Path("/srv/d/repeater.sock")
    monkeypatch.setenv("P2PKIT_NODE__REPEATER", "/run/x.sock")
    assert default_socket_path(data_dir="/srv/d") == Path("/run/x.sock")


def test_no_node_running_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="p2pk-") as name:
        code = main(["ctl", "--data-dir", name, "get", "peer.count"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: no p2pkit node is answering on ") and err.count("\n") == 1


# ---------------------------------------------------------------------------- end to end


def _p2pkit(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from p2pkit.cli import main; sys.exit(main())",
            *args]


def test_ctl_against_a_real_node_process() -> None:
    """``p2pkit node`` in one process, ``p2pkit ctl`` in others, as a user would."""
    with tempfile.TemporaryDirectory(prefix="p2pk-") as name:
        data_dir = Path(name)
        env = {k: v for k, v in os.environ.items() if not k.startswith("P2PKIT_")}
        node = subprocess.Popen(
            _p2pkit("node", "--port", "0", "--data-dir", name),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        )
        try:
            sock = data_dir / "repeater.sock"
            deadline = time.monotonic() + 60
            while not sock.exists():
                assert node.poll() is None, node.stderr.read().decode() if node.stderr else ""
                assert time.monotonic() < deadline, "node did not start its repeater"
                time.sleep(0.1)

            def run(*args: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run(_p2pkit("ctl", "--data-dir", name, *args), env=env,
                                      capture_output=True, text=True, timeout=60)

            got = run("get", "node.id")
            assert got.returncode == 0, got.stderr
            assert len(got.stdout.strip()) == 64
            assert run("set", "cfg.upload_limit_kbps", "256").stdout == "256\n"
            assert run("get", "cfg.upload_limit_kbps").stdout == "256\n"
            listing = run("list", "--json")
            names = {row["name"] for row in json.loads(listing.stdout)}
            assert {"node.id", "node.version", "peer.count", "net.up_rate", "net.down_rate",
                    "net.bytes_sent", "net.bytes_received", "cfg.p2p_enabled",
                    "cfg.upload_limit_kbps", "cfg.cache_limit_mb", "meta.fields"} <= names
            bad = run("set", "cfg.p2p_enabled", "perhaps")
            assert bad.returncode == 1 and bad.stderr.startswith("error:")
        finally:
            node.terminate()
            node.wait(30)
            if node.stderr:
                node.stderr.close()
        assert not sock.exists()  # the node removed its socket on the way out
