"""Hooks the rudp plugin adds to p2pkit (registered through ``p2pkit_addhooks``)."""

from __future__ import annotations

from collections.abc import Mapping

from p2pkit.hookspecs import hookspec

from .congestion import CongestionFactory


@hookspec
def p2pkit_rudp_congestion_controllers() -> Mapping[str, CongestionFactory]:  # type: ignore[empty-body]
    """Extra congestion controllers: ``{"name": factory}``, selectable with
    ``[rudp] congestion = "name"``. ``factory(max_datagram, initial_cwnd)`` returns an
    object implementing :class:`p2pkit.plugins.rudp.congestion.CongestionController`.
    Not firstresult: every plugin's mappings are merged (later plugins win on a clash)."""
