"""Abstract platforms for classic scheduling instances, whose costs are given per task and unit.

Each unit works in a memory of its own; the memories meet at one switch over links that cost
nothing, because an instance's edges carry their own communication cost. Units draw no power:
an instance says nothing about energy.
"""

from __future__ import annotations

import math

from hetsim.spec.types import ComputeUnit, Link, Memory, Platform, PowerState

_IDLE = PowerState("nominal", freq_hz=1.0, voltage_v=1.0, static_power_w=0.0, dynamic_power_w=0.0)


def abstract_platform(units: list[str], name: str = "instance") -> Platform:
    """A platform of abstract units, one memory each, joined by cost-free links.

    Examples
    --------
    >>> p = abstract_platform(["P1", "P2"])
    >>> [u.name for u in p.units], p.route("mem-P1", "mem-P2").time_s(1e9)
    (['P1', 'P2'], 0.0)
    """
    return Platform(
        name=name,
        units=tuple(ComputeUnit(u, "abstract", f"mem-{u}", {}, 1.0, (_IDLE,)) for u in units),
        memories=tuple(Memory(f"mem-{u}", "abstract", math.inf, math.inf) for u in units),
        links=tuple(Link(f"link-{u}", f"mem-{u}", "switch", math.inf) for u in units),
        switches=("switch",),
        description="abstract units of a classic scheduling instance (costs given per task and unit)",
        source="the instance file",
    )
