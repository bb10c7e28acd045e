"""Max-Min (Braun et al., JPDC 61(6), 2001), on a DAG with communication."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.sched.batch_mode import batch_schedule
from hetsim.sched.registry import register
from hetsim.sched.schedule import Schedule


@register
@dataclass(frozen=True)
class MaxMin:
    """Max-Min: the ready op whose earliest finish is largest goes first, to its earliest-finish unit."""

    name: ClassVar[str] = "maxmin"

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule:
        return batch_schedule(self.name, graph, cost, lambda finishes: finishes[0])
