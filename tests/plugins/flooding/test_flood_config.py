"""The ``[flooding]`` section refuses what the plugin could not use."""

from __future__ import annotations

import pytest
from p2pkit.plugins.flooding._config import FloodingConfig


@pytest.mark.parametrize("address", ["lan.example", "localhost", ""])
def test_a_lan_address_that_is_not_an_ip_is_refused_at_start(address: str) -> None:
    # the node's socket sends to IP literals only: the first beacon stopped the node
    with pytest.raises(ValueError, match="lan_address must be an IP address"):
        FloodingConfig(lan_address=address)
    assert FloodingConfig(lan_address="192.168.1.255").lan_address == "192.168.1.255"
