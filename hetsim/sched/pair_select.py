"""Pair selection shared by ETF and DLS: each step starts the best (ready op, unit) pair.

Ops go at the end of their unit's queue (no insertion into idle gaps), starting at the later of
their inputs' arrival and the unit's last finish.
"""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.sched.insertion import Timeline
from hetsim.sched.order import ReadyOps
from hetsim.sched.schedule import Schedule

#: (op, unit, earliest start) -> sort key; the smallest key is started next
PairKey = Callable[[str, str, float], tuple]


def select_pairs(name: str, graph: nx.DiGraph, cost: CostModel, key: PairKey) -> Schedule:
    """Repeatedly start the ready (op, unit) pair with the smallest ``key``."""
    units = [u.name for u in cost.platform.units]
    timeline = Timeline(units)
    free = dict.fromkeys(units, 0.0)
    ready = ReadyOps(graph)
    while ready:
        best: tuple[tuple, float, str, str] | None = None
        for op in ready:
            for unit in cost.capable_units(op):
                start = max(free[unit], timeline.ready_time(graph, cost, op, unit))
                k = key(op, unit, start)
                if best is None or k < best[0]:
                    best = (k, start, op, unit)
        _, start, op, unit = best
        finish = start + cost.time(op, unit)
        timeline.place(op, unit, start, finish)
        free[unit] = finish
        ready.take(op)
        ready.done(op)
    return timeline.schedule(name)
