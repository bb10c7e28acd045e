"""Deterministic orders over an OpGraph shared by the schedulers."""

from __future__ import annotations

import networkx as nx


def topological_order(graph: nx.DiGraph) -> list[str]:
    """Topological order that, among ready ops, takes the one inserted first.

    For a captured graph this is program order; ties never depend on hashing.

    Examples
    --------
    >>> g = nx.DiGraph([("b", "c"), ("a", "c")])
    >>> topological_order(g)
    ['b', 'a', 'c']
    """
    index = {node: i for i, node in enumerate(graph.nodes)}
    return list(nx.lexicographical_topological_sort(graph, key=index.__getitem__))
