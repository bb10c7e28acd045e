"""Sufferage (Braun et al., JPDC 61(6), 2001), on a DAG with communication."""

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
class Sufferage:
    """Sufferage: the ready op that loses most if denied its best unit goes first.

    Its sufferage is its second-best finish minus its best; an op only one unit can run
    suffers without bound.
    """

    name: ClassVar[str] = "sufferage"

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule:
        return batch_schedule(self.name, graph, cost, _sufferage)


def _sufferage(finishes: list[float]) -> float:
    return finishes[1] - finishes[0] if len(finishes) > 1 else float("inf")
