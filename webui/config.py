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


def check_token(token: str) -> None:
    """ValueError unless ``token`` is "" or printable ASCII without spaces: an HTTP header
    carries it byte for byte (an "é" could be given in the URL, never by an API client)."""
    if token and not all(33 <= ord(c) <= 126 for c in token):
        raise ValueError("web.token must be printable ASCII without spaces")


def _token(_inst: object, _attr: object, value: str) -> None:
    check_token(value)


@attrs.define
class WebConfig:
    """``[web]``: the HTTP side of ``p2pkit web``."""

    host: str = "127.0.0.1"  # anything but loopback requires the access token
    http_port: int = attrs.field(default=3000, validator=_port)
    max_upload_mb: int = attrs.field(default=1024, validator=_positive)
    token: str = attrs.field(default="", validator=_token)  # "": generated when not on loopback
    history_entries: int = attrs.field(default=1000, validator=_positive)  # newest kept


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (``localhost``, 127/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
