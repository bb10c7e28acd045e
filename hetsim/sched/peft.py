"""PEFT: Predict Earliest Finish Time (Arabnejad & Barbosa, IEEE TPDS 25(3), 2014)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import ClassVar

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.sched.insertion import Timeline
from hetsim.sched.order import ReadyOps
from hetsim.sched.ranks import CommWeights, check_convention
from hetsim.sched.registry import register
from hetsim.sched.schedule import Schedule


def optimistic_cost_table(graph: nx.DiGraph, cost: CostModel, rank_comm: str = "mean") -> dict[str, dict[str, float]]:
    """The Optimistic Cost Table ``OCT[op][unit]`` of Arabnejad & Barbosa (2014), Eq. (1).

    ``OCT(t, p) = max over successors s of min over units w able to run s of
    (OCT(s, w) + time(s, w) + (c̄(t, s) if w != p else 0))``; exit ops have ``OCT = 0`` on every
    unit. ``c̄`` is the edge's communication estimate under ``rank_comm`` (by default the mean over
    distinct unit pairs, see :mod:`hetsim.sched.ranks`). Rows cover the units able to run ``t``.

    Parameters
    ----------
    graph : networkx.DiGraph
    cost : CostModel

    Returns
    -------
    dict
        op -> unit -> optimistic remaining time after ``op`` finishes on that unit.
    """
    comm = CommWeights(cost, rank_comm)
    oct_: dict[str, dict[str, float]] = {}
    for op in reversed(list(nx.topological_sort(graph))):
        row: dict[str, float] = {}
        for p in cost.capable_units(op):
            worst = 0.0
            for s in graph.successors(op):
                c = comm(op, s)
                best = min(oct_[s][w] + cost.time(s, w) + (0.0 if w == p else c) for w in oct_[s])
                worst = max(worst, best)
            row[p] = worst
        oct_[op] = row
    return oct_


@register
@dataclass(frozen=True)
class PEFT:
    """PEFT: ready ops by decreasing rank_oct, each on the unit minimising EFT + OCT.

    Implements Arabnejad & Barbosa, "List scheduling algorithm for heterogeneous systems by an
    optimistic cost table", IEEE TPDS 25(3):682-694, 2014. ``rank_oct(t)`` is the mean of
    ``OCT(t, p)`` over the units able to run ``t``; the ready op with the highest rank_oct is taken
    first (ties: the op inserted first in the graph) and placed, insertion based, on the unit with
    the smallest optimistic EFT ``O_EFT(t, p) = EFT(t, p) + OCT(t, p)`` (ties: smaller EFT, then
    the unit listed first on the platform). Option ``rank_comm`` sets the communication estimate
    ``c̄`` of the OCT (:mod:`hetsim.sched.ranks`).
    """

    name: ClassVar[str] = "peft"
    rank_comm: str = "mean"

    def __post_init__(self) -> None:
        check_convention(rank_comm=self.rank_comm)

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule:
        oct_ = optimistic_cost_table(graph, cost, self.rank_comm)
        rank = {op: statistics.fmean(oct_[op].values()) for op in graph}
        timeline = Timeline([u.name for u in cost.platform.units])
        ready = ReadyOps(graph, rank)
        while ready:
            op = ready.pop()
            best: tuple[float, float, int, float, str] | None = None
            for i, unit in enumerate(cost.capable_units(op)):
                start, finish = timeline.eft(graph, cost, op, unit)
                key = (finish + oct_[op][unit], finish, i, start, unit)
                if best is None or key[:3] < best[:3]:
                    best = key
            timeline.place(op, best[4], best[3], best[1])
            ready.done(op)
        return timeline.schedule(self.name)
