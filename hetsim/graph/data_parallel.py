"""Data parallelism: replicas of a training step on slices of the batch, gradients all-reduced.

:func:`data_parallel` copies a training graph (:func:`hetsim.graph.training.training_step`,
possibly already split by :func:`hetsim.graph.pipeline.pipeline_parallel`) once per replica, each
on 1/D of the batch and on its own units, and puts an all-reduce of each parameter's gradients
across the replicas before every optimizer update — PyTorch DDP / Megatron-LM's data-parallel
dimension (Li et al., "PyTorch Distributed", VLDB 2020; Narayanan et al., SC 2021, §2.3). Every
replica keeps a full copy of the weights, gradients and optimizer states (no ZeRO sharding).
Replica ``r`` of op ``x`` is ``dp<r>/x``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import networkx as nx

from hetsim.errors import GraphError
from hetsim.graph.schema import add_op, new_graph, validate_graph
from hetsim.graph.training import batch_slice


def data_parallel(graph: nx.DiGraph, replicas: Sequence[str | Mapping[str, str]], *,
                  slice_batch: bool = True) -> nx.DiGraph:
    """``len(replicas)`` copies of a training graph with their gradient all-reduces.

    Each replica is a unit name (every op of that replica runs there) or, for a graph whose ops
    are pinned, a mapping from the graph's units to the replica's units. ``slice_batch=False``
    copies the graph as is: it is already one replica's share of the batch (a training step
    captured at ``batch / D``, :func:`hetsim.graph.catalog.model_training_graph`), whose
    gradients are op outputs that the updates read (their edges' bytes) rather than ``grad:``
    buffers.

    Examples
    --------
    >>> from hetsim.graph.training import training_step
    >>> g = new_graph("one", phase="prefill", batch=8)
    >>> add_op(g, "fc", op="matmul", flop=800, bytes_read=880, bytes_written=80, dtype="bf16", module="fc",
    ...        weights={"fc.weight": 800})
    >>> dp = data_parallel(training_step(g), ["gpu0", "gpu1"])
    >>> dp.nodes["dp1/fc"]["flop"], sorted(dp.predecessors("dp1/update.fc"))
    (400.0, ['dp_all_reduce:update.fc@gpu1'])
    >>> dp.nodes["dp_all_reduce:update.fc@gpu0"]["comm_bytes"]
    800
    """
    if not replicas:
        raise GraphError("data_parallel.replicas: got [], expected one unit (or unit mapping) per replica")
    n = len(replicas)
    maps = [_unit_map(graph, replica, r) for r, replica in enumerate(replicas)]
    updates = [op for op, d in graph.nodes(data=True) if str(d.get("target", "")).startswith("optimizer.")]
    update_set = set(updates)
    if not updates:
        raise GraphError(f"data_parallel: graph {graph.graph.get('name', '')!r} has no optimizer update, expected a "
                         "training step (hetsim.graph.training.training_step)")
    out = new_graph(graph.graph.get("name", ""))
    out.graph.update(graph.graph, dp=n)  # batch: the whole step's, every replica
    if not slice_batch and isinstance(graph.graph.get("batch"), int):
        out.graph["batch"] = graph.graph["batch"] * n
    for r, units in enumerate(maps):
        for op, data in graph.nodes(data=True):
            attrs = dict(data) if op in update_set or not slice_batch else batch_slice(data, n)
            attrs["pin"] = units(data.get("pin"))
            if data["op"] == "collective" and "group" in data:
                attrs.update(group=f"dp{r}/{data['group']}", ranks=tuple(units(u) for u in data["ranks"]))
            add_op(out, f"dp{r}/{op}", **attrs)
    for op in updates:
        data = graph.nodes[op]
        incoming = sum(graph.edges[p, op]["bytes"] for p in graph.predecessors(op))  # gradients as op outputs
        grads = sum(v for k, v in data["weights"].items() if k.startswith("grad:")) or incoming
        group = f"dp_all_reduce:{op}"
        ranks = tuple(units(data.get("pin")) for units in maps)
        for r, unit in enumerate(ranks):
            add_op(out, f"{group}@{unit}", op="collective", collective="all_reduce", group=group, ranks=ranks,
                   comm_bytes=grads, pin=unit, dtype=data.get("dtype"), module=data.get("module", ""),
                   bytes_read=grads, bytes_written=grads, inplace_bytes=grads)
            out.add_edge(f"{group}@{unit}", f"dp{r}/{op}", bytes=incoming)  # the update reads the reduced buffer
    for a, b, data in graph.edges(data=True):
        for r in range(n):
            if b in update_set:  # gradients are complete: reduce them first
                out.add_edge(f"dp{r}/{a}", f"dp_all_reduce:{b}@{maps[r](graph.nodes[b].get('pin'))}",
                             bytes=data["bytes"])
            else:
                out.add_edge(f"dp{r}/{a}", f"dp{r}/{b}",
                             **dict(data, bytes=data["bytes"] / n if slice_batch else data["bytes"]))
    return validate_graph(out)


def _unit_map(graph: nx.DiGraph, replica: str | Mapping[str, str], r: int):
    """A function from a graph unit (or None: unpinned) to replica ``r``'s unit."""
    if isinstance(replica, str):
        return lambda _unit: replica
    if not isinstance(replica, Mapping):
        raise GraphError(f"data_parallel.replicas[{r}]: got {replica!r}, expected a unit name or a mapping")
    pins = {d["pin"] for _, d in graph.nodes(data=True) if d.get("pin") is not None}
    missing = sorted(pins - set(replica))
    if missing or any(d.get("pin") is None for _, d in graph.nodes(data=True)):
        raise GraphError(f"data_parallel.replicas[{r}]: got a mapping without {missing[:1] or 'unpinned ops'}, "
                         "expected one for every unit the graph's ops are pinned to")
    return lambda unit: replica[unit]

