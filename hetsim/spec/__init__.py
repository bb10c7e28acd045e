"""What the machine is: compute units, memories, links and power states, as frozen values."""

from hetsim.spec.loader import list_presets, load_platform, platform_from_dict
from hetsim.spec.types import MATRIX_OPS, ComputeUnit, Link, Memory, Platform, PowerState, Route

__all__ = ["MATRIX_OPS", "ComputeUnit", "Link", "Memory", "Platform", "PowerState", "Route", "list_presets",
           "load_platform", "platform_from_dict"]
