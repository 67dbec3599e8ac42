"""The store in a real ``p2pkit node`` process: shares at start, fields through the
repeater socket, the limit from ``cfg.cache_limit_mb``, and ``kill -9`` then restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from p2pkit.repeater.client import RepeaterClient

P2PKIT = [sys.executable, "-c", "import sys; from p2pkit.cli import main; sys.exit(main())"]
MIB = 1024 * 1024


@contextmanager
def node_process(data_dir: Path, *args: str) -> Iterator[RepeaterClient]:
    """A node with its repeater; yields a client once ``store.items`` answers."""
    env = dict(os.environ)
    env.pop("P2PKIT_NODE__PORT", None)
    proc = subprocess.Popen(
        [*P2PKIT, "node", "--data-dir", str(data_dir), "--port", "0", "--host", "127.0.0.1",
         "--log-level", "warning", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )
    sock = data_dir / "repeater.sock"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"node exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            if sock.exists():
                try:
                    with RepeaterClient(sock, timeout=5) as probe:
                        probe.get("store.items")
                    break
                except Exception:  # not ready yet (socket or fields still being set up)
                    pass
            if time.monotonic() > deadline:
                raise AssertionError("node did not come up within 60 s")
            time.sleep(0.1)
        with RepeaterClient(sock, timeout=10) as client:
            client.proc = proc  # type: ignore[attr-defined]
            yield client
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


@pytest.mark.slow
def test_node_process_store_fields_limit_and_kill9(tmp_path: Path, makers: dict[str, Callable[..., Path]]) -> None:
    wav = makers["wav"](tmp_path / "tone.wav", seconds=4.0)
    png = makers["png"](tmp_path / "pic.png")
    data = tmp_path / "data"
    expected = wav.stat().st_size + png.stat().st_size
    with node_process(data, "--share", str(wav), "--share", str(png),
                      "--set", "store.copy_shares=true", "--set", "cfg.cache_limit_mb=64") as node:
        wait_for(lambda: node.get("store.items") == 2)
        assert node.get("store.used_bytes") == expected
        assert node.get("store.limit_bytes") == 64 * MIB
        node.set("cfg.cache_limit_mb", 3)  # through the repeater, as `p2pkit ctl set` does
        assert node.get("store.limit_bytes") == 3 * MIB
        assert node.get("store.items") == 2  # own shares are pinned: nothing evicted
        os.kill(node.proc.pid, signal.SIGKILL)  # type: ignore[attr-defined]
    wav.unlink()  # copies were made: the store does not need the originals any more
    with node_process(data) as node:
        assert node.get("store.items") == 2
        assert node.get("store.limit_bytes") == 3 * MIB  # the setting persisted
        assert node.get("store.used_bytes") == expected
