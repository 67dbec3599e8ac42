"""Errors raised by the p2pkit kernel.

    P2PKitError                 base of every p2pkit error
    ├── ConfigError             a config file, variable or flag is wrong (names the key)
    ├── PluginError             a plugin cannot be loaded or two disagree
    │   └── CapabilityError     a capability has no provider, or more than one
    ├── FieldError              a field is unknown, read-only, or given a bad value
    ├── LocalProtocolError      we tried to do something our own protocol forbids
    ├── RemoteProtocolError     a peer sent something malformed or out of place
    ├── SessionClosed           the session or peer went away
    └── NodeStateError          the node is not in a state that allows the call
"""

from __future__ import annotations


class P2PKitError(Exception):
    """Base class of every error p2pkit raises on purpose."""


class ConfigError(P2PKitError):
    """A configuration value is unknown or has the wrong type; the message names the key."""


class PluginError(P2PKitError):
    """A plugin could not be loaded, or declared a hook that does not exist."""


class CapabilityError(PluginError):
    """A capability has no provider although one is required, or several and none chosen."""


class FieldError(P2PKitError):
    """A field is unknown, read-only, or the value does not fit its type."""


class LocalProtocolError(P2PKitError):
    """This side broke the protocol (a bug or misuse of the API); never caused by a peer."""


class RemoteProtocolError(P2PKitError):
    """The peer sent something malformed or out of place; closes that session, never the node."""


class SessionClosed(P2PKitError):
    """The session (or the peer behind it) is closed; no more messages can flow."""


class NodeStateError(P2PKitError):
    """The call needs the node in another lifecycle state (for example, running)."""


def leaf_exceptions(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The exceptions in ``group`` and in the groups nested in it: nurseries wrap even a
    lone error, once per nursery it crosses."""
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(leaf_exceptions(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def validator_message(exc: BaseException) -> str:
    """What a validator said, without the rest: attrs' built-in validators raise
    ``ValueError(message, attribute, ...)``, whose text is a tuple with a whole
    ``Attribute(...)`` repr in it."""
    first = exc.args[0] if exc.args else None
    return first if isinstance(first, str) and len(exc.args) > 1 else str(exc)
