"""Limited flooding (seed 004 §4.3.3): peer and content discovery for small networks.

Provides the ``discovery`` capability (:class:`FloodingDiscovery`), the ``[flooding]``
config section and the ``p2pkit files`` / ``p2pkit search`` commands. See
``docs/plugins/flooding.md``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from p2pkit.hookspecs import hookimpl

from ._config import FloodingConfig
from ._core import FloodCore, OriginRecord, Output, matches
from ._discovery import FloodingDiscovery, entry_from_item
from ._messages import (
    PROTOCOL,
    Announce,
    AnnounceBody,
    Entry,
    Hits,
    HitsBody,
    LanBeacon,
    PeerInfo,
    PeerList,
    Query,
)

__all__ = [
    "PROTOCOL",
    "Announce",
    "AnnounceBody",
    "Entry",
    "FloodCore",
    "FloodingConfig",
    "FloodingDiscovery",
    "Hits",
    "HitsBody",
    "LanBeacon",
    "OriginRecord",
    "Output",
    "PeerInfo",
    "PeerList",
    "Query",
    "entry_from_item",
    "matches",
]


@hookimpl
def p2pkit_capabilities() -> Mapping[str, Callable[[Any], Any]]:
    return {"discovery": FloodingDiscovery}


@hookimpl
def p2pkit_config_sections() -> Mapping[str, type]:
    return {"flooding": FloodingConfig}


@hookimpl
def p2pkit_cli_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    from ._cli import add_commands  # the CLI imports rich; nodes do not need it

    add_commands(subparsers)
