"""rudp: reliable, congestion-controlled, multi-channel sessions over the node's UDP socket.

The plugin provides the ``transport`` capability. Protocol cores are sans-IO
(:mod:`.connection`, :mod:`.mux`); :mod:`.transport` is the thin trio driver.
See docs/plugins/rudp.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pluggy

from p2pkit.hookspecs import hookimpl

from . import bbr as _bbr  # noqa: F401  (registers "bbr")
from . import newreno as _newreno  # noqa: F401  (registers "newreno")
from .config import MAX_MESSAGE_SIZE, RudpConfig
from .congestion import (
    CongestionController,
    RateSample,
    congestion_controllers,
    register_congestion_controller,
)
from .connection import Connection, ConnectionState
from .mux import Multiplexer
from .packet import MAGIC, MalformedPacket, PacketType
from .transport import RudpSession, RudpTransport

__all__ = [
    "MAGIC",
    "MAX_MESSAGE_SIZE",
    "CongestionController",
    "Connection",
    "ConnectionState",
    "MalformedPacket",
    "Multiplexer",
    "PacketType",
    "RateSample",
    "RudpConfig",
    "RudpSession",
    "RudpTransport",
    "congestion_controllers",
    "register_congestion_controller",
]


@hookimpl
def p2pkit_addhooks(pluginmanager: pluggy.PluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def p2pkit_capabilities() -> Mapping[str, Any]:
    return {"transport": RudpTransport}


@hookimpl
def p2pkit_config_sections() -> Mapping[str, type]:
    return {"rudp": RudpConfig}
