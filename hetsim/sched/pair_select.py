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
    """Repeatedly start the ready (op, unit) pair with the smallest ``key``.

    ``key`` must not decrease as the start grows (ETF's and DLS's do not). Then placing an op
    on a unit can only worsen that unit's pairs, so each ready op keeps its best pair and only
    the ops whose best pair was on that unit are looked at again: the same choices as
    comparing every pair at every step, in far fewer evaluations. An op's input arrival on
    each unit is fixed once it is ready, and computed once.
    """
    units = [u.name for u in cost.platform.units]
    timeline = Timeline(units)
    free = dict.fromkeys(units, 0.0)
    ready = ReadyOps(graph)
    arrival: dict[str, dict[str, float]] = {}
    best: dict[str, tuple[tuple, float, str]] = {}

    def best_pair(op: str) -> tuple[tuple, float, str]:
        if op not in arrival:
            arrival[op] = {u: timeline.ready_time(graph, cost, op, u) for u in cost.capable_units(op)}
        pairs = []
        for unit, at in arrival[op].items():
            start = max(free[unit], at)
            pairs.append((key(op, unit, start), start, unit))
        return min(pairs)

    while ready:
        members = ready.members  # keys are unique (they end in graph and platform positions): order is moot
        for op in members:
            if op not in best:
                best[op] = best_pair(op)
        op = min(members, key=lambda o: best[o][0])
        _, start, unit = best.pop(op)
        finish = start + cost.time(op, unit)
        timeline.place(op, unit, start, finish)
        free[unit] = finish
        ready.take(op)
        ready.done(op)
        for other, pair in list(best.items()):
            if pair[2] == unit:
                best[other] = best_pair(other)
    return timeline.schedule(name)
