"""Random: each op on a capable unit drawn at random; a baseline for scheduler comparisons."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.sched.order import topological_order
from hetsim.sched.registry import register
from hetsim.sched.schedule import Schedule, from_assignment


@register
@dataclass(frozen=True)
class RandomUnit:
    """Random: ops in program order, each on a capable unit drawn uniformly with ``seed``."""

    name: ClassVar[str] = "random"
    seed: int = 0

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule:
        rng = random.Random(self.seed)
        order = topological_order(graph)
        assignment = {op: rng.choice(cost.capable_units(op)) for op in order}
        return from_assignment(self.name, graph, cost, assignment, order)
