"""Lookahead HEFT (Bittencourt, Sakellariou & Madeira, PDP 2010)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.sched.insertion import Timeline
from hetsim.sched.order import by_rank
from hetsim.sched.ranks import RankOptions
from hetsim.sched.registry import register
from hetsim.sched.schedule import Schedule


def _place_child(timeline: Timeline, graph: nx.DiGraph, cost: CostModel, op: str) -> float:
    """Place ``op`` where it finishes first, counting only its already placed inputs; its finish."""
    a, f = timeline.assignment, timeline.finish
    best: tuple[float, float, str] | None = None
    for unit in cost.capable_units(op):
        ready = max((f[p] + cost.comm_time(p, op, a[p], unit) for p in graph.predecessors(op) if p in a),
                    default=0.0)
        duration = cost.time(op, unit)
        start = timeline.earliest_start(unit, ready, duration)
        if best is None or start + duration < best[1]:
            best = (start, start + duration, unit)
    timeline.place(op, best[2], best[0], best[1])
    return best[1]


@register
@dataclass(frozen=True)
class Lookahead(RankOptions):
    """Lookahead HEFT: HEFT's order, each op on the unit that lets its children finish first.

    Implements the one-level lookahead of Bittencourt, Sakellariou & Madeira, "DAG scheduling
    using a lookahead variant of the Heterogeneous Earliest Finish Time algorithm", PDP 2010.
    Ops are taken by decreasing upward rank (ties: the op inserted first in the graph). For each
    capable unit the op is tentatively placed there (insertion based), then its children are
    placed greedily, HEFT style, in decreasing upward rank (inputs not yet placed are ignored);
    the op goes to the unit minimising the largest child finish time (its own finish for an op
    without children). Ties: smaller own finish time, then the unit listed first on the platform.

    Options ``rank_cost`` and ``rank_comm`` set how op and communication times are averaged into the
    ranks (:mod:`hetsim.sched.ranks`; Topcuoglu's means by default).
    """

    name: ClassVar[str] = "lookahead"

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule:
        rank = self.upward(graph, cost)
        index = {op: i for i, op in enumerate(graph)}
        timeline = Timeline([u.name for u in cost.platform.units])
        for op in by_rank(graph, rank, index):
            children = by_rank(graph.successors(op), rank, index)
            best: tuple[float, float, int, float, str] | None = None
            for i, unit in enumerate(cost.capable_units(op)):
                start, finish = timeline.eft(graph, cost, op, unit)
                timeline.place(op, unit, start, finish)  # tentatively, undone below
                worst = max((_place_child(timeline, graph, cost, c) for c in children), default=finish)
                for placed in (*children, op):
                    timeline.remove(placed)
                key = (worst, finish, i, start, unit)
                if best is None or key[:3] < best[:3]:
                    best = key
            timeline.place(op, best[4], best[3], best[1])
        return timeline.schedule(self.name)
