"""Pipeline parallelism with 1F1B, and the 3D layout (pipeline × tensor) of a training step.

:func:`pipeline_parallel` cuts a training graph (:func:`hetsim.graph.training.training_step`)
into stages of consecutive layers, runs ``microbatches`` copies of the forward and backward ops
(each on 1/m of the batch; weights, gradients and optimizer states are shared, gradients
accumulate) and one optimizer update per parameter after the last microbatch. Ops are inserted
in the one-forward-one-backward order of PipeDream-Flush / Megatron-LM (Narayanan et al., SC
2021, §2.2.1, Fig. 4): stage s runs ``min(P − s − 1, m)`` warm-up forwards, then alternates one
forward and one backward, then drains its backwards. Program order is therefore the 1F1B
schedule, which the ``eft`` scheduler follows when every op is pinned. Each stage is then split
tensor-parallel over its own units (:func:`hetsim.graph.parallel.tensor_parallel`); activations
cross from rank i of one stage to rank i of the next.

Ops are staged by the layer index in their module (``layers.N``, ``h.N``); ops outside the
layers go with the stage of their inputs (the embedding and rotary tables with the first, the
final norm, head and loss with the last); backward and update ops with their forward op. In a
step captured from autograd's joint graph (:func:`hetsim.graph.catalog.model_training_graph`)
backward ops have no forward twin: they are staged by their own module's layer, else with the
earliest stage among their gradient inputs (a gradient flows from later stages to earlier ones),
and each update with the op computing its gradient.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import networkx as nx

from hetsim.errors import GraphError
from hetsim.graph.parallel import TPRules, tensor_parallel
from hetsim.graph.schema import add_op, new_graph
from hetsim.graph.training import batch_slice

LAYER = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks)\.(\d+)(?:\.|$)")


def forward_of(op: str) -> str:
    """The forward op a backward (``grad.x``) or update (``update.x``) op belongs to."""
    for prefix in ("grad.", "update."):
        if op.startswith(prefix):
            return op[len(prefix):]
    return op


def stages_of(graph: nx.DiGraph, n_stages: int) -> dict[str, int]:
    """Stage of every op: layers cut into ``n_stages`` equal runs, the rest placed by its inputs."""
    layer = {op: int(m.group(1)) for op, d in graph.nodes(data=True) if (m := LAYER.search(d.get("module", "")))}
    if not layer:
        raise GraphError(f"pipeline_parallel: graph {graph.graph.get('name', '')!r} has no layers "
                         "(modules such as layers.3.mlp)")
    n_layers = max(layer.values()) + 1
    if n_stages > n_layers:
        raise GraphError(f"pipeline_parallel.stages: got {n_stages} stages, expected at most the {n_layers} layers")
    stage: dict[str, int] = {}
    floating: list[str] = []  # ops placed by no input: they go with their first reader, below
    order = list(nx.topological_sort(graph))
    for op in order:
        base = forward_of(op)
        preds = [p for p in graph.predecessors(op) if p in stage]
        if base in layer:
            stage[op] = layer[base] * n_stages // n_layers
        elif base != op and base in stage:
            stage[op] = stage[base]
        elif base != op and op in layer:  # a captured backward op: its own layer
            stage[op] = layer[op] * n_stages // n_layers
        elif base != op and preds:  # a captured backward op outside the layers, or an update: the earliest
            # stage of its gradient inputs (gradients flow back; saved activations and constants such as
            # labels do not place it), else the latest of its forward inputs
            grads = [stage[p] for p in preds if forward_of(p) != p]
            stage[op] = min(grads) if grads else max(stage[p] for p in preds)
        elif base == op and any(forward_of(p) == p for p in preds):
            stage[op] = max(stage[p] for p in preds if forward_of(p) == p)
        else:
            floating.append(op)
    for op in reversed(floating):  # a weight's view, a table, the loss gradient's seed: with its first reader
        readers = [stage[q] for q in graph.successors(op) if q in stage]
        stage[op] = min(readers, default=0 if forward_of(op) == op else n_stages - 1)
    return stage


def one_f_one_b(n_stages: int, microbatches: int) -> list[tuple[int, str, int]]:
    """(stage, "F" or "B", microbatch) in an order that is 1F1B on every stage and respects data flow.

    Examples
    --------
    >>> [x for x in one_f_one_b(2, 3) if x[0] == 0]
    [(0, 'F', 0), (0, 'F', 1), (0, 'B', 0), (0, 'F', 2), (0, 'B', 1), (0, 'B', 2)]
    """
    plans = []
    for s in range(n_stages):
        warm = min(n_stages - s - 1, microbatches)
        plan = [("F", k) for k in range(warm)]
        for k in range(microbatches - warm):
            plan += [("F", warm + k), ("B", k)]
        plan += [("B", k) for k in range(microbatches - warm, microbatches)]
        plans.append(plan)
    done: set[tuple[int, str, int]] = set()
    order: list[tuple[int, str, int]] = []
    position = [0] * n_stages
    while len(order) < n_stages * 2 * microbatches:
        for s in range(n_stages):
            if position[s] == len(plans[s]):
                continue
            kind, k = plans[s][position[s]]
            ready = ((s == 0 or (s - 1, "F", k) in done) if kind == "F"
                     else (s == n_stages - 1 or (s + 1, "B", k) in done) and (s, "F", k) in done)
            if ready:
                done.add((s, kind, k))
                order.append((s, kind, k))
                position[s] += 1
    return order


def pipeline_parallel(graph: nx.DiGraph, stages: Sequence[Sequence[str]], microbatches: int = 1,
                      rules: TPRules | None = None, *, slice_batch: bool = True) -> nx.DiGraph:
    """A training graph over ``len(stages)`` pipeline stages of ``len(stages[0])`` tensor-parallel units.

    Microbatch ``k`` of op ``x`` is ``x#k`` (then ``x#k@unit`` after the tensor split); updates
    keep their name. ``slice_batch=False`` copies the ops as they are: the graph is already one
    microbatch (a step captured at ``batch / microbatches``). A gradient that flows into an
    update as an op output (a captured step) is accumulated: the first microbatch's edge carries
    its bytes, keeping one gradient buffer alive until the update, the others only order.

    Examples
    --------
    >>> from hetsim.graph.training import training_step
    >>> g = new_graph("two-layers", phase="prefill", batch=4)
    >>> for i in range(2):
    ...     add_op(g, f"fc{i}", op="matmul", flop=800, bytes_read=880, bytes_written=80, dtype="bf16",
    ...            module=f"layers.{i}.mlp.up_proj", weights={f"layers.{i}.w.weight": 800})
    >>> g.add_edge("fc0", "fc1", bytes=80)
    >>> pp = pipeline_parallel(training_step(g), [["gpu0"], ["gpu1"]], microbatches=2)
    >>> pp.nodes["fc1#1@gpu1"]["flop"], pp.nodes["update.fc0@gpu0"]["pin"]
    (400.0, 'gpu0')
    """
    if not stages or any(len(s) != len(stages[0]) for s in stages):
        raise GraphError(f"pipeline_parallel.stages: got {[list(s) for s in stages]!r}, expected lists of units, "
                         "as many in every stage")
    if isinstance(microbatches, bool) or not isinstance(microbatches, int) or microbatches < 1:
        raise GraphError(f"pipeline_parallel.microbatches: got {microbatches!r}, expected a positive integer")
    n = len(stages)
    stage = stages_of(graph, n)
    m = microbatches
    topo = list(nx.topological_sort(graph))
    blocks: dict[tuple[int, str], list[str]] = {}
    for op in topo:
        if not op.startswith("update."):
            blocks.setdefault((stage[op], "B" if op.startswith("grad.") else "F"), []).append(op)
    out = new_graph(graph.graph.get("name", ""))
    out.graph.update(graph.graph, pp=n, microbatches=m)  # batch: the whole step's, all microbatches
    if not slice_batch and isinstance(graph.graph.get("batch"), int):
        out.graph["batch"] = graph.graph["batch"] * m
    for s, kind, k in one_f_one_b(n, m):
        for op in blocks.get((s, kind), []):
            add_op(out, f"{op}#{k}", **(batch_slice(graph.nodes[op], m) if slice_batch else graph.nodes[op]))
    for op in topo:
        if op.startswith("update."):
            add_op(out, op, **graph.nodes[op])
    for a, b, data in graph.edges(data=True):
        if b.startswith("update."):
            for k in range(m):
                out.add_edge(f"{a}#{k}", b, **dict(data, bytes=data["bytes"] if k == 0 else 0))
        else:
            for k in range(m):
                out.add_edge(f"{a}#{k}", f"{b}#{k}", **dict(data, bytes=data["bytes"] / m if slice_batch else
                                                              data["bytes"]))
    units = {op: list(stages[stage[op.split("#")[0]]]) for op in out}
    return tensor_parallel(out, units, rules)

