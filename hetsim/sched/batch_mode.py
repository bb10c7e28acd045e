"""Batch-mode heuristics on a DAG (Min-Min, Max-Min, Sufferage; Braun et al., JPDC 61(6), 2001).

At each step every ready op is placed tentatively on every capable unit (insertion based, inputs'
communication included); a selection rule picks one op, which goes to its earliest-finish unit.
Ties go to the op inserted first in the graph.
"""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.sched.insertion import Timeline
from hetsim.sched.order import ReadyOps
from hetsim.sched.schedule import Schedule

#: (finish times of one op on its capable units, sorted ascending) -> score; the highest score wins
Score = Callable[[list[float]], float]


def batch_schedule(name: str, graph: nx.DiGraph, cost: CostModel, score: Score) -> Schedule:
    """Place ready ops one at a time, the one with the highest ``score`` first.

    Each ready op's earliest finish per unit is kept between steps: placing an op changes only
    its own unit's timeline, so only that unit's entries are recomputed.
    """
    timeline = Timeline([u.name for u in cost.platform.units])
    ready = ReadyOps(graph)
    finish: dict[str, dict[str, float]] = {}
    while ready:
        best = None
        for op in ready:
            if op not in finish:
                finish[op] = {u: timeline.eft(graph, cost, op, u)[1] for u in cost.capable_units(op)}
            value = score(sorted(finish[op].values()))
            if best is None or value > best[0]:
                best = (value, op)
        op = best[1]
        unit = timeline.place_earliest(graph, cost, op)
        del finish[op]
        ready.take(op)
        ready.done(op)
        for other, row in finish.items():
            row[unit] = timeline.eft(graph, cost, other, unit)[1]
    return timeline.schedule(name)
