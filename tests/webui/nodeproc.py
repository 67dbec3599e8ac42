"""Real ``p2pkit web`` processes for end-to-end tests: start, find their URL, stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

STACK = ["--plugin", "p2pkit.plugins.rudp", "--plugin", "p2pkit.plugins.flooding",
         "--plugin", "p2pkit.plugins.swarm", "--set", "node.discovery=flooding"]
URL_RE = re.compile(r"web UI: (\S+)")


class NodeProcess:
    def __init__(self, data_dir: Path, *extra: str, stack: bool = True) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.out = data_dir / "stdout.txt"
        self.err = data_dir / "stderr.txt"
        args = [sys.executable, "-m", "p2pkit.cli", "web", "--port", "0", "--http-port", "0",
                "--udp-host", "127.0.0.1", "--data-dir", str(data_dir), "--repeater", "off",
                *(STACK if stack else []), *extra]
        env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err, env=env)
        self.url = self._wait_for_url()
        self.base = self.url.split("?", 1)[0].rstrip("/")

    def _wait_for_url(self, limit: float = 60.0) -> str:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            match = URL_RE.search(self.out.read_text(errors="replace"))
            if match:
                return match.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"p2pkit web did not start:\n{self.err.read_text(errors='replace')[-3000:]}")

    def api(self, path: str, **kwargs: object) -> httpx.Response:
        return httpx.request(kwargs.pop("method", "GET"), self.base + path, timeout=10, **kwargs)  # type: ignore[arg-type]

    @property
    def udp_port(self) -> int:
        return int(self.api("/api/node").json()["udp"].rsplit(":", 1)[1])

    @property
    def node_id(self) -> str:
        return str(self.api("/api/node").json()["id"])

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode
