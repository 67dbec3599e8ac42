"""p2pkit simulator: many real nodes over lossy virtual links, in virtual time."""

from ._core import CoreLatency
from ._direction import HEADER_BYTES
from ._dist import Distribution
from ._endpoint import VirtualEndpoint
from ._link import LinkProfile
from ._loss import LossSpec, gilbert_elliott_stationary_loss
from ._nat import NatBox, NatProfile, NatType
from ._network import Host, Network
from ._rng import derive_bytes, derive_rng, derive_seed
from ._runner import load, run_file
from ._scenario import ScenarioError, ScenarioSpec, builtin_scenarios, parse_scenario
from ._sim import SimNode, Simulation

__all__ = [
    "HEADER_BYTES",
    "CoreLatency",
    "Distribution",
    "Host",
    "LinkProfile",
    "LossSpec",
    "NatBox",
    "NatProfile",
    "NatType",
    "Network",
    "ScenarioError",
    "ScenarioSpec",
    "SimNode",
    "Simulation",
    "VirtualEndpoint",
    "builtin_scenarios",
    "derive_bytes",
    "derive_rng",
    "derive_seed",
    "gilbert_elliott_stationary_loss",
    "load",
    "parse_scenario",
    "run_file",
]
