"""Packet codec: layout, validation, and a fuzz of every decoder."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from p2pkit.plugins.rudp import packet
from p2pkit.plugins.rudp.packet import (
    DATA,
    HEADER_SIZE,
    MAGIC,
    STREAM_FRAME,
    STREAM_HEADER,
    SYN,
    MalformedPacket,
    decode_frames,
    decode_handshake,
    decode_header,
    encode_handshake,
    encode_header,
    encode_sack_frame,
    unwrap,
)


def test_header_layout_is_stable() -> None:
    raw = encode_header(DATA, 0, 0xDEADBEEF, 5, 6, 0b101, 1 << 40, 123, 456)
    assert len(raw) == HEADER_SIZE == 36
    assert raw[0] == MAGIC == 0x52  # the demux routes on this byte
    assert raw[1] == 1 and raw[2] == DATA and raw[3] == 0
    assert raw[4:8] == bytes.fromhex("deadbeef")
    h = decode_header(raw)
    assert h[4:] == (0xDEADBEEF, 5, 6, 0b101, 1 << 40, 123, 456)


def test_spelled_out_constants_agree_with_what_they_name() -> None:
    """The constants compiled code inlines are written out; they must say what the
    enum and the struct layouts say."""
    assert {t.name: int(t) for t in packet.PacketType} == {
        name: getattr(packet, name) for name in packet.PacketType.__members__}
    assert max(packet.PacketType) == packet.MAX_TYPE
    fields = ["H_MAGIC", "H_VERSION", "H_TYPE", "H_FLAGS", "H_CID", "H_SEQ", "H_ACK",
              "H_BITS", "H_MAXDATA", "H_TS", "H_ECHO"]
    assert [getattr(packet, name) for name in fields] == list(range(len(packet.HEADER.format) - 1))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:20], "shorter than the header"),
        (lambda b: b"\x53" + b[1:], "first byte"),
        (lambda b: b[:1] + b"\x02" + b[2:], "version"),
        (lambda b: b[:2] + b"\x09" + b[3:], "unknown packet type"),
        (lambda b: b[:3] + b"\x01" + b[4:], "encrypted"),
    ],
)
def test_bad_headers_are_rejected(mutate: Callable[[bytes], bytes], message: str) -> None:
    raw = encode_header(DATA, 0, 1, 0, 0, 0, 0, 0, 0)
    with pytest.raises(MalformedPacket, match=message):
        decode_header(mutate(raw))


def test_frames_roundtrip() -> None:
    header = encode_header(DATA, 0, 1, 0, 0, 0, 0, 0, 0)
    payload = (
        header + STREAM_HEADER.pack(STREAM_FRAME, 0, 10, 3) + b"abc"
        + STREAM_HEADER.pack(STREAM_FRAME, 1, 1 << 33, 2) + b"xy"
        + encode_sack_frame([(100, 105), (0xFFFFFFF0, 3)])
    )
    streams, sacks = decode_frames(payload)
    assert streams == [(0, 10, b"abc"), (1, 1 << 33, b"xy")]
    assert sacks == [(100, 105), (0xFFFFFFF0, 3)]


@pytest.mark.parametrize(
    "tail",
    [
        STREAM_HEADER.pack(STREAM_FRAME, 0, 0, 10) + b"short",  # length past the end
        STREAM_HEADER.pack(STREAM_FRAME, 0, 0, 0),  # empty frame
        b"\x10\x00\x00",  # truncated frame header
        b"\x20\x00",  # SACK with no ranges
        b"\x20\x02" + bytes(8),  # two ranges announced, one present
        b"\x20\x01" + (5).to_bytes(4, "big") + (5).to_bytes(4, "big"),  # empty range
        b"\x77",  # unknown frame type
    ],
)
def test_bad_frames_are_rejected(tail: bytes) -> None:
    with pytest.raises(MalformedPacket):
        decode_frames(encode_header(DATA, 0, 1, 0, 0, 0, 0, 0, 0) + tail)


def test_handshake_payload() -> None:
    raw = encode_header(SYN, 0, 0, 7, 0, 0, 1000, 0, 0) + encode_handshake(42, 1400)
    assert decode_handshake(raw) == (42, 1400)
    with pytest.raises(MalformedPacket, match="reserved"):
        decode_handshake(raw[:HEADER_SIZE] + encode_handshake(0, 1400))
    with pytest.raises(MalformedPacket, match="below"):
        decode_handshake(raw[:HEADER_SIZE] + encode_handshake(42, 100))
    with pytest.raises(MalformedPacket, match="size"):
        decode_handshake(raw + b"x")


@given(st.integers(0, 2**40), st.integers(-(2**31) + 1, 2**31 - 1))
def test_unwrap_recovers_numbers_near_the_reference(reference: int, delta: int) -> None:
    value = reference + delta
    if value >= 0:
        assert unwrap(value & 0xFFFFFFFF, reference) == value


@settings(max_examples=2000)
@given(st.binary(max_size=200))
def test_fuzz_decoders_raise_only_malformed(data: bytes) -> None:
    for decode in (decode_header, decode_frames, decode_handshake):
        try:
            decode(data)
        except MalformedPacket:
            pass


@settings(max_examples=1000)
@given(st.binary(max_size=120))
def test_fuzz_frames_after_a_valid_header(tail: bytes) -> None:
    data = encode_header(DATA, 0, 1, 0, 0, 0, 0, 0, 0) + tail
    try:
        streams, _sacks = decode_frames(data)
    except MalformedPacket:
        return
    assert all(len(chunk) > 0 for _, _, chunk in streams)
