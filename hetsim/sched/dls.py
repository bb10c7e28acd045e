"""DLS: Dynamic Level Scheduling (Sih & Lee, IEEE TPDS 4(2), 1993)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.sched.pair_select import select_pairs
from hetsim.sched.ranks import check_convention, op_weights
from hetsim.sched.registry import register
from hetsim.sched.schedule import Schedule


def static_levels(graph: nx.DiGraph, cost: CostModel, rank_cost: str = "median") -> dict[str, float]:
    """SL of every op: the longest path to an exit in ``rank_cost`` op times, communication free."""
    w = op_weights(graph, cost, rank_cost)
    level: dict[str, float] = {}
    for op in reversed(list(nx.topological_sort(graph))):
        level[op] = w[op] + max((level[s] for s in graph.successors(op)), default=0.0)
    return level


@register
@dataclass(frozen=True)
class DLS:
    """DLS: repeatedly start the (ready op, unit) pair with the highest dynamic level.

    Implements Sih & Lee, "A compile-time scheduling heuristic for interconnection-constrained
    heterogeneous processor architectures", IEEE TPDS 4(2):175-187, 1993:
    ``DL(t, p) = SL(t) - EST(t, p) + Δ(t, p)`` with ``SL`` the static level (longest path to an
    exit, communication free), ``EST`` the later of the inputs' arrival on ``p`` and ``p``'s last
    finish (no insertion), and ``Δ(t, p) = w̄(t) - time(t, p)``. ``w̄`` is the paper's median time
    over the units able to run ``t``; option ``rank_cost`` (``median``, ``mean``, ``best``,
    ``worst``, see :mod:`hetsim.sched.ranks`) changes it for SL and Δ alike. Ties go to the op
    inserted first in the graph, then to the unit listed first on the platform.
    """

    name: ClassVar[str] = "dls"
    rank_cost: str = "median"

    def __post_init__(self) -> None:
        check_convention(rank_cost=self.rank_cost)

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule:
        level = static_levels(graph, cost, self.rank_cost)
        mean = op_weights(graph, cost, self.rank_cost)
        index = {op: i for i, op in enumerate(graph)}
        position = {u.name: i for i, u in enumerate(cost.platform.units)}

        def key(op: str, unit: str, start: float) -> tuple:
            return (-(level[op] - start + mean[op] - cost.time(op, unit)), index[op], position[unit])

        return select_pairs(self.name, graph, cost, key)
