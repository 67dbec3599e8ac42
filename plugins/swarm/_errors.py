"""Errors of the swarm plugin.

    P2PKitError (kernel)
    └── SwarmError               a download cannot be carried out
        ├── P2PDisabledError     cfg.p2p_enabled is false: no peer transfer at all
        └── NoProvidersError     nobody offered the content (manifest) in time
"""

from __future__ import annotations

from p2pkit._exceptions import P2PKitError


class SwarmError(P2PKitError):
    """A download cannot be carried out (bad rid, store full, ...)."""


class P2PDisabledError(SwarmError):
    """``cfg.p2p_enabled`` is false, so no piece is exchanged with peers."""


class NoProvidersError(SwarmError):
    """No peer offered the content within the wait (``swarm.provider_wait_s``)."""


__all__ = ["NoProvidersError", "P2PDisabledError", "SwarmError"]
