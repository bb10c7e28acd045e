"""DLS: Dynamic Level Scheduling (Sih & Lee, IEEE TPDS 4(2), 1993)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.sched.insertion import Timeline
from hetsim.sched.ranks import mean_cost
from hetsim.sched.registry import register
from hetsim.sched.schedule import Schedule


def static_levels(graph: nx.DiGraph, cost: CostModel) -> dict[str, float]:
    """SL of every op: the longest path to an exit in mean op times, communication free."""
    w = {op: mean_cost(cost, op) for op in graph}
    level: dict[str, float] = {}
    for op in reversed(list(nx.topological_sort(graph))):
        level[op] = w[op] + max((level[s] for s in graph.successors(op)), default=0.0)
    return level


@register
@dataclass(frozen=True)
class DLS:
    """DLS: repeatedly start the (ready op, unit) pair with the highest dynamic level.

    Implements Sih & Lee, "A compile-time scheduling heuristic for interconnection-constrained
    heterogeneous processor architectures", IEEE TPDS 4(2):175-187, 1993:
    ``DL(t, p) = SL(t) - EST(t, p) + Δ(t, p)`` with ``SL`` the static level (longest path to an
    exit, communication free), ``EST`` the later of the inputs' arrival on ``p`` and ``p``'s last
    finish (no insertion), and ``Δ(t, p) = w̄(t) - time(t, p)``. The paper's ``w̄`` is the median
    time over units; hetsim uses the mean over capable units, as its other rank-based schedulers
    do (:func:`hetsim.sched.ranks.mean_cost`). Ties go to the op inserted first in the graph, then
    to the unit listed first on the platform.
    """

    name: ClassVar[str] = "dls"

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule:
        level = static_levels(graph, cost)
        mean = {op: mean_cost(cost, op) for op in graph}
        index = {op: i for i, op in enumerate(graph)}
        units = [u.name for u in cost.platform.units]
        position = {u: i for i, u in enumerate(units)}
        timeline = Timeline(units)
        free = dict.fromkeys(units, 0.0)
        pending = {op: graph.in_degree(op) for op in graph}
        ready = {op for op in graph if pending[op] == 0}
        while ready:
            best: tuple[float, int, int, float, str, str] | None = None
            for op in ready:
                for unit in cost.capable_units(op):
                    start = max(free[unit], timeline.ready_time(graph, cost, op, unit))
                    dl = level[op] - start + mean[op] - cost.time(op, unit)
                    key = (-dl, index[op], position[unit], start, op, unit)
                    if best is None or key[:3] < best[:3]:
                        best = key
            _, _, _, start, op, unit = best
            finish = start + cost.time(op, unit)
            timeline.place(op, unit, start, finish)
            free[unit] = finish
            ready.discard(op)
            for succ in graph.successors(op):
                pending[succ] -= 1
                if pending[succ] == 0:
                    ready.add(succ)
        return timeline.schedule(self.name)
