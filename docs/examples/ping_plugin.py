"""A complete p2pkit plugin: UDP ping with a measured round-trip time.

It shows every part of the plugin contract a typical plugin needs:

- a config section ``[ping]`` (an attrs class),
- a datagram handler on the node's shared socket (first byte 0x4F),
- a service in the node's nursery (pings the configured targets every interval),
- fields (``ping.sent``, ``ping.rtt_ms``, settable ``ping.interval_ms``),
- an event for every answered ping.

Run two nodes that ping each other, from the project root (``python -m`` puts it on the
import path, which the ``p2pkit`` script does not; p2pkit installed editable from this
checkout, see docs/writing-plugins.md §7; each node its own data dir), each line in its
own terminal::

    python -m p2pkit node --port 7801 --data-dir /tmp/ping-a \
        --plugin docs.examples.ping_plugin:plugin --set ping.targets=127.0.0.1:7802
    python -m p2pkit node --port 7802 --data-dir /tmp/ping-b \
        --plugin docs.examples.ping_plugin:plugin
    p2pkit ctl --data-dir /tmp/ping-a list          # its fields, over the repeater
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import attrs
import trio

from p2pkit import Field, FieldType, GenericEvent, Node, hookimpl
from p2pkit.addresses import parse_address, resolve

PING, PONG = 0x4F, 0x4E  # first bytes claimed on the node's socket
_FRAME = struct.Struct("!BQd")  # kind, sequence number, sender's send time
log = logging.getLogger("ping")


MIN_INTERVAL_MS, MAX_INTERVAL_MS = 10, 60_000  # 0 would ping as fast as the CPU allows


@attrs.define
class PingConfig:
    targets: list[str] = attrs.field(factory=list)  # "host:port" to ping
    interval_ms: int = attrs.field(default=1000, validator=[
        attrs.validators.ge(MIN_INTERVAL_MS), attrs.validators.le(MAX_INTERVAL_MS)])


class Pinger:
    """One instance per node: the kernel builds it and registers it as the node's plugin."""

    def __init__(self, node: Node) -> None:
        self.node = node
        config: PingConfig = node.config.section("ping")
        self.targets = [parse_address(t, what="ping.targets") for t in config.targets]
        self.interval_ms = config.interval_ms
        self.sent = 0
        self.answered = 0
        self.last_rtt_ms = 0.0
        self.malformed = 0

    # -- datagrams: answer pings, time pongs. Synchronous and non-blocking, as required.
    def on_datagrams(self, batch: list[tuple[bytes, tuple[str, int]]], now: float) -> None:
        replies = []
        for data, addr in batch:
            if len(data) != _FRAME.size:
                self.malformed += 1  # hostile or broken input: count it, drop it
                continue
            kind, seq, sent_at = _FRAME.unpack(data)
            if kind == PING:
                replies.append((_FRAME.pack(PONG, seq, sent_at), addr))
            else:
                self.answered += 1
                self.last_rtt_ms = (now - sent_at) * 1000.0
                self.node.emit(GenericEvent(kind="ping.answered", data={
                    "from": f"{addr[0]}:{addr[1]}", "rtt_ms": self.last_rtt_ms}))
        if replies:
            self.node.endpoint.send_batch(replies)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        # Host names are resolved once, here, before the service counts as started: the
        # endpoint takes only IP addresses (a name would be looked up again, blocking the
        # node, for every datagram). A target that does not resolve is named and skipped.
        resolved = []
        for host, port in self.targets:
            try:
                resolved.append(await resolve((host, port)))
            except OSError as exc:
                log.warning("ping.targets %s:%d does not resolve (%s): not pinged", host, port, exc)
        self.targets = resolved
        task_status.started()
        while True:
            for addr in self.targets:
                self.sent += 1
                self.node.endpoint.send(_FRAME.pack(PING, self.sent, trio.current_time()), addr)
            await trio.sleep(self.interval_ms / 1000)

    def _set_interval(self, value: int) -> None:
        self.interval_ms = value

    @staticmethod
    def _check_interval(value: int) -> None:
        if not MIN_INTERVAL_MS <= value <= MAX_INTERVAL_MS:
            raise ValueError(f"must be between {MIN_INTERVAL_MS} and {MAX_INTERVAL_MS} ms")

    # -- hooks of this node's instance
    @hookimpl
    def p2pkit_datagram_handlers(self, node: Node) -> Any:
        return [([PING, PONG], self.on_datagrams)]

    @hookimpl
    def p2pkit_services(self, node: Node) -> Any:
        return [self.serve]

    @hookimpl
    def p2pkit_fields(self, node: Node) -> Any:
        return [
            Field("ping.sent", FieldType.INT, lambda: self.sent),
            Field("ping.answered", FieldType.INT, lambda: self.answered),
            Field("ping.rtt_ms", FieldType.FLOAT, lambda: self.last_rtt_ms),
            Field("ping.interval_ms", FieldType.INT, lambda: self.interval_ms,
                  setter=self._set_interval, validate=self._check_interval),
        ]


class PingPlugin:
    """The module-level plugin: owns the config section and makes one Pinger per node."""

    p2pkit_name = "ping"

    @hookimpl
    def p2pkit_config_sections(self) -> Any:
        return {"ping": PingConfig}

    @hookimpl
    def p2pkit_node_plugins(self, node: Node) -> Any:
        return [Pinger(node)]


plugin = PingPlugin()
