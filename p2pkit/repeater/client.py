"""Repeater clients: a blocking one for any Python program, and a trio one.

    with RepeaterClient("/path/to/repeater.sock") as rc:
        rc.get("peer.count")            # -> 3
        rc.set("cfg.upload_limit_kbps", 512)  # -> 512 (the value read back)

Values are decoded by the field's type, which the client learns once from the node's
``meta.fields`` field and caches (refreshed when an unknown name shows up). A node without
``meta.fields`` still works: ``set`` then encodes by the Python type as the seed describes
(bool one byte, int 64-bit BE, float double BE, bytes raw, str UTF-8) and ``get`` returns the
raw bytes.
"""

from __future__ import annotations

import os
import socket
import threading
from types import TracebackType
from typing import Any, Self

import attrs
import trio

from .._exceptions import FieldError, LocalProtocolError
from ..fields import FieldType
from .errors import RepeaterError, RepeaterRemoteError, RepeaterUnavailable
from .protocol import (
    REPLY_FUNC_TYPES,
    Frame,
    FrameError,
    FrameParser,
    FuncType,
    decode_value,
    encode_frame,
    encode_value,
)

__all__ = ["AsyncRepeaterClient", "FieldInfo", "RepeaterClient"]

META_FIELDS = "meta.fields"
DEFAULT_TIMEOUT = 5.0
_RECEIVE_SIZE = 64 * 1024


@attrs.frozen
class FieldInfo:
    """What ``meta.fields`` says about one field."""

    name: str
    type: FieldType
    settable: bool
    description: str = ""


# ---------------------------------------------------------------------------- shared logic


def _request(func_type: FuncType, field: str, body: bytes) -> bytes:
    try:
        return encode_frame(func_type, field, body)
    except LocalProtocolError as exc:
        raise RepeaterError(str(exc)) from None


def _check_reply(frame: Frame, func_type: FuncType, field: str) -> bytes:
    if frame.func_type is FuncType.ERROR:
        message = frame.body.decode("utf-8", errors="replace")
        raise RepeaterRemoteError(message, field)
    if frame.func_type is not func_type or frame.field != field:
        raise RepeaterUnavailable(
            f"reply for {frame.func_type.name} {frame.field!r} does not match the request "
            f"{func_type.name} {field!r}"
        )
    return frame.body


def _parse_catalogue(value: Any) -> dict[str, FieldInfo]:
    try:
        return {
            item["name"]: FieldInfo(
                name=item["name"],
                type=FieldType(item["type"]),
                settable=bool(item["settable"]),
                description=str(item.get("description", "")),
            )
            for item in value
        }
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise RepeaterError(f"{META_FIELDS} is malformed: {exc!r}") from None


def _guess_type(value: Any) -> FieldType:
    """The seed's automatic encoding, for fields the node does not describe."""
    for python_type, ftype in (
        (bool, FieldType.BOOL),  # before int: bool is an int subclass
        (int, FieldType.INT),
        (float, FieldType.FLOAT),
        (str, FieldType.STR),
        (bytes | bytearray | memoryview, FieldType.BYTES),
    ):
        if isinstance(value, python_type):
            return ftype
    raise RepeaterError(f"cannot encode a {type(value).__name__}; use bool/int/float/str/bytes")


def _encode(field: str, ftype: FieldType, value: Any) -> bytes:
    try:
        return encode_value(ftype, value)
    except FieldError as exc:
        raise RepeaterError(f"{field}: {exc}") from None


def _decode(field: str, ftype: FieldType, body: bytes) -> Any:
    try:
        return decode_value(ftype, body)
    except FieldError as exc:
        raise RepeaterError(f"{field}: malformed reply: {exc}") from None


class _Catalogue:
    """The cached ``meta.fields``: None until fetched, {} when the node has none."""

    def __init__(self) -> None:
        self.fields: dict[str, FieldInfo] | None = None

    def store(self, body: bytes | None) -> dict[str, FieldInfo]:
        self.fields = {} if body is None else _parse_catalogue(_decode(META_FIELDS, FieldType.JSON, body))
        return self.fields


def _is_unknown_field(exc: RepeaterRemoteError) -> bool:
    return str(exc).startswith("unknown field")


# ---------------------------------------------------------------------------- blocking


class RepeaterClient:
    """Blocking client; one connection, opened on first use and reopened after a failure.

    Thread-safe (calls are serialised). Every error is a :class:`RepeaterError`:
    :class:`RepeaterRemoteError` for the node's error replies, :class:`RepeaterUnavailable`
    when nothing answers on the socket.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._parser = FrameParser(accept=REPLY_FUNC_TYPES)
        self._lock = threading.Lock()
        self._catalogue = _Catalogue()

    # -- connection

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise RepeaterUnavailable(
                f"no p2pkit node is answering on {self.path} ({exc.strerror or exc})"
            ) from None
        self._parser = FrameParser(accept=REPLY_FUNC_TYPES)
        return sock

    # -- raw calls

    def call(self, func_type: FuncType, field: str, body: bytes = b"") -> bytes:
        """One request; the reply's body, or RepeaterRemoteError for an error reply."""
        request = _request(func_type, field, body)
        with self._lock:
            reused = self._sock is not None
            try:
                frame = self._round_trip(request)
            except _NoReply:
                if not reused:
                    raise RepeaterUnavailable(f"{self.path}: connection closed by the node") from None
                # The node closed an idle connection (or restarted): try once more afresh.
                frame = self._round_trip(request)
            return _check_reply(frame, func_type, field)

    def _round_trip(self, request: bytes) -> Frame:
        if self._sock is None:
            self._sock = self._connect()
        sock = self._sock
        got_bytes = False
        try:
            sock.sendall(request)
            while True:
                frame = self._parser.next_frame()
                if frame is not None:
                    return frame
                data = sock.recv(_RECEIVE_SIZE)
                if not data:
                    break
                got_bytes = True
                self._parser.feed(data)
        except TimeoutError:
            self.close()
            raise RepeaterUnavailable(f"{self.path}: no reply within {self.timeout:g} s") from None
        except FrameError as exc:
            self.close()
            raise RepeaterUnavailable(f"{self.path}: malformed reply: {exc}") from None
        except (BrokenPipeError, ConnectionResetError):
            pass
        except OSError as exc:
            self.close()
            raise RepeaterUnavailable(f"{self.path}: {exc}") from None
        except BaseException:
            # Interrupted mid-request (Ctrl-C): the reply may still arrive, and the next
            # call on this connection would read it as its own.
            self.close()
            raise
        self.close()
        if got_bytes:
            raise RepeaterUnavailable(f"{self.path}: connection closed in the middle of a reply")
        raise _NoReply

    def get_raw(self, field: str) -> bytes:
        return self.call(FuncType.GET, field)

    def set_raw(self, field: str, body: bytes) -> bytes:
        return self.call(FuncType.SET, field, body)

    # -- typed calls

    def fields(self, *, refresh: bool = False) -> dict[str, FieldInfo]:
        """Every field the node serves (from ``meta.fields``, cached)."""
        if self._catalogue.fields is None or refresh:
            try:
                body: bytes | None = self.get_raw(META_FIELDS)
            except RepeaterRemoteError as exc:
                if not _is_unknown_field(exc):
                    raise
                body = None
            self._catalogue.store(body)
        assert self._catalogue.fields is not None
        return self._catalogue.fields

    def info(self, field: str) -> FieldInfo | None:
        """The field's description, refreshing the cache once for a name not seen yet."""
        if field == META_FIELDS:
            return FieldInfo(META_FIELDS, FieldType.JSON, False)
        info = self.fields().get(field)
        if info is None:
            info = self.fields(refresh=True).get(field)
        return info

    def get(self, field: str) -> Any:
        info = self.info(field)
        body = self.get_raw(field)
        return body if info is None else _decode(field, info.type, body)

    def set(self, field: str, value: Any) -> Any:
        """Set ``field``; returns the value the node reads back after setting it."""
        info = self.info(field)
        ftype = _guess_type(value) if info is None else info.type
        body = self.set_raw(field, _encode(field, ftype, value))
        return _decode(field, ftype, body)


class _NoReply(Exception):
    """The connection closed before any byte of the reply arrived."""


# ---------------------------------------------------------------------------- trio


class AsyncRepeaterClient:
    """The trio twin of :class:`RepeaterClient` (same methods, awaited)."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self._stream: trio.SocketStream | None = None
        self._parser = FrameParser(accept=REPLY_FUNC_TYPES)
        self._lock = trio.Lock()
        self._catalogue = _Catalogue()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await stream.aclose()

    async def call(self, func_type: FuncType, field: str, body: bytes = b"") -> bytes:
        request = _request(func_type, field, body)
        async with self._lock:
            reused = self._stream is not None
            try:
                frame = await self._round_trip(request)
            except _NoReply:
                if not reused:
                    raise RepeaterUnavailable(f"{self.path}: connection closed by the node") from None
                frame = await self._round_trip(request)
            return _check_reply(frame, func_type, field)

    async def _round_trip(self, request: bytes) -> Frame:
        if self._stream is None:
            try:
                self._stream = await trio.open_unix_socket(self.path)
            except OSError as exc:
                raise RepeaterUnavailable(
                    f"no p2pkit node is answering on {self.path} ({exc.strerror or exc})"
                ) from None
            self._parser = FrameParser(accept=REPLY_FUNC_TYPES)
        stream = self._stream
        got_bytes = False
        try:
            with trio.fail_after(self.timeout):
                await stream.send_all(request)
                while True:
                    frame = self._parser.next_frame()
                    if frame is not None:
                        return frame
                    data = await stream.receive_some(_RECEIVE_SIZE)
                    if not data:
                        break
                    got_bytes = True
                    self._parser.feed(data)
        except trio.TooSlowError:
            await self.aclose()
            raise RepeaterUnavailable(f"{self.path}: no reply within {self.timeout:g} s") from None
        except FrameError as exc:
            await self.aclose()
            raise RepeaterUnavailable(f"{self.path}: malformed reply: {exc}") from None
        except trio.BrokenResourceError:
            pass
        except BaseException:
            # Cancelled mid-request: the reply may still arrive, and the next call on this
            # connection would read it as its own. Closing a socket does not wait.
            self._stream = None
            stream.socket.close()
            raise
        await self.aclose()
        if got_bytes:
            raise RepeaterUnavailable(f"{self.path}: connection closed in the middle of a reply")
        raise _NoReply

    async def get_raw(self, field: str) -> bytes:
        return await self.call(FuncType.GET, field)

    async def set_raw(self, field: str, body: bytes) -> bytes:
        return await self.call(FuncType.SET, field, body)

    async def fields(self, *, refresh: bool = False) -> dict[str, FieldInfo]:
        if self._catalogue.fields is None or refresh:
            try:
                body: bytes | None = await self.get_raw(META_FIELDS)
            except RepeaterRemoteError as exc:
                if not _is_unknown_field(exc):
                    raise
                body = None
            self._catalogue.store(body)
        assert self._catalogue.fields is not None
        return self._catalogue.fields

    async def info(self, field: str) -> FieldInfo | None:
        if field == META_FIELDS:
            return FieldInfo(META_FIELDS, FieldType.JSON, False)
        info = (await self.fields()).get(field)
        if info is None:
            info = (await self.fields(refresh=True)).get(field)
        return info

    async def get(self, field: str) -> Any:
        info = await self.info(field)
        body = await self.get_raw(field)
        return body if info is None else _decode(field, info.type, body)

    async def set(self, field: str, value: Any) -> Any:
        info = await self.info(field)
        ftype = _guess_type(value) if info is None else info.type
        body = await self.set_raw(field, _encode(field, ftype, value))
        return _decode(field, ftype, body)
