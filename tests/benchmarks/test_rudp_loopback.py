"""The loopback benchmark: real processes, one JSON object as the last line."""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.seeds import ROOT


def test_rudp_alone_ends_with_its_json_line() -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.rudp_loopback", "--quick", "--only-rudp"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["bytes"] == 64 * 1024 * 1024
    assert report["rudp_MBps"] > 0 and report["rudp_MBps_per_cpu"] > 0
    assert "tcp_MBps" not in report and "rudp_vs_tcp" not in report  # nothing it did not measure
