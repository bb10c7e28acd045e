"""Greedy earliest-finish-time list scheduling (the default scheduler)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.sched.order import topological_order
from hetsim.sched.registry import register
from hetsim.sched.schedule import Schedule


@register
@dataclass(frozen=True)
class EFT:
    """Earliest finish time: each op, in program order, goes to the unit where it finishes first.

    Costs are unrelated (each op has its own time on each unit) and communication-aware: an input
    produced on another unit arrives after the transfer between the two units' memories. No
    insertion into idle gaps; ties go to the unit listed first on the platform.
    """

    name: ClassVar[str] = "eft"

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule:
        units = [u.name for u in cost.platform.units]
        free = dict.fromkeys(units, 0.0)
        assignment: dict[str, str] = {}
        start: dict[str, float] = {}
        finish: dict[str, float] = {}
        order: dict[str, list[str]] = {u: [] for u in units}
        for op in topological_order(graph):
            preds = list(graph.predecessors(op))
            best = None
            for unit in cost.capable_units(op):
                duration = cost.time(op, unit)
                ready = free[unit]
                for pred in preds:
                    ready = max(ready, finish[pred] + cost.comm_time(pred, op, assignment[pred], unit))
                if best is None or ready + duration < best[0]:
                    best = (ready + duration, ready, unit)
            end, begin, unit = best  # CostModel guarantees at least one capable unit
            assignment[op], start[op], finish[op], free[unit] = unit, begin, end, end
            order[unit].append(op)
        return Schedule(self.name, assignment, {u: tuple(o) for u, o in order.items() if o}, {}, start, finish)
