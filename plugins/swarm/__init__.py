"""The swarm plugin: multi-source, verified piece exchange between peers.

In a node it provides the ``swarm`` capability (``node.swarm``, ``node.download(rid)``)
and the ``p2pkit get`` command. The sans-IO cores (picker, choker, pipeline
sizing) are usable on their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from p2pkit.hookspecs import hookimpl

from ._choker import Choker, PeerView
from ._errors import NoProvidersError, P2PDisabledError, SwarmError
from ._picker import Block, PiecePicker
from ._pipeline import RateMeter, pipeline_depth
from ._provider import SwarmConfig, SwarmProvider

__all__ = [
    "Block",
    "Choker",
    "NoProvidersError",
    "P2PDisabledError",
    "PeerView",
    "PiecePicker",
    "RateMeter",
    "SwarmConfig",
    "SwarmError",
    "SwarmProvider",
    "pipeline_depth",
]


@hookimpl
def p2pkit_capabilities() -> Mapping[str, Callable[[Any], Any]]:
    return {"swarm": SwarmProvider}


@hookimpl
def p2pkit_config_sections() -> Mapping[str, type]:
    return {"swarm": SwarmConfig}


@hookimpl
def p2pkit_cli_commands(subparsers: Any) -> None:
    from ._cli import add_get_command

    add_get_command(subparsers)
