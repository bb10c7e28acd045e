"""Deterministic orders over an OpGraph shared by the schedulers."""

from __future__ import annotations

import heapq

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


def by_rank(ops, rank: dict[str, float], index: dict[str, int]) -> list[str]:
    """``ops`` by decreasing ``rank``; ties go to the op inserted first in the graph."""
    return sorted(ops, key=lambda op: (-rank[op], index[op]))


class ReadyOps:
    """The ops whose inputs have all been placed, as list schedulers walk a graph.

    ``pop`` takes the ready op of highest ``priority`` (ties: graph order); ``take`` removes a
    chosen one; ``done`` releases the successors whose last input that op was.

    Examples
    --------
    >>> ready = ReadyOps(nx.DiGraph([("a", "c"), ("b", "c")]), {"a": 1.0, "b": 2.0, "c": 0.0})
    >>> first = ready.pop(); ready.done(first); first, sorted(ready)
    ('b', ['a'])
    >>> ready.done(ready.pop()); ready.pop()
    'c'
    """

    def __init__(self, graph: nx.DiGraph, priority: dict[str, float] | None = None):
        self.graph = graph
        self.index = {op: i for i, op in enumerate(graph)}
        self.priority = priority or {}
        self.pending = {op: graph.in_degree(op) for op in graph}
        self.members: set[str] = set()
        self.heap: list[tuple[float, int, str]] = []
        for op in graph:
            if not self.pending[op]:
                self._add(op)

    def _add(self, op: str) -> None:
        self.members.add(op)
        heapq.heappush(self.heap, (-self.priority.get(op, 0.0), self.index[op], op))

    def __bool__(self) -> bool:
        return bool(self.members)

    def __iter__(self):
        return iter(sorted(self.members, key=self.index.__getitem__))

    def pop(self) -> str:
        while True:
            op = heapq.heappop(self.heap)[2]
            if op in self.members:
                self.members.remove(op)
                return op

    def take(self, op: str) -> None:
        self.members.remove(op)

    def done(self, op: str) -> None:
        pending = self.pending
        for succ in self.graph.successors(op):
            pending[succ] -= 1
            if not pending[succ]:
                self._add(succ)
