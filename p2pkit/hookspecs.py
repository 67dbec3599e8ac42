"""Hook specifications of p2pkit, the whole plugin contract in one file.

A plugin is a module or object with functions marked ``@hookimpl`` whose names are the
hooks below. Hooks are synchronous: they return objects or factories, and the kernel
starts any async work in the node's nursery.

Capability providers (``p2pkit_capabilities``) are instantiated per node; the selected
provider instance is then registered as a plugin of that node, so its own ``@hookimpl``
methods (services, datagram handlers, fields, ...) are called for that node only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import argparse

    from .events import Event
    from .fields import Field
    from .node import Node, Service
    from .peers import DatagramHandler, MessageProtocol

hookspec = pluggy.HookspecMarker("p2pkit")
hookimpl = pluggy.HookimplMarker("p2pkit")

# ---------------------------------------------------------------------------- set-up


@hookspec(historic=True)
def p2pkit_addhooks(pluginmanager: pluggy.PluginManager) -> None:
    """Add hook specifications of a plugin (``pluginmanager.add_hookspecs(module)``)."""


@hookspec
def p2pkit_config_sections() -> Mapping[str, type]:
    """Config sections this plugin owns: ``{"rudp": RudpConfig}`` (attrs classes).

    The TOML table ``[rudp]``, the variables ``P2PKIT_RUDP__<KEY>`` and ``--set
    rudp.key=value`` are validated against the class; the instance is then available as
    ``node.config.section("rudp")``.
    """


@hookspec
def p2pkit_capabilities() -> Mapping[str, Callable[[Node], Any]]:
    """Capabilities this plugin can provide: ``{"transport": factory}``.

    ``factory(node)`` builds the provider for one node. Only the provider chosen for a
    capability is built; it is registered as a plugin of that node afterwards.
    """


@hookspec
def p2pkit_node_plugins(node: Node) -> Iterable[Any]:
    """Per-node plugin objects for plugins that keep state per node but provide no
    capability: each returned object is registered as a plugin of ``node`` only, so its
    own ``@hookimpl`` methods (services, fields, handlers...) are called for that node."""


@hookspec
def p2pkit_cli_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add sub-commands to the ``p2pkit`` command line (set ``func`` on the parser)."""


# ---------------------------------------------------------------------------- running


@hookspec
def p2pkit_services(node: Node) -> Iterable[Service]:
    """A list of long-running services, each ``async def serve(*, task_status)``, started
    in order in the node's nursery once the endpoint is up. Each must call
    ``task_status.started()`` when ready: ``open_node`` waits for it, for ever if it never
    comes."""


@hookspec
def p2pkit_datagram_handlers(node: Node) -> Iterable[tuple[Iterable[int], DatagramHandler]]:
    """Handlers for incoming datagrams keyed by their first byte:
    ``[(range(0x00, 0x02), stun_handler)]``. A handler is ``handler(batch, now)`` with
    ``batch`` a list of ``(data, addr)``; it must not block. Two plugins claiming the
    same first byte is a startup error."""


@hookspec
def p2pkit_message_protocols(node: Node) -> Iterable[MessageProtocol]:
    """Named application protocols carried over peer sessions (``swarm``, ``flood``...):
    names of 1..32 ASCII bytes, each once per node. ``handle`` must not wait (see
    :class:`p2pkit.peers.MessageProtocol`)."""


@hookspec
def p2pkit_fields(node: Node) -> Iterable[Field]:
    """Typed fields for the registry and the repeater (``store.used_bytes``...)."""


@hookspec
def p2pkit_node_stopping(node: Node) -> None:
    """The node is about to stop, its peers still connected: queue any last messages
    (``Peer.send_nowait``). Sessions then deliver what is queued and close, within
    ``[node] stop_grace`` seconds. Must not block. Not called when the node's nursery
    already failed, nor when its host is gone (a crash says nothing)."""


@hookspec
def p2pkit_event(node: Node, event: Event) -> None:
    """Observe an event (peer up/down, content added/removed, ...). Must not block."""


@hookspec
def p2pkit_web_routes(node: Node, app: Any) -> None:
    """Add routes or blueprints to the node's web application (Quart)."""
