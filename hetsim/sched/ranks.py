"""Task priorities of list schedulers: upward and downward ranks (Topcuoglu et al., TPDS 2002).

``rank_u(i) = w̄_i + max over successors j of (c̄_ij + rank_u(j))`` and
``rank_d(i) = max over predecessors j of (rank_d(j) + w̄_j + c̄_ji)``, where ``w̄`` is an op's mean
time over the units able to run it and ``c̄`` an edge's mean communication time over ordered
pairs of distinct units (the instance's cost for classic instances, which pay it on any pair).
"""

from __future__ import annotations

import statistics

import networkx as nx

from hetsim.cost.model import CostModel


def mean_cost(cost: CostModel, op: str) -> float:
    """Mean time of ``op`` over the units that can run it."""
    return statistics.fmean(cost.time(op, u) for u in cost.capable_units(op))


def mean_comm(cost: CostModel, src: str, dst: str) -> float:
    """Mean communication time of edge ``src -> dst`` over ordered pairs of distinct units."""
    units = [u.name for u in cost.platform.units]
    pairs = [(a, b) for a in units for b in units if a != b]
    if not pairs:
        return 0.0
    return statistics.fmean(cost.comm_time(src, dst, a, b) for a, b in pairs)


def upward_ranks(graph: nx.DiGraph, cost: CostModel) -> dict[str, float]:
    """rank_u of every op (its distance to the exit, its own time included)."""
    w = {op: mean_cost(cost, op) for op in graph}
    rank: dict[str, float] = {}
    for op in reversed(list(nx.topological_sort(graph))):
        rank[op] = w[op] + max((mean_comm(cost, op, s) + rank[s] for s in graph.successors(op)), default=0.0)
    return rank


def downward_ranks(graph: nx.DiGraph, cost: CostModel) -> dict[str, float]:
    """rank_d of every op (the longest distance from an entry to its start)."""
    w = {op: mean_cost(cost, op) for op in graph}
    rank: dict[str, float] = {}
    for op in nx.topological_sort(graph):
        rank[op] = max((rank[p] + w[p] + mean_comm(cost, p, op) for p in graph.predecessors(op)), default=0.0)
    return rank
