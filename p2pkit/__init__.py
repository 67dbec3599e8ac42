"""p2pkit: a peer-to-peer networking toolkit on trio.

    import trio, p2pkit

    async def main():
        async with p2pkit.open_node(p2pkit.load_config()) as node:
            print("node", node.id, "listening on", node.endpoint.local_address)
            await trio.sleep_forever()

The kernel is small: a node owns one nursery, one datagram endpoint, a field registry and
a pluggy plugin manager; transport, discovery, storage, swarm and AI come from plugins.
"""

# first: with P2PKIT_PURE_PYTHON set, no compiled module may load before this
from . import compiled as compiled
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
from .version import __version__

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
