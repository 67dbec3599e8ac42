"""p2pkit simulator: many real nodes over lossy virtual links, in virtual time."""

from ._core import CoreLatency
from ._endpoint import VirtualEndpoint
from ._link import HEADER_BYTES, LinkProfile
from ._loss import LossSpec, gilbert_elliott_stationary_loss
from ._nat import NatBox, NatProfile, NatType
from ._network import Host, Network
from ._rng import derive_bytes, derive_rng, derive_seed

__all__ = [
    "HEADER_BYTES",
    "CoreLatency",
    "Host",
    "LinkProfile",
    "LossSpec",
    "NatBox",
    "NatProfile",
    "NatType",
    "Network",
    "VirtualEndpoint",
    "derive_bytes",
    "derive_rng",
    "derive_seed",
    "gilbert_elliott_stationary_loss",
]
