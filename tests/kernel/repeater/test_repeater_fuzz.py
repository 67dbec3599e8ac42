"""Hostile bytes against a REAL repeater server (background thread, temp Unix socket).

Each example opens its own connection, sends its bytes, half-closes, and reads whatever comes
back. Whatever it sent, the replies must be well-formed frames, and a witness connection
opened before the first example must still be answered afterwards: one client's garbage
never costs the server or the other clients anything.
"""

from __future__ import annotations

import os
import socket
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pkit.repeater.client import RepeaterClient
from p2pkit.repeater.protocol import (
    HEADER_SIZE,
    MAX_BODY,
    REPLY_FUNC_TYPES,
    Frame,
    FrameError,
    FrameParser,
    FuncType,
    encode_frame,
)

from .conftest import ThreadedServer, make_registry

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Fuzzed:
    def __init__(self, server: ThreadedServer, witness: RepeaterClient) -> None:
        self.server = server
        self.witness = witness


@pytest.fixture(scope="module")
def fuzz_target() -> Iterator[Fuzzed]:
    registry, _ = make_registry()
    with tempfile.TemporaryDirectory(prefix="p2pk-") as name:
        path = Path(name) / "fuzz.sock"
        with ThreadedServer(registry, path, frame_timeout=5) as server, \
                RepeaterClient(path) as witness:
            assert witness.get("peer.count") == 7
            yield Fuzzed(server, witness)
            assert witness.get("node.version") == "0.1.0"
        assert not path.exists()


def exchange(path: Path, data: bytes, *, read: bool = True) -> bytes:
    """Send ``data``, half-close, and return everything the server sent until it closed."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(os.fspath(path))
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server already gave up on us; read what it said
        if not read:
            return b""
        received = bytearray()
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                return bytes(received)
            received += chunk
        return bytes(received)


def expected_replies(data: bytes) -> tuple[int, bool]:
    """What the server owes: (number of replies, whether the last one ends the connection)."""
    parser = FrameParser()
    count = 0
    try:
        parser.feed(data)
        while True:
            try:
                if parser.next_frame() is None:
                    return count, False
            except FrameError as exc:
                if not exc.recoverable:
                    raise
            count += 1
    except FrameError:
        return count + 1, True


def parse_replies(data: bytes) -> list[Frame]:
    parser = FrameParser(accept=REPLY_FUNC_TYPES)
    parser.feed(data)
    frames = []
    while (frame := parser.next_frame()) is not None:
        frames.append(frame)
    assert parser.buffered == 0, "the server sent a partial frame"
    return frames


def check(target: Fuzzed, data: bytes) -> list[Frame]:
    replies = parse_replies(exchange(target.server.path, data))
    count, fatal = expected_replies(data)
    assert len(replies) == count
    if fatal:
        assert replies[-1].func_type is FuncType.ERROR
    assert target.witness.get("peer.count") == 7
    return replies


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes(fuzz_target: Fuzzed, data: bytes) -> None:
    check(fuzz_target, data)


@FUZZ
@given(data=st.binary(min_size=1, max_size=200).map(lambda b: bytes([b[0] % 3]) + b[1:]))
def test_random_bytes_with_a_plausible_first_byte(fuzz_target: Fuzzed, data: bytes) -> None:
    check(fuzz_target, data)


names = st.one_of(
    st.sampled_from([b"peer.count", b"cfg.p2p_enabled", b"test.doc", b"meta.fields", b""]),
    st.binary(max_size=32),
).map(lambda n: n.ljust(32, b"\x00"))


@st.composite
def hostile_frames(draw: st.DrawFn) -> bytes:
    func_type = draw(st.one_of(st.sampled_from([1, 2]), st.integers(0, 255)))
    name = draw(names)
    body = draw(st.binary(max_size=64))
    length = draw(st.one_of(
        st.just(len(body)),
        st.integers(0, 100),
        st.sampled_from([MAX_BODY, MAX_BODY + 1, 2**31, 2**32 - 1]),
    ))
    frame = struct.pack(">B32sI", func_type, name, length) + body[:length]
    cut = draw(st.integers(0, len(frame)))
    return frame[: cut if draw(st.booleans()) else len(frame)]


@FUZZ
@given(frames=st.lists(hostile_frames(), min_size=1, max_size=4))
def test_hostile_frames(fuzz_target: Fuzzed, frames: list[bytes]) -> None:
    replies = check(fuzz_target, b"".join(frames))
    for reply in replies:
        assert reply.func_type in (FuncType.ERROR, FuncType.GET, FuncType.SET)


@FUZZ
@given(
    requests=st.lists(
        st.tuples(
            st.sampled_from([FuncType.GET, FuncType.SET]),
            st.sampled_from(["peer.count", "cfg.p2p_enabled", "cfg.upload_limit_kbps",
                             "test.name", "test.ratio", "test.doc", "test.blob", "nope"]),
            st.binary(max_size=16),
        ),
        min_size=1, max_size=8,
    )
)
def test_well_framed_requests_with_random_bodies_keep_the_connection(
    fuzz_target: Fuzzed, requests: list[tuple[FuncType, str, bytes]]
) -> None:
    data = b"".join(encode_frame(f, n, b) for f, n, b in requests)
    replies = check(fuzz_target, data)
    assert [r.field for r in replies] == [n for _, n, _ in requests]
    for reply, (func_type, _, _) in zip(replies, requests, strict=True):
        assert reply.func_type in (FuncType.ERROR, func_type)


@pytest.mark.parametrize("cut", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 3])
def test_truncated_frames_get_no_reply_and_no_harm(fuzz_target: Fuzzed, cut: int) -> None:
    frame = encode_frame(FuncType.SET, "test.name", b"abcdefgh")
    assert exchange(fuzz_target.server.path, frame[:cut]) == b""
    assert fuzz_target.witness.get("peer.count") == 7


def test_clients_that_never_read_their_replies(fuzz_target: Fuzzed) -> None:
    flood = encode_frame(FuncType.GET, "meta.fields") * 2000
    for _ in range(5):
        exchange(fuzz_target.server.path, flood, read=False)
    assert fuzz_target.witness.get("peer.count") == 7


def test_server_survived_without_error(fuzz_target: Fuzzed) -> None:
    stats = fuzz_target.server.stats
    assert stats is not None
    assert fuzz_target.server.error is None
    assert stats.clients_accepted >= 1
