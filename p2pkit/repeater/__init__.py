"""The repeater: a node's fields on a Unix domain socket (seed 004 §4.2).

See docs/repeater.md. Server: :func:`serve_repeater`; clients: :class:`RepeaterClient`
(blocking) and :class:`AsyncRepeaterClient` (trio); wire format: :mod:`.protocol`.
"""

from .client import AsyncRepeaterClient, FieldInfo, RepeaterClient
from .errors import RepeaterAddressInUse, RepeaterError, RepeaterRemoteError, RepeaterUnavailable
from .server import RepeaterStats, serve_repeater

__all__ = [
    "AsyncRepeaterClient",
    "FieldInfo",
    "RepeaterAddressInUse",
    "RepeaterClient",
    "RepeaterError",
    "RepeaterRemoteError",
    "RepeaterStats",
    "RepeaterUnavailable",
    "serve_repeater",
]
