"""The p2pkit command as a user runs it: real subprocesses, one-line errors, clean exits."""

import os
import signal
import socket
import subprocess
import sys
import threading
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
    assert result.stderr.startswith("usage: p2pkit node ")  # the command's usage, not p2pkit's


@pytest.mark.parametrize("words", [["files", "--bogus"], ["search", "q", "--bogus"],
                                   ["sim", "run", "x.toml", "--bogus"], ["web", "--bogus", "1"]])
def test_an_unknown_flag_shows_the_usage_of_the_command_it_was_given_to(
        words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from p2pkit.cli import main

    with pytest.raises(SystemExit) as exited:
        main(words)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    command = " ".join(w for w in words if not w.startswith("-") and w not in ("q", "x.toml", "1"))
    assert err.startswith(f"usage: p2pkit {command} ")
    assert err.rstrip().endswith("unrecognized arguments: " + " ".join(words[words.index("--bogus"):]))


def wait_for_socket(proc: subprocess.Popen[str], sock: Path) -> None:
    """Until the node ``proc`` runs its repeater at ``sock`` (it is up)."""
    assert proc.stderr is not None  # stderr=PIPE
    deadline = time.monotonic() + 30
    while not sock.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "node did not start"
        time.sleep(0.05)


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
        wait_for_socket(proc, sock)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert not sock.exists()  # the repeater removed its socket on the way out
    identity = (tmp_path / "identity.key").read_bytes()
    assert len(identity) == 32


def test_more_stop_signals_while_the_node_stops_still_exit_zero(tmp_path: Path) -> None:
    # a second SIGTERM that came while the interpreter wound down, after the node had
    # taken its leave, killed the process: exit -15 for a clean stop
    sock = tmp_path / "r.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2pkit", "node", "--host", "127.0.0.1", "--port", "0",
         "--data-dir", str(tmp_path), "--repeater", str(sock)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "node did not start"
            time.sleep(0.05)
        while proc.poll() is None and time.monotonic() < deadline:  # until it is gone
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.005)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and err.count("stopping…") == 1


def silent_wav(path: Path) -> Path:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(16000))
    return path


def node_output_until(prefix: str, data_dir: Path, *args: str) -> list[str]:
    """Run ``p2pkit node`` until a stderr line starts with ``prefix``, stop it (SIGTERM,
    exit 0 checked); its stderr lines (the console: node summary, shares, logs)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2pkit", "node", "--host", "127.0.0.1", "--port", "0",
         "--data-dir", str(data_dir), "--repeater", "off", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "300", "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None  # stderr=PIPE
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while not any(line.startswith(prefix) for line in lines):
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, f"no line {prefix!r}"
            lines.append(line)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "Traceback" not in "".join(lines) + err, err
    return lines + err.splitlines(keepends=True)


def test_shared_file_names_are_printed_as_they_are(tmp_path: Path) -> None:
    """A name with brackets is not rich markup: '[live]' must not vanish, '[bold]' must
    not restyle the line."""
    media = silent_wav(tmp_path / "song [live] [bold].wav")
    lines = node_output_until("  shared ", tmp_path / "data", "--share", str(media))
    assert "song [live] [bold].wav" in next(line for line in lines if line.startswith("  shared "))


def test_a_restarted_node_says_what_it_still_shares_and_unshare_stops_it(tmp_path: Path) -> None:
    # a share stays across restarts; the restarted node said nothing of it, and nothing
    # but a script or the web UI could stop it
    media = silent_wav(tmp_path / "kept.wav")
    data = tmp_path / "data"
    first = node_output_until("  shared ", data, "--share", str(media))
    rid = next(line for line in first if line.startswith("  shared ")).split()[1]
    again = node_output_until("  sharing ", data)
    assert any(line.split()[:3] == ["sharing", rid, "kept.wav"] for line in again)
    media.write_bytes(media.read_bytes()[:-100])  # changed since it was shared: not served
    changed = node_output_until("  broken ", data)
    assert any(line.split()[:3] == ["broken", rid, "kept.wav"] for line in changed)
    assert not any(line.startswith("  sharing ") for line in changed)
    stopped = node_output_until("  unshared ", data, "--unshare", rid.upper())
    assert not any(line.startswith("  sharing ") for line in stopped)
    result = p2pkit("node", "--port", "0", "--data-dir", str(data), "--unshare", "nope")
    assert result.returncode == 2 and "not a content id" in result.stderr


@pytest.mark.parametrize(("signum", "code", "said"), [
    (signal.SIGINT, 130, "error: interrupted"),
    # kill, timeout, systemd: the default action ended it where it stood (143, without a
    # word) and left its temporary store, partial content included, in $TMPDIR for good
    (signal.SIGTERM, 143, "error: terminated"),
])
def test_an_interrupted_one_shot_command_does_not_exit_zero(
        tmp_path: Path, signum: signal.Signals, code: int, said: str) -> None:
    # `p2pkit get … && play it` went on after Ctrl-C: the download had not finished
    temp = tmp_path / "tmp"
    temp.mkdir()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:  # a port nobody answers on
        quiet.bind(("127.0.0.1", 0))
        port = quiet.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "p2pkit", "get", "ab" * 32, "--bootstrap", f"127.0.0.1:{port}",
             "--quiet", "-o", str(tmp_path / "out.wav")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "TMPDIR": str(temp)},
        )
        try:
            time.sleep(3)  # well inside the 60 s it would wait for a provider
            assert proc.poll() is None
            assert any(temp.iterdir())  # its store is there while it runs
            proc.send_signal(signum)
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == code, err
    assert said in err and "Traceback" not in err
    assert not (tmp_path / "out.wav").exists()
    assert list(temp.iterdir()) == []


def test_lines_a_script_reads_are_neither_wrapped_nor_markup() -> None:
    from p2pkit.cli import console, print_error, print_line

    name = "a/very/long/path/" * 8 + "song [live].wav"  # 150 characters, a console of 80
    with console.capture() as captured:
        print_line(f"saved {name} (sha256 {'f' * 64})")
        print_error(f"cannot write {name}")
    assert captured.get().splitlines() == [f"saved {name} (sha256 {'f' * 64})",
                                           f"error: cannot write {name}"]


@pytest.mark.parametrize(("output", "why"), [
    ("fifo", "exists and is not a regular file"),   # `-o /dev/null` as root replaced it
    ("missing/", "no such directory"),              # the trailing slash says: a directory
    ("missing/x.wav", "no such directory"),
    ("notes.txt/x.wav", "no such directory"),
])
def test_an_output_that_cannot_be_written_is_refused_before_downloading(
        tmp_path: Path, output: str, why: str) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "notes.txt").write_text("a file")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:
        quiet.bind(("127.0.0.1", 0))
        result = p2pkit("get", "ab" * 32, "--bootstrap", f"127.0.0.1:{quiet.getsockname()[1]}",
                        "-o", output, cwd=tmp_path)
    # 2 and the path's fault, not 1 after the wait for a provider that never answers
    assert result.returncode == 2, result.stderr
    assert_one_line_error(result, why)


def test_a_rid_in_capitals_is_the_same_rid_and_a_bad_one_a_usage_error() -> None:
    rid = "AB" * 32  # as a person copies it out of some other tool
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:
        quiet.bind(("127.0.0.1", 0))
        bootstrap = f"127.0.0.1:{quiet.getsockname()[1]}"
        result = p2pkit("get", rid, "--bootstrap", bootstrap, "--timeout", "1", "--quiet")
        assert result.returncode == 1, result.stderr  # accepted, and then nobody answered
        assert_one_line_error(result, "no peer answered at " + bootstrap)
        # refused before any peer was asked: not "no peer answered"
        result = p2pkit("get", rid, "--bootstrap", bootstrap, "--timeout", "1", "--quiet",
                        "--set", "cfg.p2p_enabled=false")
        assert result.returncode == 1 and "no peer answered" not in result.stderr
        assert_one_line_error(result, "peer-to-peer transfer is switched off")
        result = p2pkit("get", rid[:-1], "--bootstrap", bootstrap)
    assert result.returncode == 2
    assert_one_line_error(result, "is not a content id (64 hex digits)")


def test_a_share_file_that_is_not_there_is_refused_before_the_node_starts(tmp_path: Path) -> None:
    # the node started, announced itself, and only then said the file was missing
    for command in ("node", "web"):
        result = p2pkit(command, "--host", "127.0.0.1", "--port", "0", "--data-dir", str(tmp_path / command),
                        "--share", str(tmp_path / "missing.wav"))
        assert result.returncode == 2
        assert_one_line_error(result, "--share")
        assert "no such file" in result.stderr and "p2pkit node" not in result.stderr
    result = p2pkit("node", "--port", "0", "--data-dir", str(tmp_path / "d"), "--share", str(tmp_path))
    assert result.returncode == 2 and "not a regular file" in result.stderr


def test_a_share_that_is_not_media_is_refused_before_the_node_starts_and_shares_nothing(
    tmp_path: Path,
) -> None:
    # `node --share good.wav --share notes.txt` started, announced itself, then failed on
    # notes.txt — and good.wav stayed shared for good: the next start said "sharing" it
    good = silent_wav(tmp_path / "good.wav")
    notes = tmp_path / "notes.txt"
    notes.write_text("just some notes\n")
    data = tmp_path / "data"
    result = p2pkit("node", "--host", "127.0.0.1", "--port", "0", "--data-dir", str(data),
                    "--repeater", "off", "--share", str(good), "--share", str(notes))
    assert result.returncode == 2
    assert_one_line_error(result, "--share")
    assert "notes.txt: not an audio, video or image file" in result.stderr
    assert "p2pkit node" not in result.stderr  # refused before it started
    again = node_output_until("  providers ", data)
    assert not any("good.wav" in line for line in again)


async def test_shares_made_before_one_that_fails_are_undone(tmp_path: Path) -> None:
    # whatever refuses a later file (a store other than the built-in, a file that changed
    # since it was checked), the command fails and leaves nothing shared by it
    from p2pkit import open_node
    from p2pkit.cli import share_files
    from p2pkit.config import NodeConfig

    kept, good = silent_wav(tmp_path / "kept.wav"), silent_wav(tmp_path / "good.wav")
    good.write_bytes(good.read_bytes() + b"\0\0")  # another file's content
    notes = tmp_path / "notes.txt"
    notes.write_text("just some notes\n")
    config = NodeConfig.from_mapping({"node": {
        "host": "127.0.0.1", "port": 0, "data_dir": str(tmp_path / "data"), "repeater": "off"}})
    async with open_node(config) as node:
        await share_files(node, [kept])
        with pytest.raises(Exception, match="not an audio, video or image file"):
            await share_files(node, [kept, good, notes])
        assert [item.name for item in node.store.items() if item.pinned] == ["kept.wav"]


def test_the_node_shows_notices_on_its_console(tmp_path: Path) -> None:
    # store.md: a storage limit below what cannot be evicted "is kept, and said: a Notice
    # (warning)" — said only to the web UI: `p2pkit node`'s terminal showed nothing
    media = tmp_path / "big.wav"
    silent_wav(media)
    media.write_bytes(media.read_bytes() + bytes(1 << 21))  # 2 MiB more of silence
    data, sock = tmp_path / "data", tmp_path / "r.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2pkit", "node", "--host", "127.0.0.1", "--port", "0",
         "--data-dir", str(data), "--repeater", str(sock), "--set", "store.copy_shares=true",
         "--share", str(media)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "300", "PYTHONUNBUFFERED": "1"},
    )
    watchdog = threading.Timer(60, proc.kill)  # a line that never comes ends the reads
    watchdog.start()
    try:
        assert proc.stderr is not None  # stderr=PIPE
        lines: list[str] = []
        while not any(line.startswith("  shared ") for line in lines):
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        result = p2pkit("ctl", "--socket", str(sock), "set", "cfg.cache_limit_mb", "1")
        assert result.returncode == 0, result.stderr
        while not any(line.startswith("warning: ") for line in lines):
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        watchdog.cancel()
        proc.kill()
    notice = next(line for line in lines if line.startswith("warning: "))
    assert notice.startswith("warning: store: cfg.cache_limit_mb 1 is below what shared copies")
    assert "Traceback" not in "".join(lines)


@pytest.mark.parametrize("command", [["version"], ["sim", "list"]])
def test_a_reader_that_leaves_early_ends_the_command_quietly(command: list[str]) -> None:
    # `p2pkit files | head -1`: exit 0 or 1 by how much output the pipe took before head
    # left, sometimes "error: Broken pipe". Here the reader is gone before anything is
    # written: print() (version) and a rich table (sim list) both end it the same way.
    proc = subprocess.Popen([sys.executable, "-m", "p2pkit", *command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None  # stdout=PIPE
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (0, "")


def test_a_broken_pipe_that_is_not_the_output_is_still_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    # a peer's socket closing under a command is a failure, not a reader that had enough
    from p2pkit import _cli, cli

    def failing(args: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(_cli, "cmd_version", failing)
    assert cli.main(["version"]) == 1
    assert "error: Broken pipe" in capsys.readouterr().err


CTRL_C_WHILE_IMPORTING = """
import sys

class CtrlC:  # a Ctrl-C that comes while the command line's modules load
    def find_spec(self, name, path=None, target=None):
        if name == "p2pkit._cli":
            raise KeyboardInterrupt

sys.meta_path.insert(0, CtrlC())
from p2pkit.cli import main  # what the console script runs
sys.exit(main(["version"]))
"""


def test_ctrl_c_while_the_command_is_still_importing_is_one_line() -> None:
    # Ctrl-C in the first ~0.3 s printed a KeyboardInterrupt traceback through the imports
    result = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_IMPORTING], capture_output=True,
                            text=True, timeout=60)
    assert (result.returncode, result.stderr) == (130, "error: interrupted\n")


def test_the_names_the_package_and_the_cli_had_before_they_loaded_lazily_are_there() -> None:
    # `import p2pkit; p2pkit.config` and `from p2pkit.cli import LOG_LEVELS` broke when
    # their names began to load on first use
    code = ("import p2pkit\n"
            "assert p2pkit.config.NodeConfig is p2pkit.NodeConfig\n"
            "from p2pkit.cli import LOG_LEVELS\n"
            "assert 'info' in LOG_LEVELS\n"
            "try:\n    p2pkit.no_such_thing\nexcept AttributeError:\n    print('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")


def installed_plugins(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python finds three entry-point plugins: ``broken`` (its import
    fails), ``badcli`` (its command hook raises) and ``hello`` (adds ``p2pkit hello``)."""
    (tmp_path / "brokenmod.py").write_text('raise ImportError("needs libfoo >= 2")\n')
    (tmp_path / "badclimod.py").write_text(
        "from p2pkit import hookimpl\n"
        "class P:\n"
        "    @hookimpl\n"
        "    def p2pkit_cli_commands(self, subparsers):\n"
        "        subparsers.add_parser('half-added')\n"
        "        raise RuntimeError('oops')\n"
        "plugin = P()\n")
    (tmp_path / "hellomod.py").write_text(
        "from p2pkit import hookimpl\n"
        "class P:\n"
        "    @hookimpl\n"
        "    def p2pkit_cli_commands(self, subparsers):\n"
        "        subparsers.add_parser('hello').set_defaults(func=lambda args: print('hi') or 0)\n"
        "plugin = P()\n")
    info = tmp_path / "plugs-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugs\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[p2pkit.plugins]\nbroken = brokenmod:plugin\nbadcli = badclimod:plugin\nhello = hellomod:plugin\n")
    return {**os.environ, "PYTHONPATH": str(tmp_path), "COLUMNS": "300"}


def test_a_broken_plugin_leaves_out_its_commands_and_no_others(tmp_path: Path) -> None:
    # a broken entry point made every command exit 2, `version` and `ctl` too
    env = installed_plugins(tmp_path)
    for words in (["version"], ["ctl", "--help"], ["hello"]):
        result = p2pkit(*words, env=env)
        assert result.returncode == 0, result.stderr
        assert "warning: plugin 'broken' left out (its commands are missing)" in result.stderr
        assert "needs libfoo >= 2" in result.stderr and "P2PKIT_NODE__DISABLE=broken" in result.stderr
        assert "warning: plugin 'badcli' left out" in result.stderr and "oops" in result.stderr
    assert "hi" in p2pkit("hello", env=env).stdout
    result = p2pkit("half-added", env=env)  # what the failing hook had added is gone
    assert result.returncode == 2 and "invalid choice: 'half-added'" in result.stderr


def test_the_disable_list_from_the_environment_or_set_silences_a_broken_plugin(tmp_path: Path) -> None:
    env = {**installed_plugins(tmp_path), "P2PKIT_NODE__DISABLE": "broken,badcli"}
    result = p2pkit("version", env=env)
    assert (result.returncode, result.stderr) == (0, "")
    # --set node.disable=… rescues a node as P2PKIT_NODE__DISABLE does (open_node honoured
    # it, but the command line had failed before it read any config)
    sock = tmp_path / "r.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2pkit", "node", "--host", "127.0.0.1", "--port", "0",
         "--data-dir", str(tmp_path / "data"), "--repeater", str(sock),
         "--set", "node.disable=broken,badcli"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=installed_plugins(tmp_path))
    try:
        wait_for_socket(proc, sock)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "warning" not in err and "error" not in err


def test_a_flag_missing_its_value_shows_the_command_s_usage() -> None:
    # the early read of [node] disable exited with its own parser's usage
    # ("usage: p2pkit [--config CONFIG] [--set ASSIGNMENTS]")
    result = p2pkit("node", "--config")
    assert result.returncode == 2
    assert "usage: p2pkit node" in result.stderr and "Traceback" not in result.stderr
