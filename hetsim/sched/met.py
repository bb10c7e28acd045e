"""MET: Minimum Execution Time (Braun et al., JPDC 61(6), 2001), on a DAG with communication."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.sched.order import topological_order
from hetsim.sched.registry import register
from hetsim.sched.schedule import Schedule, from_assignment


@register
@dataclass(frozen=True)
class MET:
    """MET: each op on the unit that runs it fastest, whatever that unit's load (ties: platform order)."""

    name: ClassVar[str] = "met"

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule:
        order = topological_order(graph)
        assignment = {op: min(cost.capable_units(op), key=lambda u: cost.time(op, u)) for op in order}
        return from_assignment(self.name, graph, cost, assignment, order)
