"""FloodingDiscovery offers every member of the kernel's Discovery protocol, with the same
kind (coroutine or plain function), so other plugins can rely on the protocol alone."""

from __future__ import annotations

import inspect

from p2pkit.plugins.flooding import FloodingDiscovery

from p2pkit.capabilities import Discovery


def test_flooding_discovery_implements_the_discovery_protocol() -> None:
    members = [name for name, value in vars(Discovery).items()
               if callable(value) and not name.startswith("_")]
    assert "address_of" in members and "find_providers" in members
    for name in members:
        expected = getattr(Discovery, name)
        actual = getattr(FloodingDiscovery, name, None)
        assert actual is not None, f"FloodingDiscovery lacks {name}"
        assert inspect.iscoroutinefunction(actual) == inspect.iscoroutinefunction(expected), name
        wanted = list(inspect.signature(expected).parameters)
        got = list(inspect.signature(actual).parameters)
        assert got[: len(wanted)] == wanted or len(got) == len(wanted), (name, got, wanted)
