"""Bounds and reference figures for comparing schedules (Topcuoglu, Hariri & Wu, TPDS 2002, §5).

``cp_min``: the critical path with every op at its fastest and communication free — no schedule
can finish before it, and it is the denominator of the schedule length ratio (SLR).
``sequential_time``: the whole graph on the one unit that runs it fastest — the numerator of the
speedup.
"""

from __future__ import annotations

import math

import networkx as nx

from hetsim.cost.model import CostModel


def cp_min(graph: nx.DiGraph, cost: CostModel) -> float:
    """Length of the longest path when each op takes its least time over the units (no communication).

    Examples
    --------
    >>> from hetsim.graph.instances import instance_graph
    >>> from hetsim.spec.abstract import abstract_platform
    >>> g, units = instance_graph({"units": ["A", "B"], "tasks": {"a": [2, 3], "b": [4, 1], "c": [5, 5]},
    ...                            "edges": [["a", "b", 9], ["a", "c", 9]]})
    >>> cp_min(g, CostModel(g, abstract_platform(units)))
    7.0
    """
    fastest = {op: min(cost.time(op, u) for u in cost.capable_units(op)) for op in graph}
    length: dict[str, float] = {}
    for op in nx.topological_sort(graph):
        length[op] = fastest[op] + max((length[p] for p in graph.predecessors(op)), default=0.0)
    return max(length.values(), default=0.0)


def sequential_time(graph: nx.DiGraph, cost: CostModel) -> float:
    """Least total time of the graph on one unit able to run every op (``inf`` if none can).

    Examples
    --------
    >>> from hetsim.graph.instances import instance_graph
    >>> from hetsim.spec.abstract import abstract_platform
    >>> g, units = instance_graph({"units": ["A", "B"], "tasks": {"a": [2, 3], "b": [4, 1]}, "edges": []})
    >>> sequential_time(g, CostModel(g, abstract_platform(units)))
    4.0
    """
    units = [u.name for u in cost.platform.units]
    return min((sum(cost.time(op, u) for op in graph) for u in units), default=math.inf)


def slr(makespan_s: float, graph: nx.DiGraph, cost: CostModel) -> float:
    """Schedule length ratio: makespan / :func:`cp_min` (>= 1 for every valid schedule)."""
    bound = cp_min(graph, cost)
    return makespan_s / bound if bound > 0 else math.nan
