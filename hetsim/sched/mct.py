"""MCT: Minimum Completion Time (Armstrong, Hensgen & Kidd 1998; Braun et al., JPDC 61(6), 2001)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from hetsim.sched.eft import EFT
from hetsim.sched.registry import register


@register
@dataclass(frozen=True)
class MCT(EFT):
    """MCT: each op, in program order, on the unit where it completes first, whatever its speed there.

    The rule of Braun et al., "A comparison of eleven static heuristics for mapping a class of
    independent tasks onto heterogeneous distributed computing systems", JPDC 61(6), 2001, §2:
    tasks in arbitrary (here: program) order, each to the machine with the minimum completion
    time given the machines' current loads, communication included, no insertion into gaps.
    It is the rule of hetsim's default ``eft`` under its name in the literature; the two are
    kept apart so that published comparisons can name it.
    """

    name: ClassVar[str] = "mct"
