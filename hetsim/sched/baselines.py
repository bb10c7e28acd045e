"""Baselines: everything on one unit, and round-robin over the units."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.errors import ScheduleError
from hetsim.sched.order import topological_order
from hetsim.sched.registry import register
from hetsim.sched.schedule import Schedule, from_assignment


@register
@dataclass(frozen=True)
class Single:
    """Every op on one unit: ``unit`` if given, else the capable unit with the least total time."""

    name: ClassVar[str] = "single"
    unit: str | None = None

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule:
        names = [u.name for u in cost.platform.units]
        capable = [u for u in names if all(cost.can_run(op, u) for op in graph.nodes)]
        if self.unit is not None:
            if self.unit not in names:
                raise ScheduleError(f"scheduler.options.unit: got {self.unit!r}, expected one of {', '.join(names)}")
            if self.unit not in capable:
                raise ScheduleError(f"scheduler.options.unit: unit {self.unit!r} cannot run every op of the graph")
            unit = self.unit
        elif not capable:
            raise ScheduleError("scheduler 'single': no unit of the platform can run every op of the graph")
        else:
            unit = min(capable, key=lambda u: (sum(cost.time(op, u) for op in graph.nodes), names.index(u)))
        order = topological_order(graph)
        return from_assignment(self.name, graph, cost, dict.fromkeys(order, unit), order)


@register
@dataclass(frozen=True)
class RoundRobin:
    """Ops in program order dealt to the units in turn, skipping units that cannot run the op."""

    name: ClassVar[str] = "round_robin"

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule:
        names = [u.name for u in cost.platform.units]
        order = topological_order(graph)
        assignment: dict[str, str] = {}
        turn = 0
        for op in order:
            while not cost.can_run(op, names[turn % len(names)]):
                turn += 1
            assignment[op] = names[turn % len(names)]
            turn += 1
        return from_assignment(self.name, graph, cost, assignment, order)
