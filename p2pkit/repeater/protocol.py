"""The repeater wire format (seed 004 §4.2), as pure functions and a sans-IO parser.

A frame is a fixed 37-byte header followed by a body::

    +-----------+----------------------------+----------------+-----------------+
    | func_type | field name                 | body length    | body            |
    | 1 byte    | 32 bytes, UTF-8, NUL padded| 4 bytes, BE    | `length` bytes  |
    +-----------+----------------------------+----------------+-----------------+

``func_type`` is 1 (getter) or 2 (setter) in a request; a success reply echoes the request's
``func_type`` and field name, an error reply has ``func_type`` 0 and a UTF-8 message as body.

Values are encoded by the field's type: int = 8-byte big-endian signed, float = 8-byte
big-endian IEEE-754 double, bool = one byte 0/1, str = UTF-8, bytes = raw, json = UTF-8 JSON.

Nothing here touches a socket: the server, the blocking client and the trio client all drive
:class:`FrameParser` with whatever bytes they received.
"""

from __future__ import annotations

import enum
import json
import struct
from functools import lru_cache
from typing import Any, NamedTuple

from .._exceptions import FieldError, LocalProtocolError, RemoteProtocolError
from ..fields import INT64_MAX, INT64_MIN, MAX_FIELD_NAME_BYTES, FieldType

__all__ = [
    "HEADER",
    "HEADER_SIZE",
    "MAX_BODY",
    "REPLY_FUNC_TYPES",
    "REQUEST_FUNC_TYPES",
    "Frame",
    "FrameError",
    "FrameParser",
    "FuncType",
    "decode_name",
    "decode_value",
    "encode_frame",
    "encode_name",
    "encode_value",
    "error_frame",
]

HEADER = struct.Struct(">B32sI")
HEADER_SIZE = HEADER.size  # 37, as the seed says
MAX_BODY = 16 * 1024 * 1024  # a body over 16 MiB is refused before it is read


class FuncType(enum.IntEnum):
    ERROR = 0  # only in replies: the body is a UTF-8 error message
    GET = 1
    SET = 2


REQUEST_FUNC_TYPES = frozenset({FuncType.GET, FuncType.SET})
_FUNC_TYPES = {int(f): f for f in FuncType}
REPLY_FUNC_TYPES = frozenset(FuncType)


class FrameError(RemoteProtocolError):
    """The other side sent a frame that breaks the repeater protocol.

    ``recoverable`` is true when the whole frame was consumed (say, a bad field name), so
    the stream is still in sync and the parser can go on; otherwise the connection must be
    closed. ``field`` is the request's field name when it could be read (for the error
    reply's echo), else "".
    """

    def __init__(self, message: str, *, recoverable: bool = False, field: str = "") -> None:
        super().__init__(message)
        self.recoverable = recoverable
        self.field = field


class Frame(NamedTuple):
    func_type: FuncType
    field: str
    body: bytes = b""


# ---------------------------------------------------------------------------- names


@lru_cache(maxsize=512)  # the same few names go back and forth all day
def encode_name(name: str) -> bytes:
    """The 32-byte NUL-padded name; LocalProtocolError if it cannot be sent."""
    raw = name.encode("utf-8")
    if len(raw) > MAX_FIELD_NAME_BYTES:
        raise LocalProtocolError(
            f"field name {name!r} is {len(raw)} bytes in UTF-8; the limit is "
            f"{MAX_FIELD_NAME_BYTES}"
        )
    if b"\x00" in raw:
        raise LocalProtocolError(f"field name {name!r} contains a NUL byte")
    return raw.ljust(MAX_FIELD_NAME_BYTES, b"\x00")


@lru_cache(maxsize=512)
def decode_name(raw: bytes) -> str:
    """The name from its 32-byte slot: up to the first NUL, the rest must be NUL padding."""
    name, _, padding = raw.partition(b"\x00")
    if padding.strip(b"\x00"):
        raise ValueError("field name has non-NUL bytes after its NUL padding")
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("field name is not valid UTF-8") from None


# ---------------------------------------------------------------------------- frames


def encode_frame(func_type: int, field: str, body: bytes = b"") -> bytes:
    if func_type not in REPLY_FUNC_TYPES:
        raise LocalProtocolError(f"unknown func_type {func_type}")
    if len(body) > MAX_BODY:
        raise LocalProtocolError(f"body of {len(body)} bytes is over the {MAX_BODY}-byte limit")
    return HEADER.pack(func_type, encode_name(field), len(body)) + body


def error_frame(message: str, field: str = "") -> bytes:
    """An error reply; a field name that cannot be echoed is left empty."""
    try:
        name = encode_name(field)
    except LocalProtocolError:
        name = bytes(MAX_FIELD_NAME_BYTES)
    body = message.encode("utf-8")[:MAX_BODY]
    return HEADER.pack(FuncType.ERROR, name, len(body)) + body


class FrameParser:
    """Incremental frame parser: ``feed`` bytes, then call ``next_frame`` until it is None.

    It validates as early as it can: an unknown ``func_type`` is refused on the first byte,
    an oversized length as soon as the header is complete (the body is never buffered).
    A FrameError that is not ``recoverable`` leaves the parser broken: every later call
    raises it again, the connection must be closed.
    """

    def __init__(
        self,
        *,
        accept: frozenset[FuncType] = REQUEST_FUNC_TYPES,
        max_body: int = MAX_BODY,
    ) -> None:
        self._accept = accept
        self._max_body = max_body
        self._buffer = bytearray()
        self._broken: FrameError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame (non-zero means mid-frame)."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._broken is not None:
            raise self._broken
        self._buffer += data

    def next_frame(self) -> Frame | None:
        if self._broken is not None:
            raise self._broken
        buf = self._buffer
        if not buf:
            return None
        if buf[0] not in self._accept:
            self._fail(f"unknown func_type {buf[0]}")
        if len(buf) < HEADER_SIZE:
            return None
        func_type, raw_name, length = HEADER.unpack_from(buf)
        if length > self._max_body:
            try:
                field = decode_name(raw_name)
            except ValueError:
                field = ""
            self._fail(
                f"body length {length} is over the {self._max_body}-byte limit", field=field
            )
        end = HEADER_SIZE + length
        if len(buf) < end:
            return None
        body = bytes(buf[HEADER_SIZE:end])
        del buf[:end]
        try:
            name = decode_name(raw_name)
        except ValueError as exc:
            raise FrameError(str(exc), recoverable=True) from None
        return Frame(_FUNC_TYPES[func_type], name, body)

    def _fail(self, message: str, *, field: str = "") -> None:
        self._broken = FrameError(message, recoverable=False, field=field)
        self._buffer.clear()
        raise self._broken


# ---------------------------------------------------------------------------- values

_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")


def encode_value(ftype: FieldType, value: Any) -> bytes:
    """Bytes for ``value`` of a field of type ``ftype``; FieldError if it does not fit."""
    if ftype is FieldType.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(f"expected int, got {type(value).__name__}")
        if not INT64_MIN <= value <= INT64_MAX:
            raise FieldError(f"{value} does not fit in a signed 64-bit integer")
        return _I64.pack(value)
    if ftype is FieldType.FLOAT:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FieldError(f"expected float, got {type(value).__name__}")
        return _F64.pack(float(value))
    if ftype is FieldType.BOOL:
        if not isinstance(value, bool):
            raise FieldError(f"expected bool, got {type(value).__name__}")
        return b"\x01" if value else b"\x00"
    if ftype is FieldType.STR:
        if not isinstance(value, str):
            raise FieldError(f"expected str, got {type(value).__name__}")
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise FieldError("string is not encodable as UTF-8 (lone surrogate)") from None
    if ftype is FieldType.BYTES:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise FieldError(f"expected bytes, got {type(value).__name__}")
        return bytes(value)
    if ftype is FieldType.JSON:
        try:
            return json.dumps(value, allow_nan=False, separators=(",", ":")).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise FieldError(f"value is not JSON-serialisable: {exc}") from None
    raise AssertionError(f"unhandled field type {ftype}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_value(ftype: FieldType, body: bytes) -> Any:
    """The value in ``body`` for a field of type ``ftype``; FieldError if it is malformed."""
    if ftype in (FieldType.INT, FieldType.FLOAT):
        if len(body) != 8:
            raise FieldError(f"wrong value size: {ftype.value} needs 8 bytes, got {len(body)}")
        if ftype is FieldType.INT:
            return _I64.unpack(body)[0]
        return _F64.unpack(body)[0]
    if ftype is FieldType.BOOL:
        if len(body) != 1:
            raise FieldError(f"wrong value size: bool needs 1 byte, got {len(body)}")
        if body[0] > 1:
            raise FieldError(f"bad bool value {body[0]}: must be 0 or 1")
        return body[0] == 1
    if ftype is FieldType.BYTES:
        return bytes(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FieldError(f"{ftype.value} value is not valid UTF-8") from None
    if ftype is FieldType.STR:
        return text
    if ftype is FieldType.JSON:
        try:
            return json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise FieldError(f"bad JSON value: {exc}") from None
    raise AssertionError(f"unhandled field type {ftype}")
