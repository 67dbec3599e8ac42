"""Client behaviour a user notices: thread safety, timeouts, and servers that misbehave."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio

import p2pkit.repeater as repeater
from p2pkit.repeater import (
    AsyncRepeaterClient,
    RepeaterClient,
    RepeaterRemoteError,
    RepeaterUnavailable,
)
from p2pkit.repeater.protocol import FuncType, encode_frame

from .conftest import ThreadedServer, make_registry


def test_public_names() -> None:
    assert sorted(repeater.__all__) == sorted(
        ["AsyncRepeaterClient", "FieldInfo", "RepeaterAddressInUse", "RepeaterClient",
         "RepeaterError", "RepeaterRemoteError", "RepeaterStats", "RepeaterUnavailable",
         "serve_repeater"]
    )


@pytest.fixture
def threaded() -> Iterator[Path]:
    registry, _ = make_registry()
    with tempfile.TemporaryDirectory(prefix="p2pk-") as name:
        path = Path(name) / "r.sock"
        with ThreadedServer(registry, path, frame_timeout=5):
            yield path


def test_one_blocking_client_shared_by_many_threads(threaded: Path) -> None:
    errors: list[BaseException] = []
    with RepeaterClient(threaded) as client:

        def worker(i: int) -> None:
            try:
                for _ in range(40):
                    assert client.get("peer.count") == 7
                    assert client.get("node.version") == "0.1.0"
                    assert client.set("test.name", f"t{i}").startswith("t")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert errors == []


def test_error_reply_keeps_the_connection_usable(threaded: Path) -> None:
    with RepeaterClient(threaded) as client:
        with pytest.raises(RepeaterRemoteError) as info:
            client.get("no.such")
        assert info.value.field == "no.such"
        assert client.get("peer.count") == 7


def test_no_reply_in_time_is_unavailable(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="p2pk-") as name:
        path = os.path.join(name, "mute.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
            mute.bind(path)
            mute.listen(1)  # accepts into the backlog, never answers
            with RepeaterClient(path, timeout=0.2) as client, \
                    pytest.raises(RepeaterUnavailable, match=r"no reply within 0\.2 s"):
                client.get_raw("peer.count")


async def _fake_server(path: Path, reply: Callable[[bytes], bytes], nursery: trio.Nursery) -> None:
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(os.fspath(path))
    sock.listen(4)

    async def run() -> None:
        with sock:
            while True:
                conn, _ = await sock.accept()
                async with trio.SocketStream(conn) as stream:
                    request = await stream.receive_some(65536)
                    await stream.send_all(reply(request))

    nursery.start_soon(run)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (lambda req: b"\x09" + bytes(40), "malformed reply: unknown func_type 9"),
        (lambda req: encode_frame(FuncType.GET, "other.field", bytes(8)), "does not match"),
        (lambda req: encode_frame(FuncType.SET, "peer.count", bytes(8)), "does not match"),
        (lambda req: encode_frame(FuncType.GET, "peer.count", bytes(8))[:40],
         "closed in the middle of a reply"),
        (lambda req: struct.pack(">B32sI", 1, b"peer.count", 2**31), "malformed reply"),
    ],
)
async def test_a_misbehaving_server_is_a_clear_error(
    nursery: trio.Nursery, reply: Callable[[bytes], bytes], message: str
) -> None:
    with tempfile.TemporaryDirectory(prefix="p2pk-") as name:
        path = Path(name) / "fake.sock"
        await _fake_server(path, reply, nursery)
        async with AsyncRepeaterClient(path) as client:
            with pytest.raises(RepeaterUnavailable, match=message):
                await client.get_raw("peer.count")
        nursery.cancel_scope.cancel()


async def test_typed_get_of_a_malformed_value_is_a_clear_error(nursery: trio.Nursery) -> None:
    import json

    catalogue = json.dumps([{"name": "peer.count", "type": "int", "settable": False}]).encode()

    def reply(request: bytes) -> bytes:
        name = request[1:33].rstrip(b"\x00").decode()
        body = catalogue if name == "meta.fields" else b"\x01\x02"  # an int must be 8 bytes
        return encode_frame(FuncType.GET, name, body)

    with tempfile.TemporaryDirectory(prefix="p2pk-") as name:
        path = Path(name) / "fake.sock"
        await _fake_server(path, reply, nursery)
        async with AsyncRepeaterClient(path) as client:
            with pytest.raises(repeater.RepeaterError, match=r"peer\.count: malformed reply: wrong value size"):
                await client.get("peer.count")
        nursery.cancel_scope.cancel()


async def test_a_cancelled_call_does_not_leave_its_reply_for_the_next_one(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock,
) -> None:
    """A call cancelled while waiting (move_on_after around it) must not leave the
    connection one reply behind: the next call would read the old answer as its own."""
    values = {"x.a": 1, "x.b": 2}

    with tempfile.TemporaryDirectory(prefix="p2pk-") as name:
        path = Path(name) / "slow.sock"
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(os.fspath(path))
        sock.listen(4)

        async def serve_one(stream: trio.SocketStream) -> None:
            async with stream:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    while request := await stream.receive_some(37):  # a GET is 37 bytes
                        field = request[1:33].rstrip(b"\x00").decode()
                        await trio.sleep(1.0)  # a slow node
                        await stream.send_all(encode_frame(
                            FuncType.GET, field, struct.pack(">q", values[field])))

        async def serve() -> None:
            with sock:
                while True:
                    conn, _ = await sock.accept()
                    nursery.start_soon(serve_one, trio.SocketStream(conn))

        nursery.start_soon(serve)
        async with AsyncRepeaterClient(path, timeout=10) as client:
            with trio.move_on_after(0.5):
                await client.get_raw("x.a")
            assert await client.get_raw("x.b") == struct.pack(">q", 2)
        nursery.cancel_scope.cancel()
