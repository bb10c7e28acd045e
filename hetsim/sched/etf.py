"""ETF: Earliest Task First (Hwang, Chow, Anger & Lee, SIAM J. Comput. 18(2), 1989)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.sched.pair_select import select_pairs
from hetsim.sched.ranks import RankOptions
from hetsim.sched.registry import register
from hetsim.sched.schedule import Schedule


@register
@dataclass(frozen=True)
class ETF(RankOptions):
    """ETF: repeatedly start the (ready op, unit) pair that can start earliest.

    Implements Hwang, Chow, Anger & Lee, "Scheduling precedence graphs in systems with
    interprocessor communication times", SIAM J. Comput. 18(2):244-257, 1989, on unrelated units.
    An op is ready once all its predecessors are scheduled; its start on a unit is the later of
    its inputs' arrival and the unit's last finish (no insertion into gaps, as in the paper).
    Ties in start time go to the higher upward rank (:func:`hetsim.sched.ranks.upward_ranks`),
    then to the op inserted first in the graph, then to the unit listed first on the platform.

    Options ``rank_cost`` and ``rank_comm`` set how op and communication times are averaged into the
    ranks (:mod:`hetsim.sched.ranks`; Topcuoglu's means by default).
    """

    name: ClassVar[str] = "etf"

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule:
        rank = self.upward(graph, cost)
        index = {op: i for i, op in enumerate(graph)}
        position = {u.name: i for i, u in enumerate(cost.platform.units)}

        def key(op: str, unit: str, start: float) -> tuple:
            return (start, -rank[op], index[op], position[unit])

        return select_pairs(self.name, graph, cost, key)
