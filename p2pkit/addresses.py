"""Network addresses: what a host may be, and turning a name into one.

Addresses reach a node from people (``--bootstrap``, a config file) and from peers (peer
exchange, announcements). The transport only ever sees IP literals: a name handed to a
socket would be looked up again, blocking, on every datagram, and a malformed one (a NUL
byte, a label IDNA cannot encode) makes ``sendto`` raise TypeError or UnicodeError —
errors nothing expects from UDP. So peers may only tell us unicast IP literals (decoders
check :func:`is_peer_address`), and a name a person gave is resolved once, asynchronously,
before dialing (:func:`resolve`).
"""

from __future__ import annotations

import ipaddress
import socket

import trio

from ._exceptions import ConfigError
from .endpoint import Address

MAX_HOST_NAME = 253  # DNS's limit on a full name
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_ip_literal(host: str) -> bool:
    """``host`` is an IPv4 or IPv6 address written out (no brackets, no zone)."""
    return _ip(host) is not None


MAX_KNOWN_SEND_HOSTS = 65536  # IP literals an endpoint remembers (then forgets at once)


def check_send_host(host: str, known: set[str], sender: str) -> None:
    """ValueError unless ``host`` is an IP literal (or ``"<broadcast>"``, sendto's own
    name, looked up by nobody): a name would be looked up by ``sendto``, blocking the
    event loop, on every datagram (and one that does not resolve lost without a word).
    A host that passes is added to ``known``, the endpoint's set that spares the check
    for it from then on: a set lookup per datagram. ``sender`` names the endpoint."""
    if not is_ip_literal(host) and host != "<broadcast>":
        raise ValueError(
            f"{sender}: cannot send to {host!r}: not an IP address. Resolve a host name "
            "once, before sending (await p2pkit.addresses.resolve((host, port)))")
    if len(known) >= MAX_KNOWN_SEND_HOSTS:
        known.clear()
    known.add(host)


def is_peer_address(host: str) -> bool:
    """``host`` is an IP literal a peer may tell us to dial: not a multicast, broadcast or
    unspecified address (a SYN there reaches every host on a LAN, or nobody)."""
    ip = _ip(host)
    return ip is not None and not (ip.is_multicast or ip.is_unspecified or ip == _BROADCAST)


def check_host(host: str) -> str:
    """``host`` if it is an IP literal or a name DNS could hold; ValueError naming why not."""
    if is_ip_literal(host):
        return host
    if not host or len(host) > MAX_HOST_NAME:
        raise ValueError(f"host name of {len(host)} characters")
    if not host.isprintable() or any(c.isspace() for c in host):
        raise ValueError("host name with control or space characters")
    try:
        host.encode("idna")
    except UnicodeError as exc:
        raise ValueError(f"host name IDNA cannot encode ({exc})") from None
    return host


def parse_address(text: str, what: str = "bootstrap address") -> Address:
    """``host:port`` → (host, port), with a ConfigError naming the bad value (``what``)."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdecimal():
        raise ConfigError(f"{what} {text!r}: expected host:port")
    if not 0 < int(port) < 65536:
        raise ConfigError(f"{what} {text!r}: the port must be 1..65535")
    try:
        check_host(host)
    except ValueError as exc:
        raise ConfigError(f"{what} {text!r}: {exc}") from None
    return host, int(port)


async def resolve(addr: Address) -> Address:
    """``addr`` with its host as an IP literal: unchanged when it is one already (no
    lookup, no thread — what a simulated node always has), otherwise the first address
    the system resolver gives. OSError (``socket.gaierror``) when the name does not
    resolve or is not a host name at all."""
    host, port = addr
    if is_ip_literal(host):
        return addr
    try:
        check_host(host)
        infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (ValueError, UnicodeError) as exc:
        raise socket.gaierror(socket.EAI_NONAME, f"{host!r}: {exc}") from None
    if not infos:
        raise socket.gaierror(socket.EAI_NONAME, f"{host!r} resolves to no address")
    return str(infos[0][4][0]), port


__all__ = ["MAX_HOST_NAME", "MAX_KNOWN_SEND_HOSTS", "check_host", "check_send_host", "is_ip_literal", "is_peer_address", "parse_address",
           "resolve"]
