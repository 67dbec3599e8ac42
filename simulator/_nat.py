"""NAT boxes with the RFC 3489 behaviours, as sans-IO state machines.

=====================  ===================================  ================================
type                   mapping (RFC 4787 terms)             inbound filtering
=====================  ===================================  ================================
full-cone              endpoint-independent                 none: anyone may send
restricted-cone        endpoint-independent                 address-dependent
port-restricted-cone   endpoint-independent                 address- and port-dependent
symmetric              address- and port-dependent          address- and port-dependent
udp-blocked            (a firewall) every UDP packet is dropped both ways
=====================  ===================================  ================================

A mapping and its permissions expire ``mapping_timeout`` seconds after the last outbound
packet that used them (and after inbound ones too if ``inbound_refresh``). Expiry is lazy:
a stale mapping is noticed and removed when it is next looked up.
"""

from __future__ import annotations

import enum
import numbers
import random
from typing import TYPE_CHECKING

import attrs

from ._validate import finite

if TYPE_CHECKING:
    from ._network import Host

Address = tuple[str, int]


class NatType(enum.Enum):
    """The behaviours a NAT box can have (``open`` means: no NAT at all)."""

    OPEN = "open"
    FULL_CONE = "full-cone"
    RESTRICTED_CONE = "restricted-cone"
    PORT_RESTRICTED_CONE = "port-restricted-cone"
    SYMMETRIC = "symmetric"
    UDP_BLOCKED = "udp-blocked"

    @classmethod
    def parse(cls, value: str) -> NatType:
        normalized = value.strip().lower().replace("_", "-").replace(" ", "-")
        for member in cls:
            if member.value == normalized:
                return member
        names = ", ".join(m.value for m in cls)
        raise ValueError(f"unknown NAT type {value!r} (expected one of: {names})")


# External ports start at port_base plus a seeded offset below this.
PORT_OFFSETS = 1000
MAX_PORT_BASE = 65535 - (PORT_OFFSETS - 1)


def _nat_type(value: NatType | str) -> NatType:
    """A NatType, or its name as everywhere else (``"symmetric"``): a string was kept as
    it was, ran as a cone NAT (it matched no member) and crashed the report."""
    if isinstance(value, NatType):
        return value
    if isinstance(value, str):
        return NatType.parse(value)
    raise TypeError(f"NAT type must be a NatType or its name, got {value!r}")


def _mapping_timeout(value: float) -> float:
    return finite("mapping_timeout", value)


def _port_base(value: int) -> int:
    # numbers.Integral: numpy's integers too, as the rest of the API takes them
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
            or not 1 <= value <= MAX_PORT_BASE):
        raise ValueError(f"port_base must be an integer in 1..{MAX_PORT_BASE} (external "
                         f"ports start up to {PORT_OFFSETS - 1} above it), got {value!r}")
    return int(value)


@attrs.frozen
class NatProfile:
    """Configuration of a NAT box. ``type`` is a :class:`NatType` or its name."""

    type: NatType = attrs.field(default=NatType.PORT_RESTRICTED_CONE, converter=_nat_type)
    mapping_timeout: float = attrs.field(default=30.0, converter=_mapping_timeout)
    hairpin: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    inbound_refresh: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    # first external port handed out (plus a seeded offset below PORT_OFFSETS)
    port_base: int = attrs.field(default=20000, converter=_port_base)


# Reasons a NAT refuses a packet (used as drop-counter names).
NAT_NO_MAPPING = "nat_no_mapping"
NAT_FILTERED = "nat_filtered"
FIREWALL = "firewall"


class Mapping:
    """One external port of a NAT and what it may receive."""

    __slots__ = ("external_port", "internal", "key", "last_used", "permissions")

    def __init__(
        self, key: tuple[object, ...], internal: Address, external_port: int, now: float
    ) -> None:
        self.key = key
        self.internal = internal
        self.external_port = external_port
        self.last_used = now
        # remote address (or remote IP for restricted-cone) -> last outbound packet time
        self.permissions: dict[object, float] = {}


class NatBox:
    """A NAT in front of one or more private hosts (sans-IO: time is passed in)."""

    def __init__(self, profile: NatProfile, public_ip: str, rng: random.Random) -> None:
        self.profile = profile
        self.type = profile.type
        self.public_ip = public_ip
        self._rng = rng
        self._next_port = profile.port_base + rng.randrange(0, PORT_OFFSETS)
        self._by_key: dict[tuple[object, ...], Mapping] = {}
        self._by_port: dict[int, Mapping] = {}
        self.mappings_created = 0
        # Set by the Network that owns the box: hosts behind it by private IP, core site.
        self.lan: dict[str, Host] = {}
        self.site = -1
        self.site_name = ""
        self.group = ""

    # -------------------------------------------------------------- outbound

    def outbound(self, internal: Address, remote: Address, now: float) -> int | str:
        """Translate an outbound packet; returns the external port or a drop reason."""
        nat_type = self.type
        if nat_type is NatType.UDP_BLOCKED:
            return FIREWALL
        if nat_type is NatType.SYMMETRIC:
            key: tuple[object, ...] = (internal, remote)
        else:
            key = (internal,)
        mapping = self._by_key.get(key)
        if mapping is not None and now - mapping.last_used > self.profile.mapping_timeout:
            self._remove(key, mapping)
            mapping = None
        if mapping is None:
            mapping = Mapping(key, internal, self._allocate_port(), now)
            self._by_key[key] = mapping
            self._by_port[mapping.external_port] = mapping
            self.mappings_created += 1
        mapping.last_used = now
        if nat_type is NatType.RESTRICTED_CONE:
            mapping.permissions[remote[0]] = now
        elif nat_type is not NatType.FULL_CONE:
            mapping.permissions[remote] = now
        return mapping.external_port

    def _allocate_port(self) -> int:
        for _ in range(65536):
            port = self._next_port
            self._next_port = port + 1 if port < 65535 else 1024
            if port not in self._by_port:
                return port
        raise RuntimeError("NAT out of external ports")

    def _remove(self, key: tuple[object, ...], mapping: Mapping) -> None:
        if self._by_key.get(key) is mapping:
            del self._by_key[key]
        if self._by_port.get(mapping.external_port) is mapping:
            del self._by_port[mapping.external_port]

    # -------------------------------------------------------------- inbound

    def inbound(self, external_port: int, remote: Address, now: float) -> Address | str:
        """Translate an inbound packet; returns the internal address or a drop reason."""
        nat_type = self.type
        if nat_type is NatType.UDP_BLOCKED:
            return FIREWALL
        mapping = self._by_port.get(external_port)
        timeout = self.profile.mapping_timeout
        if mapping is None:
            return NAT_NO_MAPPING
        if now - mapping.last_used > timeout:
            self._remove(mapping.key, mapping)
            return NAT_NO_MAPPING
        if nat_type is not NatType.FULL_CONE:
            permission = remote[0] if nat_type is NatType.RESTRICTED_CONE else remote
            granted = mapping.permissions.get(permission)
            if granted is None or now - granted > timeout:
                return NAT_FILTERED
            if self.profile.inbound_refresh:
                mapping.permissions[permission] = now
        if self.profile.inbound_refresh:
            mapping.last_used = now
        return mapping.internal

    # -------------------------------------------------------------- inspection

    def active_mappings(self, now: float) -> list[tuple[Address, int]]:
        """(internal address, external port) of every live mapping, in creation order."""
        timeout = self.profile.mapping_timeout
        return [
            (m.internal, m.external_port)
            for m in self._by_key.values()
            if now - m.last_used <= timeout
        ]
