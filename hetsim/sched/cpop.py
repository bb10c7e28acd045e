"""CPOP: Critical Path On a Processor (Topcuoglu, Hariri & Wu, IEEE TPDS 13(3), 2002)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.sched.insertion import Timeline
from hetsim.sched.order import ReadyOps
from hetsim.sched.ranks import RankOptions, downward_ranks
from hetsim.sched.registry import register
from hetsim.sched.schedule import Schedule

_REL = 1e-9


@register
@dataclass(frozen=True)
class CPOP(RankOptions):
    """CPOP: the critical path on the one unit that runs it fastest, other ops at earliest finish.

    Critical-path ops are those whose priority rank_u + rank_d equals the entry's.

    Ready ops are taken by decreasing priority (ties: first inserted); placement is insertion based.

    Options ``rank_cost`` and ``rank_comm`` set how op and communication times are averaged into the
    ranks (:mod:`hetsim.sched.ranks`; Topcuoglu's means by default).
    """

    name: ClassVar[str] = "cpop"

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule:
        up = self.upward(graph, cost)
        down = downward_ranks(graph, cost, self.rank_cost, self.rank_comm)
        priority = {op: up[op] + down[op] for op in graph}
        index = {op: i for i, op in enumerate(graph)}
        length = max(priority[op] for op in graph if graph.in_degree(op) == 0)
        critical = self._critical_path(graph, priority, length, index)
        units = [u.name for u in cost.platform.units]
        capable = [u for u in units if all(cost.can_run(op, u) for op in critical)]
        cp_unit = min(capable, key=lambda u: (sum(cost.time(op, u) for op in critical), units.index(u))) \
            if capable else None
        timeline = Timeline(units)
        ready = ReadyOps(graph, priority)
        while ready:
            op = ready.pop()
            if op in critical and cp_unit is not None:
                start, finish = timeline.eft(graph, cost, op, cp_unit)
                timeline.place(op, cp_unit, start, finish)
            else:
                timeline.place_earliest(graph, cost, op)
            ready.done(op)
        return timeline.schedule(self.name)

    @staticmethod
    def _critical_path(graph: nx.DiGraph, priority: dict[str, float], length: float,
                       index: dict[str, int]) -> set[str]:
        def on_path(op: str) -> bool:
            return abs(priority[op] - length) <= _REL * max(1.0, length)

        entries = sorted((op for op in graph if graph.in_degree(op) == 0 and on_path(op)), key=index.__getitem__)
        path, op = set(), entries[0]
        while op is not None:
            path.add(op)
            op = min((s for s in graph.successors(op) if on_path(s)), key=index.__getitem__, default=None)
        return path
