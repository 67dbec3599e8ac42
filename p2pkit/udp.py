"""The real datagram endpoint: one non-blocking UDP socket driven by trio.

Why it looks the way it does (measured on a 2-core Linux box, trio 0.35):

* awaiting ``sock.recv``/``sock.send`` per datagram costs 7–9 µs of trio overhead, so the
  receive task drains the socket with plain non-blocking ``recvmsg`` calls until it is
  empty, hands the whole batch to ``dispatch`` in one synchronous call, and only then
  awaits ``trio.lowlevel.wait_readable``;
* sending is synchronous (``send``/``send_batch`` never await): UDP may drop anyway, and
  callers that want backpressure wait on :meth:`UdpEndpoint.wait_writable`;
* on Linux, runs of equal-size datagrams to one address leave in one ``sendmsg`` with UDP
  GSO (``UDP_SEGMENT``), and the kernel hands us coalesced buffers with UDP GRO
  (``UDP_GRO``) that we split by the segment size it reports. Both are probed when the
  socket opens and silently fall back to one datagram per syscall.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
import sys
from collections.abc import Sequence

import trio

from ._exceptions import ConfigError
from .addresses import check_send_host
from .endpoint import Address, Datagram, DispatchFn, EndpointStats

__all__ = ["UdpEndpoint"]

log = logging.getLogger(__name__)

# Linux socket options (not all exported by the socket module).
_SOL_UDP = getattr(socket, "SOL_UDP", 17)
_UDP_SEGMENT = 103  # GSO: cmsg / sockopt carrying the segment size (u16)
_UDP_GRO = 104  # GRO: sockopt to enable; cmsg on receive carries the segment size (int)
_SO_SNDBUFFORCE = 32
_SO_RCVBUFFORCE = 33

_GSO_MAX_SEGMENTS = 64  # UDP_MAX_SEGMENTS in the kernel
_GSO_MAX_BYTES = 65000  # one GSO send must fit a 64 KiB IP datagram
_MAX_DATAGRAM = 65535
_MAX_BATCH = 512  # dispatch at least this often while draining, so acks go out early
_SOCKET_BUFFER = 8 * 1024 * 1024
_GSO_SIZE = struct.Struct("=H")
_GRO_SIZE = struct.Struct("=i")
_WOULD_BLOCK = (BlockingIOError, InterruptedError)
_MSG_TRUNC = int(socket.MSG_TRUNC)  # a plain int: IntFlag's & costs a Python call per datagram


class UdpEndpoint:
    """A :class:`p2pkit.endpoint.DatagramEndpoint` over a real UDP socket.

    Open it with ``await UdpEndpoint.open(host, port)``; ``gso=False`` / ``gro=False``
    disable the Linux offloads (tests cover both paths).
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        gso: bool = True,
        gro: bool = True,
        recv_size: int = _MAX_DATAGRAM,
    ) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._closed = False
        self.stats = EndpointStats()
        self.truncated = 0  # datagrams dropped because they did not fit the receive buffer
        self.dispatch_errors = 0  # exceptions raised by dispatch (logged, never fatal)
        self._ip_hosts: set[str] = set()  # hosts sent to, known to be IP literals
        self.gso = gso and _probe_gso(sock)
        self.gro = gro and _enable_gro(sock)
        # With GRO the kernel may coalesce up to 64 KiB; without it one datagram at most.
        self._recv_size = max(recv_size, _MAX_DATAGRAM + 1) if self.gro else recv_size
        self._ancsize = socket.CMSG_SPACE(_GRO_SIZE.size) if self.gro else 0
        _grow_buffers(sock)
        _allow_broadcast(sock)
        addr = sock.getsockname()
        self._local: Address = (addr[0], addr[1])

    @classmethod
    async def open(
        cls, host: str = "0.0.0.0", port: int = 0, *, gso: bool = True, gro: bool = True,
        recv_size: int = _MAX_DATAGRAM,
    ) -> UdpEndpoint:
        """Bind a UDP socket to ``(host, port)``; port 0 picks a free one."""
        try:
            infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except (OSError, UnicodeError, ValueError) as exc:  # gaierror, an IDNA or NUL error
            raise ConfigError(f"node.host: cannot use {host!r} to listen on: {exc}") from exc
        if not infos:  # pragma: no cover - getaddrinfo raises instead
            raise ConfigError(f"node.host: cannot resolve {host!r}")
        family, _, _, _, sockaddr = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"node.port: UDP port {port} on {host} is already in use; "
                    "choose another port or 0 for any free one"
                ) from exc
            raise ConfigError(f"node.host/node.port: cannot bind UDP {host}:{port}: {exc}") from exc
        return cls(sock, gso=gso, gro=gro, recv_size=recv_size)

    # ------------------------------------------------------------------ properties

    @property
    def local_address(self) -> Address:
        return self._local

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        return self._sock.fileno()

    # ------------------------------------------------------------------ sending

    def _check_host(self, host: str) -> None:
        check_send_host(host, self._ip_hosts, "UdpEndpoint")

    def send(self, data: bytes, addr: Address) -> bool:
        """Send one datagram now; False if the socket buffer is full (counted). ``addr``'s
        host must be an IP literal (ValueError otherwise: resolve names once, beforehand)."""
        if addr[0] not in self._ip_hosts:
            self._check_host(addr[0])
        if self._closed:
            self.stats.send_dropped += 1
            return False
        try:
            self._sock.sendto(data, addr)
        except _WOULD_BLOCK:
            self.stats.send_dropped += 1
            return False
        except OSError as exc:
            # ICMP errors (ECONNREFUSED...) and unreachable routes: UDP semantics, drop.
            self._note_send_error(exc)
            return True
        self.stats.datagrams_sent += 1
        self.stats.bytes_sent += len(data)
        return True

    def send_batch(self, datagrams: Sequence[Datagram]) -> int:
        """Send in order; returns how many were accepted (always a prefix). Every host
        must be an IP literal (ValueError otherwise, and nothing is sent)."""
        known = self._ip_hosts
        for _, addr in datagrams:
            if addr[0] not in known:
                self._check_host(addr[0])
        if self._closed:
            self.stats.send_dropped += len(datagrams)
            return 0
        if not self.gso:
            return self._send_plain(datagrams, 0, len(datagrams))
        n = len(datagrams)
        i = 0
        sock = self._sock
        stats = self.stats
        while i < n:
            data, addr = datagrams[i]
            size = len(data)
            # Collect a run of equal-size datagrams to the same address (the last of the
            # run may be shorter, as GSO allows).
            j = i + 1
            total = size
            while j < n and j - i < _GSO_MAX_SEGMENTS:
                d2, a2 = datagrams[j]
                s2 = len(d2)
                if a2 != addr or s2 > size or total + s2 > _GSO_MAX_BYTES:
                    break
                total += s2
                j += 1
                if s2 < size:
                    break
            if j - i == 1:
                if self._send_plain(datagrams, i, i + 1) == 0:
                    return i
                i = j
                continue
            try:
                sock.sendmsg(
                    [d for d, _ in datagrams[i:j]],
                    [(_SOL_UDP, _UDP_SEGMENT, _GSO_SIZE.pack(size))],
                    0,
                    addr,
                )
            except _WOULD_BLOCK:
                stats.send_dropped += n - i
                return i
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP):
                    # The path refuses GSO (no checksum offload, odd route): fall back.
                    log.info("UDP GSO refused (%s); sending datagrams one by one", exc)
                    self.gso = False
                    return i + self._send_plain(datagrams, i, n)
                self._note_send_error(exc)
            else:
                stats.datagrams_sent += j - i
                stats.bytes_sent += total
            i = j
        return n

    def _send_plain(self, datagrams: Sequence[Datagram], start: int, stop: int) -> int:
        sendto = self._sock.sendto
        sent = 0
        nbytes = 0
        i = start
        while i < stop:
            data, addr = datagrams[i]
            try:
                sendto(data, addr)
            except _WOULD_BLOCK:
                self.stats.send_dropped += stop - i
                break
            except OSError as exc:
                self._note_send_error(exc)  # unreachable host etc.: lost, like any datagram
            else:
                sent += 1
                nbytes += len(data)
            i += 1
        self.stats.datagrams_sent += sent
        self.stats.bytes_sent += nbytes
        return i - start

    def _note_send_error(self, exc: OSError) -> None:
        self.stats.send_dropped += 1
        log.debug("UDP send failed: %s", exc)

    async def wait_writable(self) -> None:
        """Wait until the socket buffer has room again."""
        if self._closed:
            raise trio.ClosedResourceError("endpoint is closed")
        await trio.lowlevel.wait_writable(self._sock)

    # ------------------------------------------------------------------ receiving

    def _drain(self, limit: int) -> tuple[list[Datagram], bool]:
        """Read up to ``limit`` datagrams without blocking; (batch, socket_is_empty)."""
        batch: list[Datagram] = []
        recvmsg = self._sock.recvmsg
        bufsize = self._recv_size
        ancsize = self._ancsize
        stats = self.stats
        nbytes = 0
        append = batch.append
        while len(batch) < limit:
            try:
                data, anc, flags, addr = recvmsg(bufsize, ancsize)
            except _WOULD_BLOCK:
                break
            except OSError as exc:
                # ICMP port unreachable etc. surface here on Linux; they are not fatal.
                log.debug("UDP receive error ignored: %s", exc)
                continue
            if flags & _MSG_TRUNC:
                self.truncated += 1
                continue
            peer: Address = (addr[0], addr[1])
            size = len(data)
            nbytes += size
            seg = 0
            if anc:
                for level, kind, cdata in anc:
                    if level == _SOL_UDP and kind == _UDP_GRO and len(cdata) >= _GRO_SIZE.size:
                        seg = _GRO_SIZE.unpack_from(cdata)[0]
            if 0 < seg < size:
                for off in range(0, size, seg):
                    append((data[off : off + seg], peer))
            else:
                append((data, peer))
        else:
            stats.datagrams_received += len(batch)
            stats.bytes_received += nbytes
            return batch, False
        stats.datagrams_received += len(batch)
        stats.bytes_received += nbytes
        return batch, True

    async def run(
        self, dispatch: DispatchFn, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Deliver received batches to ``dispatch(batch, now)`` until cancelled or closed."""
        task_status.started()
        sock = self._sock
        while not self._closed:
            batch, empty = self._drain(_MAX_BATCH)
            if batch:
                try:
                    dispatch(batch, trio.current_time())
                except Exception:
                    # A handler bug must not take the node's socket down with it.
                    self.dispatch_errors += 1
                    log.exception("datagram dispatch failed")
            try:
                if empty:
                    await trio.lowlevel.wait_readable(sock)
                else:
                    await trio.lowlevel.checkpoint()
            except trio.ClosedResourceError:
                return

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Close the socket; tasks waiting on it get ``trio.ClosedResourceError``."""
        if self._closed:
            return
        self._closed = True
        try:
            trio.lowlevel.notify_closing(self._sock)
        except RuntimeError:
            pass  # not inside trio (e.g. garbage collection at exit): nobody is waiting
        self._sock.close()

    def __enter__(self) -> UdpEndpoint:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> UdpEndpoint:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        host, port = self._local
        return f"<UdpEndpoint {host}:{port} gso={self.gso} gro={self.gro}>"


def _probe_gso(sock: socket.socket) -> bool:
    if sys.platform != "linux":
        return False
    try:
        sock.getsockopt(_SOL_UDP, _UDP_SEGMENT)
    except OSError:
        return False
    return True


def _enable_gro(sock: socket.socket) -> bool:
    if sys.platform != "linux":
        return False
    try:
        sock.setsockopt(_SOL_UDP, _UDP_GRO, 1)
    except OSError:
        return False
    return True


def _allow_broadcast(sock: socket.socket) -> None:
    """LAN discovery sends beacons to 255.255.255.255 from the node's one socket."""
    if sock.family == socket.AF_INET:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        except OSError:
            log.debug("could not enable SO_BROADCAST")


def _grow_buffers(sock: socket.socket) -> None:
    """Large kernel buffers absorb bursts; FORCE variants work when we may exceed rmem_max."""
    for force, plain in ((_SO_RCVBUFFORCE, socket.SO_RCVBUF), (_SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, _SOCKET_BUFFER)
            continue
        except OSError:
            pass
        try:
            sock.setsockopt(socket.SOL_SOCKET, plain, _SOCKET_BUFFER)
        except OSError:
            log.debug("could not enlarge UDP socket buffer")
