"""The repeater server on a real Unix socket, driven from the same trio run."""

from __future__ import annotations

import os
import socket
import stat
import struct
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pkit.fields import Field, FieldRegistry, FieldType
from p2pkit.repeater.client import AsyncRepeaterClient, RepeaterClient
from p2pkit.repeater.errors import (
    RepeaterAddressInUse,
    RepeaterError,
    RepeaterRemoteError,
    RepeaterUnavailable,
)
from p2pkit.repeater.protocol import (
    MAX_BODY,
    REPLY_FUNC_TYPES,
    Frame,
    FrameParser,
    FuncType,
    encode_frame,
    encode_value,
)
from p2pkit.repeater.server import RepeaterStats, serve_repeater

from .conftest import NODE_ID, make_registry

Served = tuple[Path, RepeaterStats, dict[str, Any]]


async def _read_replies(stream: trio.SocketStream, count: int | None = None) -> tuple[list[Frame], bool]:
    """Replies until ``count`` frames arrived or EOF; (frames, whether EOF was seen)."""
    parser = FrameParser(accept=REPLY_FUNC_TYPES)
    frames: list[Frame] = []
    with trio.fail_after(30):
        while count is None or len(frames) < count:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return frames, True
            if not data:
                return frames, True
            parser.feed(data)
            while (frame := parser.next_frame()) is not None:
                frames.append(frame)
    return frames, False


async def _expect_eof(stream: trio.SocketStream) -> None:
    frames, eof = await _read_replies(stream)
    assert frames == [] and eof


# ---------------------------------------------------------------------------- values


async def test_getters_return_each_type(served: Served) -> None:
    path, _, state = served
    async with AsyncRepeaterClient(path) as rc:
        assert await rc.get("node.id") == NODE_ID
        assert await rc.get("peer.count") == 7
        assert await rc.get("net.up_rate") == 1234.5
        assert await rc.get("net.bytes_sent") == 2**40
        assert await rc.get("cfg.p2p_enabled") is True
        assert await rc.get("test.name") == "héllo"
        assert await rc.get("test.blob") == b"\x00\x01\xff"
        assert await rc.get("test.doc") == state["test.doc"]
        assert await rc.get("test.neg") == -5


async def test_setters_apply_through_the_registry_and_return_the_new_value(served: Served) -> None:
    path, _, state = served
    async with AsyncRepeaterClient(path) as rc:
        assert await rc.set("cfg.upload_limit_kbps", 512) == 512
        assert await rc.set("cfg.p2p_enabled", False) is False
        assert await rc.set("test.ratio", 3) == 3.0  # an int is fine for a float field
        assert await rc.set("test.name", "日本") == "日本"
        assert await rc.set("test.blob", b"") == b""
        assert await rc.set("test.doc", [1, {"x": None}]) == [1, {"x": None}]
        assert await rc.set("test.neg", -(2**63)) == -(2**63)
    assert state["cfg.upload_limit_kbps"] == 512
    assert state["cfg.p2p_enabled"] is False
    assert state["test.ratio"] == 3.0
    assert state["test.doc"] == [1, {"x": None}]


async def test_wire_reply_echoes_func_type_and_field(served: Served) -> None:
    path, _, _ = served
    async with await trio.open_unix_socket(os.fspath(path)) as stream:
        await stream.send_all(encode_frame(FuncType.GET, "peer.count"))
        await stream.send_all(
            encode_frame(FuncType.SET, "cfg.cache_limit_mb", encode_value(FieldType.INT, 99))
        )
        frames, _ = await _read_replies(stream, 2)
    assert frames == [
        Frame(FuncType.GET, "peer.count", struct.pack(">q", 7)),
        Frame(FuncType.SET, "cfg.cache_limit_mb", struct.pack(">q", 99)),
    ]


@pytest.mark.parametrize(
    ("func_type", "field", "body", "message"),
    [
        (FuncType.GET, "no.such", b"", "unknown field 'no.such'"),
        (FuncType.GET, "", b"", "unknown field ''"),
        (FuncType.SET, "peer.count", struct.pack(">q", 1), "read-only"),
        (FuncType.SET, "cfg.upload_limit_kbps", b"\x00\x01", "wrong value size"),
        (FuncType.SET, "cfg.p2p_enabled", b"\x05", "must be 0 or 1"),
        (FuncType.SET, "cfg.p2p_enabled", b"", "wrong value size"),
        (FuncType.SET, "test.name", b"\xff\xfe", "not valid UTF-8"),
        (FuncType.SET, "test.doc", b"{nope", "bad JSON"),
        (FuncType.SET, "cfg.upload_limit_kbps", struct.pack(">q", -1), "must be >= 0"),
        (FuncType.GET, "peer.count", b"x", "getter request must have an empty body"),
        (FuncType.GET, "test.boom", b"", "internal error: RuntimeError: sensor on fire"),
        (FuncType.GET, "test.huge", b"", "limit"),
    ],
)
async def test_bad_requests_get_an_error_reply_and_the_connection_goes_on(
    served: Served, func_type: FuncType, field: str, body: bytes, message: str
) -> None:
    path, stats, state = served
    before = dict(state)
    async with await trio.open_unix_socket(os.fspath(path)) as stream:
        await stream.send_all(encode_frame(func_type, field, body))
        await stream.send_all(encode_frame(FuncType.GET, "peer.count"))
        (error, ok), _ = await _read_replies(stream, 2)
    assert error.func_type is FuncType.ERROR
    assert error.field == field
    assert message in error.body.decode()
    assert ok == Frame(FuncType.GET, "peer.count", struct.pack(">q", 7))
    assert state == before  # a refused setter changed nothing
    assert stats.error_replies == 1 and stats.protocol_errors == 0


async def test_client_raises_remote_error_with_the_nodes_message(served: Served) -> None:
    path, _, _ = served
    async with AsyncRepeaterClient(path) as rc:
        with pytest.raises(RepeaterRemoteError, match="read-only"):
            await rc.set("node.id", "x")
        with pytest.raises(RepeaterRemoteError, match="must be >= 0"):
            await rc.set("cfg.max_connections", -3)
        assert await rc.get("cfg.max_connections") == 50


# ---------------------------------------------------------------------------- hostile frames


async def test_oversized_body_length_gets_an_error_and_a_closed_connection(served: Served) -> None:
    path, stats, _ = served
    async with await trio.open_unix_socket(os.fspath(path)) as bystander, \
            await trio.open_unix_socket(os.fspath(path)) as stream:
        await stream.send_all(struct.pack(">B32sI", 2, b"test.blob", MAX_BODY + 1))
        frames, eof = await _read_replies(stream)
        assert eof and len(frames) == 1
        assert frames[0].func_type is FuncType.ERROR
        assert frames[0].field == "test.blob"
        assert "16777216-byte limit" in frames[0].body.decode()
        # the other client is served as before
        await bystander.send_all(encode_frame(FuncType.GET, "peer.count"))
        (reply,), _ = await _read_replies(bystander, 1)
        assert reply.func_type is FuncType.GET
    assert stats.protocol_errors == 1


async def test_a_16_mib_body_is_accepted(served: Served) -> None:
    path, _, state = served
    async with AsyncRepeaterClient(path, timeout=60) as rc:
        assert len(await rc.set("test.blob", bytes(MAX_BODY))) == MAX_BODY
    assert state["test.blob"] == bytes(MAX_BODY)


@pytest.mark.parametrize("func_type", [0, 3, 255])
async def test_unknown_func_type_gets_an_error_and_a_closed_connection(
    served: Served, func_type: int
) -> None:
    path, _, _ = served
    async with await trio.open_unix_socket(os.fspath(path)) as stream:
        await stream.send_all(bytes([func_type]) + b"peer.count".ljust(32, b"\x00") + bytes(4))
        frames, eof = await _read_replies(stream)
    assert eof and [f.func_type for f in frames] == [FuncType.ERROR]
    assert f"unknown func_type {func_type}" in frames[0].body.decode()


async def test_garbage_after_the_name_padding_is_an_error_but_the_stream_stays_in_sync(
    served: Served,
) -> None:
    path, stats, _ = served
    async with await trio.open_unix_socket(os.fspath(path)) as stream:
        await stream.send_all(struct.pack(">B32sI", 1, b"peer\x00count", 0))
        await stream.send_all(struct.pack(">B32sI", 1, b"\xff\xfe", 0))
        await stream.send_all(encode_frame(FuncType.GET, "peer.count"))
        frames, _ = await _read_replies(stream, 3)
    assert [f.func_type for f in frames] == [FuncType.ERROR, FuncType.ERROR, FuncType.GET]
    assert "NUL padding" in frames[0].body.decode()
    assert "UTF-8" in frames[1].body.decode()
    assert stats.protocol_errors == 0


async def test_a_frame_stalled_mid_way_is_answered_and_closed_after_the_timeout(
    sock_dir: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    registry, _ = make_registry()
    path = sock_dir / "r.sock"
    stats = await nursery.start(partial(serve_repeater, registry, path, frame_timeout=10))
    async with await trio.open_unix_socket(os.fspath(path)) as idle, \
            await trio.open_unix_socket(os.fspath(path)) as header_stall, \
            await trio.open_unix_socket(os.fspath(path)) as body_stall:
        await header_stall.send_all(encode_frame(FuncType.GET, "peer.count")[:20])
        await body_stall.send_all(
            encode_frame(FuncType.SET, "test.name", b"abcdef")[:40]
        )
        start = trio.current_time()
        for stream in (header_stall, body_stall):
            frames, eof = await _read_replies(stream)
            assert eof and len(frames) == 1
            assert frames[0].func_type is FuncType.ERROR
            assert "incomplete after 10 s" in frames[0].body.decode()
        assert trio.current_time() - start == pytest.approx(10, abs=0.5)
        # A connection with no frame started is not a stalled one: it still works.
        await trio.sleep(100)
        await idle.send_all(encode_frame(FuncType.GET, "peer.count"))
        (reply,), _ = await _read_replies(idle, 1)
        assert reply.func_type is FuncType.GET
    assert stats.protocol_errors == 2


async def test_a_client_that_never_reads_its_replies_is_disconnected(
    sock_dir: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # Whole frames only, never one split: the send deadline was armed only after a frame
    # had arrived in pieces, so this client held a task and a descriptor for ever.
    registry, _ = make_registry()
    path = sock_dir / "r.sock"
    stats = await nursery.start(partial(serve_repeater, registry, path, frame_timeout=10))
    flood = encode_frame(FuncType.GET, "meta.fields") * 5000
    async with await trio.open_unix_socket(os.fspath(path)) as stream:
        with trio.move_on_after(60):
            await stream.send_all(flood)  # blocks once the replies fill both buffers
        await trio.sleep(60)
        assert stats.protocol_errors == 1 and stats.clients_active == 0


async def test_a_slow_drip_frame_is_also_cut_off(
    sock_dir: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    registry, _ = make_registry()
    path = sock_dir / "r.sock"
    await nursery.start(partial(serve_repeater, registry, path, frame_timeout=10))
    frame = encode_frame(FuncType.GET, "peer.count")
    async with await trio.open_unix_socket(os.fspath(path)) as stream:
        try:
            for byte in frame[:-1]:  # one byte every 3 s: each wait is short, the frame is not
                await stream.send_all(bytes([byte]))
                await trio.sleep(3)
        except trio.BrokenResourceError:
            pass
        frames, eof = await _read_replies(stream)
    assert eof and frames[0].func_type is FuncType.ERROR


async def test_a_client_that_hangs_up_mid_frame_harms_nobody(served: Served) -> None:
    path, _, _ = served
    for cut in (1, 10, 37, 40):
        async with await trio.open_unix_socket(os.fspath(path)) as stream:
            await stream.send_all(encode_frame(FuncType.SET, "test.name", b"abcdef")[:cut])
    async with AsyncRepeaterClient(path) as rc:
        assert await rc.get("peer.count") == 7


async def test_pipelined_requests_are_answered_in_order(served: Served) -> None:
    path, _, _ = served
    names = ["peer.count", "node.id", "no.such", "cfg.p2p_enabled"] * 50
    async with await trio.open_unix_socket(os.fspath(path)) as stream:
        await stream.send_all(b"".join(encode_frame(FuncType.GET, n) for n in names))
        frames, _ = await _read_replies(stream, len(names))
    assert [f.field for f in frames] == names
    assert [f.func_type for f in frames[:4]] == [
        FuncType.GET, FuncType.GET, FuncType.ERROR, FuncType.GET
    ]


async def test_many_clients_at_once(served: Served) -> None:
    path, stats, _ = served
    results: dict[int, list[Any]] = {}

    async def client(i: int) -> None:
        async with AsyncRepeaterClient(path) as rc:
            seen = []
            for _ in range(10):
                seen.append(await rc.get("peer.count"))
                seen.append(await rc.set("test.neg", i))
            results[i] = seen

    async with trio.open_nursery() as nursery:
        for i in range(60):
            nursery.start_soon(client, i)
    assert len(results) == 60
    for i, seen in results.items():
        assert seen[0::2] == [7] * 10
        assert seen[1::2] == [i] * 10  # a setter reads back within the same request
    assert stats.clients_accepted == 60
    assert stats.error_replies == 0


# ---------------------------------------------------------------------------- socket file


async def test_socket_file_is_private_and_removed_at_exit(sock_dir: Path) -> None:
    registry, _ = make_registry()
    path = sock_dir / "r.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_repeater, registry, path)
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        assert sorted(os.listdir(sock_dir)) == ["r.sock"]  # no temporary name left behind
        nursery.cancel_scope.cancel()
    assert not path.exists()


async def test_a_stale_socket_file_is_replaced(sock_dir: Path, nursery: trio.Nursery) -> None:
    path = sock_dir / "r.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.fspath(path))
    dead.close()  # as a crashed node leaves it: the file stays, nobody listens
    assert path.exists()
    registry, _ = make_registry()
    await nursery.start(serve_repeater, registry, path)
    async with AsyncRepeaterClient(path) as rc:
        assert await rc.get("peer.count") == 7


async def test_a_live_socket_is_not_stolen(served: Served, nursery: trio.Nursery) -> None:
    path, _, _ = served
    registry, _ = make_registry({"peer.count": 99})
    with pytest.raises(RepeaterAddressInUse, match="another process"):
        await nursery.start(serve_repeater, registry, path)
    async with AsyncRepeaterClient(path) as rc:
        assert await rc.get("peer.count") == 7


async def test_a_regular_file_is_not_replaced(sock_dir: Path, nursery: trio.Nursery) -> None:
    path = sock_dir / "important.txt"
    path.write_text("keep me")
    registry, _ = make_registry()
    with pytest.raises(RepeaterAddressInUse, match="not a socket"):
        await nursery.start(serve_repeater, registry, path)
    assert path.read_text() == "keep me"


async def test_a_too_long_path_is_a_clear_error(sock_dir: Path, nursery: trio.Nursery) -> None:
    registry, _ = make_registry()
    with pytest.raises(RepeaterAddressInUse, match="longer than 107 bytes"):
        await nursery.start(serve_repeater, registry, sock_dir / ("x" * 120))


# ---------------------------------------------------------------------------- clients


async def test_blocking_client_from_a_thread(served: Served) -> None:
    path, _, state = served

    def use() -> tuple[Any, ...]:
        with RepeaterClient(path) as rc:
            return (rc.get("peer.count"), rc.set("cfg.p2p_enabled", False),
                    rc.get("test.doc"), sorted(rc.fields())[:2])

    got = await trio.to_thread.run_sync(use)
    assert got == (7, False, state["test.doc"], ["cfg.cache_limit_mb", "cfg.max_connections"])


async def test_client_reconnects_after_the_node_restarts(sock_dir: Path) -> None:
    path = sock_dir / "r.sock"
    rc = AsyncRepeaterClient(path)
    for count in (1, 2):
        registry, _ = make_registry({"peer.count": count})
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_repeater, registry, path)
            assert await rc.get("peer.count") == count
            nursery.cancel_scope.cancel()
    await rc.aclose()


async def test_client_without_a_node_says_so(sock_dir: Path) -> None:
    async with AsyncRepeaterClient(sock_dir / "nothing.sock") as rc:
        with pytest.raises(RepeaterUnavailable, match="no p2pkit node is answering"):
            await rc.get("peer.count")
    with RepeaterClient(sock_dir / "nothing.sock") as blocking, \
            pytest.raises(RepeaterUnavailable, match="no p2pkit node is answering"):
        blocking.get("peer.count")


async def test_client_refuses_a_name_over_32_bytes_before_sending(served: Served) -> None:
    path, stats, _ = served
    async with AsyncRepeaterClient(path) as rc:
        with pytest.raises(RepeaterError, match="limit is 32"):
            await rc.get_raw("x" * 33)
    assert stats.requests == 0


async def test_node_without_meta_fields_uses_the_seeds_python_type_encoding(
    sock_dir: Path, nursery: trio.Nursery
) -> None:
    registry = FieldRegistry()
    box: dict[str, Any] = {"v": 1}
    registry.register(Field("x.v", FieldType.INT, lambda: box["v"], lambda v: box.update(v=v)))
    path = sock_dir / "r.sock"
    await nursery.start(serve_repeater, registry, path)
    async with AsyncRepeaterClient(path) as rc:
        assert await rc.fields() == {}
        assert await rc.set("x.v", 300) == 300  # encoded as int by its Python type
        assert await rc.get("x.v") == struct.pack(">q", 300)  # no type known: raw bytes
    assert box["v"] == 300
