"""Shared pieces of the repeater tests: a registry like a node's, and a real server.

The server always runs for real on a temporary Unix socket: either inside the test's own
trio run (``served``) or in a background thread with its own ``trio.run`` (``ThreadedServer``),
which lets synchronous tests (hypothesis, the blocking client, the CLI) talk to it.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pkit.fields import Field, FieldRegistry, FieldType
from p2pkit.repeater.protocol import MAX_BODY
from p2pkit.repeater.server import RepeaterStats, serve_repeater

NODE_ID = "ab" * 32


def make_registry(values: dict[str, Any] | None = None) -> tuple[FieldRegistry, dict[str, Any]]:
    """A registry with the node's fields plus one settable field of every type."""
    state: dict[str, Any] = {
        "peer.count": 7,
        "net.up_rate": 1234.5,
        "net.down_rate": 0.0,
        "net.bytes_sent": 2**40,
        "net.bytes_received": 0,
        "cfg.p2p_enabled": True,
        "cfg.upload_limit_kbps": 0,
        "cfg.cache_limit_mb": 2048,
        "cfg.max_connections": 50,
        "test.name": "héllo",
        "test.ratio": 0.25,
        "test.blob": b"\x00\x01\xff",
        "test.doc": {"a": [1, 2.5, None, True], "b": "ü"},
        "test.neg": -5,
    }
    state.update(values or {})
    registry = FieldRegistry()

    def getter(name: str) -> Any:
        return state[name]

    def setter(name: str, value: Any) -> None:
        state[name] = value

    def non_negative(value: int) -> None:
        if value < 0:
            raise ValueError("must be >= 0")

    registry.register(Field("node.id", FieldType.STR, lambda: NODE_ID))
    registry.register(Field("node.version", FieldType.STR, lambda: "0.1.0"))
    for name, ftype in [
        ("peer.count", FieldType.INT),
        ("net.up_rate", FieldType.FLOAT),
        ("net.down_rate", FieldType.FLOAT),
        ("net.bytes_sent", FieldType.INT),
        ("net.bytes_received", FieldType.INT),
    ]:
        registry.register(Field(name, ftype, partial(getter, name)))
    for name, ftype, validate in [
        ("cfg.p2p_enabled", FieldType.BOOL, None),
        ("cfg.upload_limit_kbps", FieldType.INT, non_negative),
        ("cfg.cache_limit_mb", FieldType.INT, non_negative),
        ("cfg.max_connections", FieldType.INT, non_negative),
        ("test.name", FieldType.STR, None),
        ("test.ratio", FieldType.FLOAT, None),
        ("test.blob", FieldType.BYTES, None),
        ("test.doc", FieldType.JSON, None),
        ("test.neg", FieldType.INT, None),
    ]:
        registry.register(
            Field(name, ftype, partial(getter, name), partial(setter, name), validate)
        )

    def boom() -> int:
        raise RuntimeError("sensor on fire")

    registry.register(Field("test.boom", FieldType.INT, boom))
    registry.register(Field("test.huge", FieldType.BYTES, lambda: bytes(MAX_BODY + 1)))
    registry.register(Field("meta.fields", FieldType.JSON, registry.describe))
    return registry, state


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Not tmp_path: sun_path is limited to 108 bytes and pytest's paths can be long.
    with tempfile.TemporaryDirectory(prefix="p2pk-") as name:
        yield Path(name)


class ThreadedServer:
    """``serve_repeater`` in a background thread with its own trio run."""

    def __init__(self, registry: FieldRegistry, path: Path, frame_timeout: float) -> None:
        self.registry = registry
        self.path = path
        self.frame_timeout = frame_timeout
        self.stats: RepeaterStats | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="repeater-server", daemon=True)

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        assert self._ready.wait(10), "repeater server did not start"
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc_info: object) -> None:
        trio.from_thread.run_sync(self._cancel_scope.cancel, trio_token=self._token)
        self._thread.join(10)
        assert not self._thread.is_alive(), "repeater server did not stop"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:
            self.error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self._cancel_scope = nursery.cancel_scope
            self.stats = await nursery.start(
                partial(serve_repeater, self.registry, self.path, frame_timeout=self.frame_timeout)
            )
            self._ready.set()


@pytest.fixture
async def served(sock_dir: Path, nursery: trio.Nursery) -> AsyncIterator[tuple[Path, RepeaterStats, dict[str, Any]]]:
    """A server inside this test's trio run: (socket path, stats, the fields' state)."""
    registry, state = make_registry()
    path = sock_dir / "repeater.sock"
    stats = await nursery.start(serve_repeater, registry, path)
    yield path, stats, state
