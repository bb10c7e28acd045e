"""Min-Min (Braun et al., JPDC 61(6), 2001), on a DAG with communication."""

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
class MinMin:
    """Min-Min: the ready op whose earliest finish is smallest goes first, to that unit."""

    name: ClassVar[str] = "minmin"

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule:
        return batch_schedule(self.name, graph, cost, lambda finishes: -finishes[0])
