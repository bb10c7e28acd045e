"""Fastest unit: the whole graph on one unit, the baseline of speedup (SAGA's FastestNode)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from hetsim.sched.baselines import Single
from hetsim.sched.registry import register


@register
@dataclass(frozen=True)
class Fastest(Single):
    """Fastest unit: every op, in program order, on the one unit that runs the whole graph soonest.

    The sequential reference of the speedup metric (Topcuoglu et al., TPDS 2002, §5): the unit
    with the least total op time among those able to run every op (ties: platform order). No
    communication is ever paid. Unlike ``single`` it takes no options.
    """

    name: ClassVar[str] = "fastest"
    unit: None = field(default=None, init=False)
