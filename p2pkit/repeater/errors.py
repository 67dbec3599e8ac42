"""Errors of the repeater (server setup and client calls)."""

from __future__ import annotations

from .._exceptions import P2PKitError


class RepeaterError(P2PKitError):
    """A repeater call failed: the node answered with an error, or could not be reached."""


class RepeaterUnavailable(RepeaterError):
    """Nothing is listening on the socket, or the connection broke mid-call."""


class RepeaterRemoteError(RepeaterError):
    """The node answered with an error reply (func_type 0); the message is the node's."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class RepeaterAddressInUse(RepeaterError):
    """The socket path is held by a live repeater, or by a file that is not a socket."""
