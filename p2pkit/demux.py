"""Demultiplexing of incoming datagrams to protocol handlers by their first byte.

Several protocols share the node's one socket (needed for NAT hole punching). Each claims
first-byte values: STUN 0x00-0x03 (RFC 7983), rudp 0x52, others 0x40-0x4F. Dispatch is a
plain synchronous call per batch; a handler that raises is counted (its traceback logged
once per handler and exception type), and the receive loop goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ._exceptions import PluginError
from .endpoint import Datagram
from .plugin_manager import calls_async

DatagramHandler = Callable[[list[Datagram], float], None]

log = logging.getLogger("p2pkit.demux")


class Demultiplexer:
    def __init__(self) -> None:
        self._table: list[DatagramHandler | None] = [None] * 256
        self.datagrams = 0
        self.unclaimed = 0  # empty datagrams or first bytes nobody registered
        self.handler_errors = 0
        self._errors_logged: set[tuple[DatagramHandler, type[BaseException]]] = set()

    def register(self, first_bytes: Iterable[int], handler: DatagramHandler) -> None:
        if calls_async(handler):
            # called, never awaited: every datagram would be lost, with one RuntimeWarning
            raise PluginError(
                f"datagram handler {handler!r} is async def: handlers are called synchronously "
                "and must not wait; make it a plain def (start a task in node.nursery for "
                "work that waits)")
        for value in first_bytes:
            if not 0 <= value <= 255:
                raise PluginError(f"datagram first byte {value!r} is not in 0..255")
            existing = self._table[value]
            if existing is not None and existing != handler:
                raise PluginError(
                    f"first byte 0x{value:02x} is claimed by {existing!r} and {handler!r}"
                )
            self._table[value] = handler

    def dispatch(self, batch: list[Datagram], now: float) -> None:
        table = self._table
        self.datagrams += len(batch)
        # the usual batch is one protocol's: hand it over whole, without regrouping
        first = batch[0][0] if batch else b""
        only = table[first[0]] if first else None
        if only is not None:
            for data, _addr in batch:
                if not data or table[data[0]] is not only:
                    break
            else:
                self._call(only, batch, now)
                return
        groups: dict[DatagramHandler, list[Datagram]] = {}
        for datagram in batch:
            data = datagram[0]
            handler = table[data[0]] if data else None
            if handler is None:
                self.unclaimed += 1
                continue
            group = groups.get(handler)
            if group is None:
                groups[handler] = [datagram]
            else:
                group.append(datagram)
        for handler, group in groups.items():
            self._call(handler, group, now)

    def _call(self, handler: DatagramHandler, group: list[Datagram], now: float) -> None:
        try:
            handler(group, now)
        except Exception as exc:
            self._failed(handler, group, exc)

    def _failed(self, handler: DatagramHandler, group: list[Datagram], exc: Exception) -> None:
        """Counted always; the traceback logged once per handler and exception type (anyone
        can send datagrams: hostile ones that trip a handler must not flood the log), later
        ones to the debug log, one line each."""
        self.handler_errors += 1
        key = (handler, type(exc))
        if key in self._errors_logged:
            log.debug("datagram handler %r failed; dropping %d datagrams: %s: %s",
                      handler, len(group), type(exc).__name__, exc)
            return
        self._errors_logged.add(key)
        log.error("datagram handler %r failed; dropping %d datagrams (logged once per handler "
                  "and exception type; counted in handler_errors)", handler, len(group), exc_info=exc)
