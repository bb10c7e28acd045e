"""Memory capacity over time: who holds which bytes in which memory, and when they are freed.

A tensor lives in the memory of the unit that produced it from the producer's start until its
last reader there has finished: the ops that consume it (directly or through views, which alias
their input's storage) and the transfers that copy it elsewhere. A transferred copy lives in the
destination memory from the transfer's start until its last reader there has finished. Weights
(and other persistent inputs such as a KV cache) are resident from the start, once per memory.
Tensors nobody reads (the graph's outputs; a 0-byte edge only orders two ops) stay until the end.
"""

from __future__ import annotations

from collections import defaultdict

import networkx as nx

from hetsim.errors import OutOfMemoryError
from hetsim.spec.types import Platform


def storage_roots(graph: nx.DiGraph) -> dict[str, str]:
    """Op → the op whose output storage it aliases (itself unless it is a view of something).

    Examples
    --------
    >>> g = nx.DiGraph([("mm", "t"), ("t", "v")])
    >>> nx.set_node_attributes(g, {"mm": "matmul", "t": "view", "v": "view"}, "op")
    >>> storage_roots(g)
    {'mm': 'mm', 't': 'mm', 'v': 'mm'}
    """
    nodes, pred = graph._node, graph._pred  # plain dicts: this runs once per op
    roots: dict[str, str] = {}
    for op in nodes:
        chain = []
        cur = op
        while cur not in roots and nodes[cur]["op"] == "view" and pred[cur]:
            chain.append(cur)
            cur = next(iter(pred[cur]))
        root = roots.get(cur, cur)
        roots[cur] = root
        for member in chain:
            roots[member] = root
    return roots


class MemoryTracker:
    """Bytes in use per memory, with a sample at every change and capacity checks."""

    def __init__(self, platform: Platform):
        self.capacity = {m.name: m.capacity_bytes for m in platform.memories}
        self.used = dict.fromkeys(self.capacity, 0.0)
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in self.capacity}
        self.held: dict[tuple[str, str], float] = defaultdict(float)

    def allocate(self, now: float, memory: str, key: tuple[str, str], nbytes: float, op: str) -> None:
        if nbytes <= 0:
            return
        used = self.used[memory] + nbytes
        if used > self.capacity[memory]:
            raise OutOfMemoryError(
                f"memory {memory!r}: op {op!r} needs {nbytes:.0f} more bytes with {self.used[memory]:.0f} of "
                f"{self.capacity[memory]:.0f} in use, expected at most the capacity")
        self.used[memory] = used
        self.held[key] += nbytes
        samples = self.samples[memory]  # one sample per instant: the last change wins
        if samples and samples[-1][0] == now:
            samples[-1] = (now, used)
        else:
            samples.append((now, used))

    def free(self, now: float, memory: str, key: tuple[str, str]) -> None:
        nbytes = self.held.pop(key, 0.0)
        if nbytes > 0:
            used = self.used[memory] = self.used[memory] - nbytes
            samples = self.samples[memory]
            if samples and samples[-1][0] == now:
                samples[-1] = (now, used)
            else:
                samples.append((now, used))

    def sorted_samples(self) -> list[tuple[float, str, float]]:
        """Every sample as (time, memory, bytes), by time then memory name."""
        return sorted((t, m, b) for m, samples in self.samples.items() for t, b in samples)
