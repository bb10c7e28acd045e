"""ETF: Earliest Task First (Hwang, Chow, Anger & Lee, SIAM J. Comput. 18(2), 1989)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.sched.insertion import Timeline
from hetsim.sched.ranks import upward_ranks
from hetsim.sched.registry import register
from hetsim.sched.schedule import Schedule


@register
@dataclass(frozen=True)
class ETF:
    """ETF: repeatedly start the (ready op, unit) pair that can start earliest.

    Implements Hwang, Chow, Anger & Lee, "Scheduling precedence graphs in systems with
    interprocessor communication times", SIAM J. Comput. 18(2):244-257, 1989, on unrelated units.
    An op is ready once all its predecessors are scheduled; its start on a unit is the later of
    its inputs' arrival and the unit's last finish (no insertion into gaps, as in the paper).
    Ties in start time go to the higher upward rank (:func:`hetsim.sched.ranks.upward_ranks`),
    then to the op inserted first in the graph, then to the unit listed first on the platform.
    """

    name: ClassVar[str] = "etf"

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule:
        rank = upward_ranks(graph, cost)
        index = {op: i for i, op in enumerate(graph)}
        units = [u.name for u in cost.platform.units]
        position = {u: i for i, u in enumerate(units)}
        timeline = Timeline(units)
        free = dict.fromkeys(units, 0.0)
        pending = {op: graph.in_degree(op) for op in graph}
        ready = {op for op in graph if pending[op] == 0}
        while ready:
            best: tuple[float, float, int, int, str, str] | None = None
            for op in ready:
                for unit in cost.capable_units(op):
                    start = max(free[unit], timeline.ready_time(graph, cost, op, unit))
                    key = (start, -rank[op], index[op], position[unit], op, unit)
                    if best is None or key[:4] < best[:4]:
                        best = key
            start, _, _, _, op, unit = best
            finish = start + cost.time(op, unit)
            timeline.place(op, unit, start, finish)
            free[unit] = finish
            ready.discard(op)
            for succ in graph.successors(op):
                pending[succ] -= 1
                if pending[succ] == 0:
                    ready.add(succ)
        return timeline.schedule(self.name)
