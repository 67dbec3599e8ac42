"""``[web]`` config section: where the UI listens and what it accepts."""

from __future__ import annotations

import ipaddress

import attrs


def _port(_inst: object, _attr: object, value: int) -> None:
    if not 0 <= value < 65536:
        raise ValueError("web.http_port must be 0..65535")


def _positive(_inst: object, attr: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise ValueError(f"web.{attr.name} must be > 0")


@attrs.define
class WebConfig:
    """``[web]``: the HTTP side of ``p2pkit web``."""

    host: str = "127.0.0.1"  # anything but loopback requires the access token
    http_port: int = attrs.field(default=3000, validator=_port)
    max_upload_mb: int = attrs.field(default=1024, validator=_positive)
    token: str = ""  # "" = generated at start when the host is not loopback
    history_entries: int = attrs.field(default=1000, validator=_positive)  # newest kept


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (``localhost``, 127/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
