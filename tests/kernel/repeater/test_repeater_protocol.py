"""The repeater wire format: exact bytes, value codecs, and the sans-IO frame parser."""

from __future__ import annotations

import itertools
import json
import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pkit._exceptions import FieldError, LocalProtocolError
from p2pkit.fields import FieldType
from p2pkit.repeater.protocol import (
    HEADER_SIZE,
    MAX_BODY,
    REPLY_FUNC_TYPES,
    Frame,
    FrameError,
    FrameParser,
    FuncType,
    decode_name,
    decode_value,
    encode_frame,
    encode_name,
    encode_value,
    error_frame,
)

# ---------------------------------------------------------------------------- exact bytes


def test_header_is_37_bytes_as_the_seed_says() -> None:
    assert HEADER_SIZE == 37


def test_getter_request_layout() -> None:
    frame = encode_frame(FuncType.GET, "peer.count")
    assert frame == b"\x01" + b"peer.count" + b"\x00" * 22 + b"\x00\x00\x00\x00"


def test_setter_request_layout() -> None:
    frame = encode_frame(FuncType.SET, "cfg.upload_limit_kbps", encode_value(FieldType.INT, 512))
    assert frame[0] == 2
    assert frame[1:33] == b"cfg.upload_limit_kbps".ljust(32, b"\x00")
    assert frame[33:37] == b"\x00\x00\x00\x08"
    assert frame[37:] == b"\x00\x00\x00\x00\x00\x00\x02\x00"


def test_error_reply_layout() -> None:
    frame = error_frame("unknown field 'x'", "x")
    assert frame[0] == 0
    assert frame[1:33] == b"x" + b"\x00" * 31
    assert struct.unpack(">I", frame[33:37])[0] == len(frame) - 37
    assert frame[37:] == b"unknown field 'x'"


def test_error_reply_with_unsendable_field_leaves_it_empty() -> None:
    assert error_frame("boom", "x" * 40)[1:33] == bytes(32)


@pytest.mark.parametrize(
    ("ftype", "value", "wire"),
    [
        (FieldType.INT, 1, b"\x00" * 7 + b"\x01"),
        (FieldType.INT, -1, b"\xff" * 8),
        (FieldType.INT, 2**63 - 1, b"\x7f" + b"\xff" * 7),
        (FieldType.INT, -(2**63), b"\x80" + b"\x00" * 7),
        (FieldType.FLOAT, 1.5, struct.pack(">d", 1.5)),
        (FieldType.FLOAT, 2, struct.pack(">d", 2.0)),
        (FieldType.BOOL, True, b"\x01"),
        (FieldType.BOOL, False, b"\x00"),
        (FieldType.STR, "héllo", "héllo".encode()),
        (FieldType.BYTES, b"\x00\xff", b"\x00\xff"),
        (FieldType.BYTES, bytearray(b"ab"), b"ab"),
        (FieldType.JSON, {"a": [1, None]}, b'{"a":[1,null]}'),
    ],
)
def test_value_encodings(ftype: FieldType, value: object, wire: bytes) -> None:
    assert encode_value(ftype, value) == wire


# ---------------------------------------------------------------------------- round trips

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)

VALUES: dict[FieldType, st.SearchStrategy[Any]] = {  # each type draws its own values
    FieldType.INT: st.integers(-(2**63), 2**63 - 1),
    FieldType.FLOAT: st.floats(),
    FieldType.BOOL: st.booleans(),
    FieldType.STR: st.text(),
    FieldType.BYTES: st.binary(),
    FieldType.JSON: json_values,
}


@pytest.mark.parametrize("ftype", list(FieldType))
@given(data=st.data())
def test_every_type_round_trips(ftype: FieldType, data: st.DataObject) -> None:
    value = data.draw(VALUES[ftype])
    back = decode_value(ftype, encode_value(ftype, value))
    if ftype is FieldType.FLOAT and math.isnan(value):
        assert math.isnan(back)
    else:
        assert back == value
        assert type(back) is type(value) or ftype is FieldType.JSON


@pytest.mark.parametrize(
    ("ftype", "value"),
    [
        (FieldType.INT, True),
        (FieldType.INT, 1.0),
        (FieldType.INT, "1"),
        (FieldType.INT, 2**63),
        (FieldType.FLOAT, "1.0"),
        (FieldType.FLOAT, False),
        (FieldType.BOOL, 1),
        (FieldType.STR, b"x"),
        (FieldType.STR, "\ud800"),
        (FieldType.BYTES, "x"),
        (FieldType.JSON, {1, 2}),
        (FieldType.JSON, float("nan")),
    ],
)
def test_encode_refuses_values_that_do_not_fit(ftype: FieldType, value: object) -> None:
    with pytest.raises(FieldError):
        encode_value(ftype, value)


@pytest.mark.parametrize(
    ("ftype", "body", "message"),
    [
        (FieldType.INT, b"\x00" * 7, "wrong value size"),
        (FieldType.INT, b"\x00" * 9, "wrong value size"),
        (FieldType.FLOAT, b"", "wrong value size"),
        (FieldType.BOOL, b"", "wrong value size"),
        (FieldType.BOOL, b"\x01\x00", "wrong value size"),
        (FieldType.BOOL, b"\x02", "must be 0 or 1"),
        (FieldType.STR, b"\xff", "not valid UTF-8"),
        (FieldType.JSON, b"\xc3", "not valid UTF-8"),
        (FieldType.JSON, b"{", "bad JSON"),
        (FieldType.JSON, b"NaN", "bad JSON"),
        (FieldType.JSON, b"[" * 100_000, "bad JSON"),
    ],
)
def test_decode_refuses_malformed_bodies(ftype: FieldType, body: bytes, message: str) -> None:
    with pytest.raises(FieldError, match=message):
        decode_value(ftype, body)


@given(ftype=st.sampled_from(list(FieldType)), body=st.binary(max_size=64))
def test_decode_of_random_bodies_is_a_value_or_field_error(ftype: FieldType, body: bytes) -> None:
    try:
        value = decode_value(ftype, body)
    except FieldError:
        return
    if ftype is not FieldType.FLOAT or not math.isnan(value):
        # Whatever decodes re-encodes to something that decodes to the same value.
        assert decode_value(ftype, encode_value(ftype, value)) == value


# ---------------------------------------------------------------------------- names


def test_name_of_exactly_32_bytes_fits_and_33_is_rejected() -> None:
    assert encode_name("n" * 32) == b"n" * 32
    with pytest.raises(LocalProtocolError, match="limit is 32"):
        encode_name("n" * 33)


def test_name_length_counts_utf8_bytes_not_characters() -> None:
    encode_name("é" * 16)  # 32 bytes
    with pytest.raises(LocalProtocolError):
        encode_name("é" * 16 + "x")


def test_name_with_nul_cannot_be_sent() -> None:
    with pytest.raises(LocalProtocolError, match="NUL"):
        encode_name("a\x00b")


def test_decode_name_strips_padding_and_refuses_garbage_after_it() -> None:
    assert decode_name(b"peer.count".ljust(32, b"\x00")) == "peer.count"
    assert decode_name(b"x" * 32) == "x" * 32
    assert decode_name(bytes(32)) == ""
    with pytest.raises(ValueError, match="after its NUL padding"):
        decode_name(b"peer\x00count".ljust(32, b"\x00"))
    with pytest.raises(ValueError, match="UTF-8"):
        decode_name(b"\xff".ljust(32, b"\x00"))


@given(st.text(max_size=32).filter(lambda s: "\x00" not in s and len(s.encode()) <= 32))
def test_names_round_trip(name: str) -> None:
    assert decode_name(encode_name(name)) == name


# ---------------------------------------------------------------------------- parser


def _frames(*frames: tuple[int, str, bytes]) -> bytes:
    return b"".join(encode_frame(f, n, b) for f, n, b in frames)


def _drain(parser: FrameParser) -> list[Frame]:
    out = []
    while (frame := parser.next_frame()) is not None:
        out.append(frame)
    return out


def test_parser_returns_pipelined_frames_in_order() -> None:
    parser = FrameParser()
    parser.feed(_frames((1, "a", b""), (2, "b", b"xyz"), (1, "c", b"")))
    assert _drain(parser) == [
        Frame(FuncType.GET, "a"), Frame(FuncType.SET, "b", b"xyz"), Frame(FuncType.GET, "c")
    ]
    assert parser.buffered == 0


@given(
    frames=st.lists(
        st.tuples(st.sampled_from([1, 2]), st.sampled_from(["peer.count", "x", "é" * 16]),
                  st.binary(max_size=50)),
        max_size=5,
    ),
    cuts=st.lists(st.integers(0, 400), max_size=10),
)
def test_parser_is_independent_of_how_bytes_are_split(
    frames: list[tuple[int, str, bytes]], cuts: list[int]
) -> None:
    wire = _frames(*frames)
    parser = FrameParser()
    got: list[Frame] = []
    points = sorted({0, len(wire), *(c for c in cuts if c < len(wire))})
    for start, end in itertools.pairwise(points):
        parser.feed(wire[start:end])
        got += _drain(parser)
    assert parser.buffered == 0
    assert got == [Frame(FuncType(f), n, b) for f, n, b in frames]


def test_parser_rejects_unknown_func_type_on_the_first_byte() -> None:
    parser = FrameParser()
    parser.feed(b"\x07")
    with pytest.raises(FrameError, match="unknown func_type 7") as info:
        parser.next_frame()
    assert not info.value.recoverable
    with pytest.raises(FrameError):  # broken for good
        parser.next_frame()
    with pytest.raises(FrameError):
        parser.feed(encode_frame(1, "x"))


def test_parser_refuses_error_frames_from_clients_but_accepts_them_as_replies() -> None:
    with pytest.raises(FrameError, match="unknown func_type 0"):
        _feed_and_next(FrameParser(), error_frame("x"))
    parser = FrameParser(accept=REPLY_FUNC_TYPES)
    parser.feed(error_frame("nope", "f"))
    assert parser.next_frame() == Frame(FuncType.ERROR, "f", b"nope")


def _feed_and_next(parser: FrameParser, data: bytes) -> Frame | None:
    parser.feed(data)
    return parser.next_frame()


def test_parser_refuses_an_oversized_length_before_the_body_arrives() -> None:
    parser = FrameParser()
    parser.feed(struct.pack(">B32sI", 2, b"cfg.x", MAX_BODY + 1))
    with pytest.raises(FrameError, match="over the 16777216-byte limit") as info:
        parser.next_frame()
    assert info.value.field == "cfg.x"
    assert not info.value.recoverable


def test_parser_accepts_a_body_of_exactly_16_mib() -> None:
    parser = FrameParser()
    parser.feed(encode_frame(2, "x", bytes(MAX_BODY)))
    frame = parser.next_frame()
    assert frame is not None and len(frame.body) == MAX_BODY


def test_encode_frame_refuses_oversized_bodies_and_bad_func_types() -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame(1, "x", bytes(MAX_BODY + 1))
    with pytest.raises(LocalProtocolError):
        encode_frame(9, "x")


def test_bad_name_is_recoverable_and_the_next_frame_still_parses() -> None:
    parser = FrameParser()
    bad = struct.pack(">B32sI", 1, b"a\x00b", 0)
    parser.feed(bad + encode_frame(1, "ok"))
    with pytest.raises(FrameError, match="NUL padding") as info:
        parser.next_frame()
    assert info.value.recoverable
    assert parser.next_frame() == Frame(FuncType.GET, "ok")


@given(st.binary(max_size=200), st.integers(1, 64))
def test_random_bytes_give_frames_or_a_frame_error_never_anything_else(
    data: bytes, chunk: int
) -> None:
    parser = FrameParser()
    try:
        for i in range(0, len(data), chunk):
            parser.feed(data[i : i + chunk])
            while True:
                try:
                    frame = parser.next_frame()
                except FrameError as exc:
                    if not exc.recoverable:
                        raise
                    continue
                if frame is None:
                    break
                assert frame.func_type in (FuncType.GET, FuncType.SET)
    except FrameError:
        pass
    assert parser.buffered < HEADER_SIZE + 200


def test_json_encoding_is_compact_utf8() -> None:
    assert json.loads(encode_value(FieldType.JSON, {"ü": 1}).decode("utf-8")) == {"ü": 1}
