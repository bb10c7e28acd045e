"""Task priorities of list schedulers: upward and downward ranks (Topcuoglu et al., TPDS 2002).

``rank_u(i) = w̄_i + max over successors j of (c̄_ij + rank_u(j))`` and
``rank_d(i) = max over predecessors j of (rank_d(j) + w̄_j + c̄_ji)``.

How ``w̄`` (an op's time) and ``c̄`` (an edge's communication time) are estimated is a
convention, and published comparisons differ on it (Zhao & Sakellariou, "An experimental
investigation into the rank function of the heterogeneous earliest finish time scheduling
algorithm", Euro-Par 2003, found makespans to move by several percent with it). Both are
explicit options of the rank-based schedulers:

``rank_cost`` — ``w̄`` over the units able to run the op
    ``mean`` (Topcuoglu's, the default), ``median`` (Sih & Lee's DLS), ``best``, ``worst``.
``rank_comm`` — ``c̄`` over unit pairs
    ``mean`` over ordered pairs of distinct units (the default: Topcuoglu's ``L̄ + data/B̄`` when
    every pair has the same route, and the instance's own cost for classic instances, which pay
    it on any pair), ``mean_all`` over all ordered pairs including a unit with itself (which
    costs nothing: the expected cost when both ends are placed at random), ``best`` and
    ``worst`` over distinct pairs, and ``none`` (communication ignored).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.errors import ScheduleError

RANK_COST: dict[str, Callable[[list[float]], float]] = {
    "mean": statistics.fmean, "median": statistics.median, "best": min, "worst": max,
}
RANK_COMM = ("mean", "mean_all", "best", "worst", "none")


def check_convention(rank_cost: str = "mean", rank_comm: str = "mean") -> None:
    """One-line ScheduleError unless both names are known conventions."""
    if rank_cost not in RANK_COST:
        raise ScheduleError(f"scheduler.options.rank_cost: got {rank_cost!r}, expected one of {', '.join(RANK_COST)}")
    if rank_comm not in RANK_COMM:
        raise ScheduleError(f"scheduler.options.rank_comm: got {rank_comm!r}, expected one of {', '.join(RANK_COMM)}")


@dataclass(frozen=True)
class RankOptions:
    """The two rank conventions as scheduler options, checked when the scheduler is made."""

    rank_cost: str = "mean"
    rank_comm: str = "mean"

    def __post_init__(self) -> None:
        check_convention(self.rank_cost, self.rank_comm)

    def upward(self, graph: nx.DiGraph, cost: CostModel) -> dict[str, float]:
        """:func:`upward_ranks` under this scheduler's conventions."""
        return upward_ranks(graph, cost, self.rank_cost, self.rank_comm)


def op_weights(graph: nx.DiGraph, cost: CostModel, rank_cost: str = "mean") -> dict[str, float]:
    """``w̄`` of every op: ``rank_cost`` of its times over the units able to run it."""
    stat = RANK_COST[rank_cost]
    return {op: stat([cost.time(op, u) for u in cost.capable_units(op)]) for op in graph}


def mean_cost(cost: CostModel, op: str) -> float:
    """Mean time of ``op`` over the units that can run it."""
    return statistics.fmean(cost.time(op, u) for u in cost.capable_units(op))


class CommWeights:
    """``c̄`` of edges under one ``rank_comm`` convention, computed from a few route classes.

    A byte-carrying edge costs ``latency + bytes / bandwidth`` on a route, 0 within one memory;
    unit pairs are grouped by their (latency, bandwidth) class once, so an edge's estimate costs
    a handful of operations however many units the platform has.

    Examples
    --------
    >>> from hetsim.graph.instances import instance_graph
    >>> from hetsim.spec.abstract import abstract_platform
    >>> g, units = instance_graph({"units": ["A", "B"], "tasks": {"a": [1, 1], "b": [1, 1]},
    ...                            "edges": [["a", "b", 8]]})
    >>> cm = CostModel(g, abstract_platform(units))
    >>> CommWeights(cm, "mean")("a", "b"), CommWeights(cm, "mean_all")("a", "b"), CommWeights(cm, "none")("a", "b")
    (8.0, 4.0, 0.0)
    """

    def __init__(self, cost: CostModel, rank_comm: str = "mean"):
        self.cost, self.rank_comm = cost, rank_comm
        platform = cost.platform
        units = platform.units
        classes: Counter[tuple[float, float] | None] = Counter()
        for a in units:
            for b in units:
                if a is b:
                    continue
                route = platform.route(a.memory, b.memory)
                classes[(route.latency_s, route.bandwidth_bytes_per_s) if route.links else None] += 1
        self.classes = sorted(classes.items(), key=lambda kv: (kv[0] is None, kv[0] or (0.0, 0.0)))
        self.pairs = sum(classes.values())
        self.all_pairs = len(units) ** 2
        self.edges = cost.graph._adj

    def __call__(self, src: str, dst: str) -> float:
        how = self.rank_comm
        if how == "none" or not self.pairs:
            return 0.0
        data = self.edges[src][dst]
        if "cost" in data:
            values = [(float(data["cost"]), self.pairs)]
        else:
            nbytes = data["bytes"]
            values = [(0.0 if key is None or nbytes <= 0 else key[0] + nbytes / key[1], n) for key, n in self.classes]
        if how == "best":
            return min(v for v, _ in values)
        if how == "worst":
            return max(v for v, _ in values)
        total = sum(v * n for v, n in values)
        return total / (self.all_pairs if how == "mean_all" else self.pairs)


def mean_comm(cost: CostModel, src: str, dst: str) -> float:
    """Mean communication time of edge ``src -> dst`` over ordered pairs of distinct units."""
    return CommWeights(cost)(src, dst)


def upward_ranks(graph: nx.DiGraph, cost: CostModel, rank_cost: str = "mean",
                 rank_comm: str = "mean") -> dict[str, float]:
    """rank_u of every op (its distance to the exit, its own time included)."""
    w, c = op_weights(graph, cost, rank_cost), CommWeights(cost, rank_comm)
    rank: dict[str, float] = {}
    for op in reversed(list(nx.topological_sort(graph))):
        rank[op] = w[op] + max((c(op, s) + rank[s] for s in graph.successors(op)), default=0.0)
    return rank


def downward_ranks(graph: nx.DiGraph, cost: CostModel, rank_cost: str = "mean",
                   rank_comm: str = "mean") -> dict[str, float]:
    """rank_d of every op (the longest distance from an entry to its start)."""
    w, c = op_weights(graph, cost, rank_cost), CommWeights(cost, rank_comm)
    rank: dict[str, float] = {}
    for op in nx.topological_sort(graph):
        rank[op] = max((rank[p] + w[p] + c(p, op) for p in graph.predecessors(op)), default=0.0)
    return rank
