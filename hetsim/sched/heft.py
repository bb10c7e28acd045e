"""HEFT: Heterogeneous Earliest Finish Time (Topcuoglu, Hariri & Wu, IEEE TPDS 13(3), 2002)."""

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


@register
@dataclass(frozen=True)
class HEFT(RankOptions):
    """HEFT: ops by decreasing upward rank, each on the unit where it finishes first (insertion based).

    Ties in rank go to the op inserted first in the graph; ties in finish time to the unit listed
    first on the platform.

    Options ``rank_cost`` and ``rank_comm`` set how op and communication times are averaged into the
    ranks (:mod:`hetsim.sched.ranks`; Topcuoglu's means by default).
    """

    name: ClassVar[str] = "heft"

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule:
        rank = self.upward(graph, cost)
        index = {op: i for i, op in enumerate(graph)}
        timeline = Timeline([u.name for u in cost.platform.units])
        for op in by_rank(graph, rank, index):
            timeline.place_earliest(graph, cost, op)
        return timeline.schedule(self.name)
