"""Real ``p2pkit`` processes on 127.0.0.1 for end-to-end tests.

Every wait is bounded: a bug fails a test, it never hangs one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
P2PKIT = [sys.executable, "-c", "import sys; from p2pkit.cli import main; sys.exit(main())"]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")  # tests.e2e plugins
    e["COLUMNS"] = "200"  # rich: keep lines whole so they can be matched
    e.pop("P2PKIT_NODE__PORT", None)
    return e


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_wav(path: Path, seconds: float, *, seed: int, rate: int = 22050) -> Path:
    """A WAV of noise (16-bit mono): real media the store accepts, unique per seed."""
    rng = random.Random(seed)
    frames = int(seconds * rate)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(rng.randbytes(frames * 2))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class NodeProc:
    """``p2pkit node`` in its own process, output in a log file."""

    def __init__(self, tmp: Path, name: str, *, args: Sequence[str] = (), port: int | None = None,
                 bootstrap: Sequence[int] = (), share: Sequence[Path] = (),
                 command: Sequence[str] | None = None) -> None:
        self.name = name
        self.port = port or free_udp_port()
        self.data_dir = tmp / name
        self.log_path = tmp / f"{name}.log"
        argv = [*(command or [*P2PKIT, "node"]), "--host", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(self.data_dir), "--repeater", "off", "--log-level", "info"]
        for p in bootstrap:
            argv += ["--bootstrap", f"127.0.0.1:{p}"]
        for f in share:
            argv += ["--share", str(f)]
        argv += list(args)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.PIPE, env=env(), cwd=ROOT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log())
            if found:
                return found
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"{self.name}: {pattern!r} not seen in {timeout} s:\n{self.log()[-3000:]}")

    def shared_rids(self, count: int = 1, timeout: float = 60.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rids = re.findall(r"shared\s+([0-9a-f]{64})", self.log())
            if len(rids) >= count:
                return rids
            time.sleep(0.1)
            if self.proc.poll() is not None:
                break
        raise AssertionError(f"{self.name} did not share {count} file(s):\n{self.log()[-3000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        self._log.close()


def run(args: Sequence[str], *, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run a one-shot ``p2pkit`` command to completion (killed after ``timeout``)."""
    return subprocess.run([*P2PKIT, *args], capture_output=True, text=True, timeout=timeout,
                          env=env(), cwd=ROOT, check=False)


class Background:
    """A one-shot ``p2pkit`` command running in the background (``get`` to be killed)."""

    def __init__(self, tmp: Path, name: str, args: Sequence[str]) -> None:
        self.log_path = tmp / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen([*P2PKIT, *args], stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env(), cwd=ROOT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._log.close()


def files(bootstrap_port: int, *, timeout: float = 15.0) -> list[dict[str, Any]]:
    result = run(["files", "--bootstrap", f"127.0.0.1:{bootstrap_port}", "--json",
                  "--timeout", str(timeout)], timeout=timeout + 30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
