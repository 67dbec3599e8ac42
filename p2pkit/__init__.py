"""p2pkit: a peer-to-peer networking toolkit on trio.

    import trio, p2pkit

    async def main():
        async with p2pkit.open_node(p2pkit.load_config()) as node:
            print("node", node.id, "listening on", node.endpoint.local_address)
            await trio.sleep_forever()

The kernel is small: a node owns one nursery, one datagram endpoint, a field registry and
a pluggy plugin manager; transport, discovery, storage, swarm and AI come from plugins.
"""

import importlib
from typing import TYPE_CHECKING, Any

# first: with P2PKIT_PURE_PYTHON set, no compiled module may load before this
from . import compiled as compiled
from .version import __version__

# The names below load when first used (``p2pkit.open_node``, ``from p2pkit import
# Node``): ``import p2pkit`` stays cheap, and the ``p2pkit`` command's entry point
# (``p2pkit.cli``, a module of this package) can catch a Ctrl-C that comes while trio,
# rich and the kernel load, which it could not while this file imported them.
if TYPE_CHECKING:
    from ._exceptions import (
        CapabilityError,
        ConfigError,
        FieldError,
        LocalProtocolError,
        NodeStateError,
        P2PKitError,
        PluginError,
        RemoteProtocolError,
        SessionClosed,
    )
    from .capabilities import CHANNEL_BULK, CHANNEL_CONTROL
    from .config import NodeConfig, load_config
    from .endpoint import Address, DatagramEndpoint, EndpointStats
    from .events import ContentAdded, ContentRemoved, Event, GenericEvent, Notice, PeerDown, PeerUp
    from .fields import Field, FieldRegistry, FieldType
    from .hookspecs import hookimpl
    from .identity import Identity
    from .node import Node, NodeState, open_node
    from .peers import MessageProtocol, Peer

_LAZY = {
    "Address": ".endpoint",
    "CHANNEL_BULK": ".capabilities",
    "CHANNEL_CONTROL": ".capabilities",
    "CapabilityError": "._exceptions",
    "ConfigError": "._exceptions",
    "ContentAdded": ".events",
    "ContentRemoved": ".events",
    "DatagramEndpoint": ".endpoint",
    "EndpointStats": ".endpoint",
    "Event": ".events",
    "Field": ".fields",
    "FieldError": "._exceptions",
    "FieldRegistry": ".fields",
    "FieldType": ".fields",
    "GenericEvent": ".events",
    "Identity": ".identity",
    "LocalProtocolError": "._exceptions",
    "MessageProtocol": ".peers",
    "Node": ".node",
    "NodeConfig": ".config",
    "NodeState": ".node",
    "NodeStateError": "._exceptions",
    "Notice": ".events",
    "P2PKitError": "._exceptions",
    "Peer": ".peers",
    "PeerDown": ".events",
    "PeerUp": ".events",
    "PluginError": "._exceptions",
    "RemoteProtocolError": "._exceptions",
    "SessionClosed": "._exceptions",
    "hookimpl": ".hookspecs",
    "load_config": ".config",
    "open_node": ".node",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        if name.startswith("_"):
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        # a submodule, as `import p2pkit; p2pkit.config` found it when this file imported
        # them all
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise  # the submodule is there, something it imports is not
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "CHANNEL_BULK",
    "CHANNEL_CONTROL",
    "Address",
    "CapabilityError",
    "ConfigError",
    "ContentAdded",
    "ContentRemoved",
    "DatagramEndpoint",
    "EndpointStats",
    "Event",
    "Field",
    "FieldError",
    "FieldRegistry",
    "FieldType",
    "GenericEvent",
    "Identity",
    "LocalProtocolError",
    "MessageProtocol",
    "Node",
    "NodeConfig",
    "NodeState",
    "NodeStateError",
    "Notice",
    "P2PKitError",
    "Peer",
    "PeerDown",
    "PeerUp",
    "PluginError",
    "RemoteProtocolError",
    "SessionClosed",
    "__version__",
    "hookimpl",
    "load_config",
    "open_node",
]
