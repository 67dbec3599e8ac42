"""The repeater server: the node's fields on a Unix domain socket (seed 004 §4.2).

``serve_repeater`` is an ordinary trio service: it binds the socket (mode 0600, a stale
socket file from a crashed node is replaced, a live one is not), calls
``task_status.started(stats)`` and then serves every client in its own task until it is
cancelled, when it removes the socket file. A client that sends garbage, an oversized
body, or stalls mid-frame gets an error reply when possible and is disconnected; the
server and every other client carry on.
"""

from __future__ import annotations

import enum
import errno
import logging
import math
import os
import secrets
import socket as stdlib_socket
import stat
from pathlib import Path

import attrs
import trio

from .._exceptions import FieldError, LocalProtocolError
from ..fields import FieldRegistry
from .errors import RepeaterAddressInUse
from .protocol import (
    Frame,
    FrameError,
    FrameParser,
    FuncType,
    decode_value,
    encode_frame,
    encode_value,
    error_frame,
)

__all__ = ["DEFAULT_FRAME_TIMEOUT", "RepeaterStats", "serve_repeater"]

log = logging.getLogger("p2pkit.repeater")

DEFAULT_FRAME_TIMEOUT = 10.0  # seconds a started frame (or a reply send) may take
_RECEIVE_SIZE = 64 * 1024
_BACKLOG = 128
SOCKET_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes on Linux, NUL terminated
# Accept errors that mean "out of resources right now": wait and retry, as trio's
# serve_listeners does, instead of killing the server.
_ACCEPT_RETRY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


@attrs.define
class RepeaterStats:
    """Counters of one running server (what ``task_status.started`` hands back)."""

    path: Path
    clients_accepted: int = 0
    clients_active: int = 0
    requests: int = 0
    error_replies: int = 0
    protocol_errors: int = 0  # connections closed for a broken or stalled frame


async def serve_repeater(
    registry: FieldRegistry,
    path: str | os.PathLike[str],
    *,
    frame_timeout: float = DEFAULT_FRAME_TIMEOUT,
    task_status: trio.TaskStatus[RepeaterStats] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``registry`` on the Unix socket ``path`` until cancelled."""
    path = _expand(path)
    sock, inode = await _bind(path)
    stats = RepeaterStats(path=path)
    try:
        with sock:
            sock.listen(_BACKLOG)
            log.info("repeater listening on %s", path)
            async with trio.open_nursery() as clients:
                task_status.started(stats)
                while True:
                    try:
                        conn, _ = await sock.accept()
                    except OSError as exc:
                        if exc.errno not in _ACCEPT_RETRY_ERRNOS:
                            raise
                        log.warning("repeater accept failed (%s), retrying", exc)
                        await trio.sleep(0.1)
                        continue
                    stats.clients_accepted += 1
                    clients.start_soon(
                        _serve_client, trio.SocketStream(conn), registry, frame_timeout, stats
                    )
    finally:
        _remove_if_ours(path, inode)


# ---------------------------------------------------------------------------- socket file


def _expand(path: str | os.PathLike[str]) -> Path:
    # "~/x.sock" in a config file means the home directory, as for `p2pkit ctl`.
    return Path(path).expanduser()


async def _bind(path: Path) -> tuple[trio.socket.SocketType, int]:
    """A listening-ready socket at ``path`` with mode 0600, and the inode of its file.

    The socket is bound under a temporary name, chmod-ed, then renamed over ``path``, so
    there is never a moment when another user could connect, and a stale file is replaced
    atomically.
    """
    if len(os.fsencode(path)) > SOCKET_PATH_MAX:
        raise RepeaterAddressInUse(
            f"repeater socket path {str(path)!r} is longer than {SOCKET_PATH_MAX} bytes; "
            "choose a shorter path"
        )
    await _refuse_if_live(path)
    temp = path.with_name(f".{secrets.token_hex(4)}.repeater.tmp")
    if len(os.fsencode(temp)) > SOCKET_PATH_MAX:
        temp = path  # no room for a temporary name: bind in place, then chmod
        _unlink_missing_ok(path)
    sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        await sock.bind(os.fspath(temp))
        os.chmod(temp, 0o600)
        if temp != path:
            os.rename(temp, path)
        return sock, os.lstat(path).st_ino
    except BaseException:
        sock.close()
        _unlink_missing_ok(temp)
        raise


async def _refuse_if_live(path: Path) -> None:
    """Raise if ``path`` is a socket someone answers on, or is not a socket at all."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise RepeaterAddressInUse(f"{path} exists and is not a socket; refusing to replace it")
    probe = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    with probe:
        try:
            with trio.fail_after(2):
                await probe.connect(os.fspath(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return  # stale: left behind by a process that is gone
        except trio.TooSlowError:
            pass  # backlog full: someone is very much alive
    raise RepeaterAddressInUse(f"another process is serving a repeater on {path}")


def _remove_if_ours(path: Path, inode: int) -> None:
    # A newer server may have replaced our file; only remove the one we created.
    try:
        if os.lstat(path).st_ino == inode:
            os.unlink(path)
    except FileNotFoundError:
        pass


def _unlink_missing_ok(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------------- one client


async def _serve_client(
    stream: trio.SocketStream,
    registry: FieldRegistry,
    frame_timeout: float,
    stats: RepeaterStats,
) -> None:
    stats.clients_active += 1
    try:
        async with stream:
            await _client_loop(stream, registry, frame_timeout, stats)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the client went away; nothing to answer
    finally:
        stats.clients_active -= 1


class _Wait(enum.Enum):
    """What the connection's deadline is guarding at the moment."""

    IDLE = "idle"  # between frames: no limit (a leftover deadline just re-arms)
    FRAME = "frame"  # a frame has started: it must be complete by the deadline
    SEND = "send"  # a reply is going out: the client must read it by the deadline


@attrs.define
class _Connection:
    stream: trio.SocketStream
    registry: FieldRegistry
    frame_timeout: float
    stats: RepeaterStats
    parser: FrameParser = attrs.field(factory=FrameParser)
    waiting: _Wait = _Wait.IDLE


async def _client_loop(
    stream: trio.SocketStream,
    registry: FieldRegistry,
    frame_timeout: float,
    stats: RepeaterStats,
) -> None:
    conn = _Connection(stream, registry, frame_timeout, stats)
    # One cancel scope per deadline expiry rather than one per await: a trio cancel scope
    # costs several microseconds per request, and so does moving a deadline every time
    # (measured with benchmarks/repeater.py).
    while True:
        with trio.CancelScope() as scope:
            await _serve_frames(conn, scope)
            return  # EOF, or a fatal frame already answered
        if conn.waiting is _Wait.IDLE:
            continue  # the deadline of an earlier send expired while we were idle: harmless
        stats.error_replies += 1
        stats.protocol_errors += 1
        if conn.waiting is _Wait.SEND:
            log.info("repeater client stopped reading replies; disconnecting")
            return
        log.info("repeater client stalled mid-frame; disconnecting")
        message = f"frame incomplete after {frame_timeout:g} s; closing the connection"
        with trio.move_on_after(frame_timeout):
            await stream.send_all(error_frame(message))
        return


async def _serve_frames(conn: _Connection, scope: trio.CancelScope) -> None:
    """Answer frames until EOF or a fatal frame; the caller handles deadline expiry."""
    parser, stats = conn.parser, conn.stats
    while True:
        # Answer every complete frame already buffered (clients may pipeline).
        while True:
            fatal = False
            try:
                frame = parser.next_frame()
            except FrameError as exc:
                stats.error_replies += 1
                fatal = not exc.recoverable
                if fatal:
                    stats.protocol_errors += 1
                    log.info("repeater client sent a bad frame (%s); disconnecting", exc)
                reply = error_frame(str(exc), exc.field)
            else:
                if frame is None:
                    break
                stats.requests += 1
                reply = _answer(conn.registry, frame)
                if reply[0] == FuncType.ERROR:
                    stats.error_replies += 1
            conn.waiting = _Wait.SEND
            # Moving a deadline is not free, so it moves only when less than frame_timeout
            # is left (or none is set: a fresh scope's is inf, and a client sending only
            # whole frames never read a reply and was never cut off), and then to 1.5x: a
            # client gets frame_timeout to 1.5x to read a reply.
            now = trio.current_time()
            if scope.deadline == math.inf or scope.deadline < now + conn.frame_timeout:
                scope.deadline = now + 1.5 * conn.frame_timeout
            await conn.stream.send_all(reply)
            if fatal:
                return
        if not parser.buffered:
            conn.waiting = _Wait.IDLE  # the send's deadline may stay: expiry just re-arms
        elif conn.waiting is not _Wait.FRAME:
            # A frame has begun; it keeps this deadline however slowly its bytes drip in.
            conn.waiting = _Wait.FRAME
            scope.deadline = trio.current_time() + conn.frame_timeout
        data = await conn.stream.receive_some(_RECEIVE_SIZE)
        if not data:
            return  # EOF; a half frame from a client that hung up needs no answer
        parser.feed(data)


def _answer(registry: FieldRegistry, frame: Frame) -> bytes:
    """The reply frame for one request; never raises for a bad request."""
    name = frame.field
    try:
        field = registry.field(name)
        if frame.func_type is FuncType.GET:
            if frame.body:
                raise FieldError(f"{name}: a getter request must have an empty body")
            value = registry.get(name)
        else:
            if not field.settable:
                raise FieldError(f"field {name!r} is read-only")
            try:
                new = decode_value(field.type, frame.body)
            except FieldError as exc:
                raise FieldError(f"{name}: {exc}") from None
            value = registry.set(name, new)
        return encode_frame(frame.func_type, name, encode_value(field.type, value))
    except FieldError as exc:
        return error_frame(str(exc), name)
    except LocalProtocolError as exc:  # e.g. a getter returned a value over 16 MiB
        return error_frame(f"{name}: {exc}", name)
    except Exception as exc:
        # A plugin's getter or setter has a bug: the client gets a message, the server
        # goes on, and the traceback goes to the log.
        log.exception("repeater: field %r raised", name)
        return error_frame(f"{name}: internal error: {type(exc).__name__}: {exc}", name)
