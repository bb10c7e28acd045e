"""Training steps from forward graphs: loss, backward and the optimizer update.

:func:`training_step` appends to a forward graph (a ``prefill`` capture: the whole sequence)
the ops autograd would run, with their FLOPs, bytes and what they keep alive:

* a **loss** (cross-entropy over the logits) consuming the graph's outputs;
* for every forward op that a trainable parameter feeds (directly or through other ops), a
  **backward op** ``grad.<op>`` of the same kind. A matmul's backward computes the input and the
  weight gradients, 2× its forward FLOPs (Narayanan et al., "Efficient large-scale language model
  training on GPU clusters using Megatron-LM", SC 2021, §5.1: 3× for forward + backward);
  attention's is 2.5× (FlashAttention-2: five matmuls for two; Dao, ICLR 2024, §3.1); other ops
  repeat their forward FLOPs. It reads the output gradient and its saved inputs (edges from the
  forward inputs keep those activations alive until then: no recomputation) and writes the input
  gradients and, for parameters, their gradients;
* one **update** per op with parameters: AdamW (Loshchilov & Hutter, ICLR 2019) with mixed
  precision (Micikevicius et al., ICLR 2018): fp32 master weights and two fp32 moments, so with
  bf16 weights and gradients 16 bytes per parameter in all (Rajbhandari et al., "ZeRO", SC 2020,
  §3.1); about 12 FLOPs per parameter (an estimate: the moment updates, the bias corrections, the
  step and the decay). ``sgd`` keeps no state: 2 FLOPs per parameter.

Parameters are the weights whose names end in ``.weight`` or ``.bias``; graph inputs (token ids)
and buffers get no gradient. Gradients and optimizer states are persistent tensors like the
weights, so the memory tracker counts them resident (``grad:``, ``master:``, ``adam_m:``,
``adam_v:`` prefixes); writing them is traffic, not allocation (``inplace_bytes``).
"""

from __future__ import annotations

import math
import re

import networkx as nx

from hetsim.errors import GraphError
from hetsim.graph.schema import DTYPE_BYTES, add_op, new_graph, validate_graph

BACKWARD_FLOP = {"matmul": 2.0, "conv": 2.0, "attention": 2.5}
PARAMETER = re.compile(r"\.(weight|bias)$")
OPTIMIZERS = ("adamw", "sgd")


def parameters(data: dict) -> dict[str, float]:
    """The trainable tensors among an op's ``weights``."""
    return {name: nbytes for name, nbytes in data["weights"].items() if PARAMETER.search(name)}


def training_step(graph: nx.DiGraph, optimizer: str = "adamw") -> nx.DiGraph:
    """Forward graph → forward + loss + backward + optimizer update (one step, no microbatches).

    Examples
    --------
    >>> g = new_graph("mlp", phase="prefill")
    >>> add_op(g, "fc", op="matmul", flop=800, bytes_read=880, bytes_written=80, dtype="bf16",
    ...        module="fc", weights={"fc.weight": 800})
    >>> add_op(g, "act", op="elementwise", flop=40, bytes_read=80, bytes_written=80, dtype="bf16", module="act")
    >>> g.add_edge("fc", "act", bytes=80)
    >>> t = training_step(g)
    >>> list(t)
    ['fc', 'act', 'loss', 'grad.act', 'grad.fc', 'update.fc']
    >>> t.nodes["grad.fc"]["flop"], sorted(t.nodes["update.fc"]["weights"])
    (1600.0, ['adam_m:fc.weight', 'adam_v:fc.weight', 'fc.weight', 'grad:fc.weight', 'master:fc.weight'])
    """
    if optimizer not in OPTIMIZERS:
        raise GraphError(f"training_step.optimizer: got {optimizer!r}, expected one of {', '.join(OPTIMIZERS)}")
    if graph.graph.get("phase") not in ("prefill", ""):
        raise GraphError(f"training_step: got a {graph.graph.get('phase')!r} graph, expected a prefill "
                         "(whole-sequence) forward graph")
    order = list(nx.topological_sort(graph))
    needs_grad: dict[str, bool] = {}
    for op in order:
        needs_grad[op] = bool(parameters(graph.nodes[op])) or any(needs_grad[p] for p in graph.predecessors(op))
    if not any(needs_grad.values()):
        raise GraphError(f"training_step: graph {graph.graph.get('name', '')!r} has no trainable parameter "
                         "(weights named *.weight or *.bias)")
    out = new_graph(graph.graph.get("name", ""))
    out.graph.update(graph.graph, phase="train")
    for op, data in graph.nodes(data=True):
        add_op(out, op, **data)
    for a, b, data in graph.edges(data=True):
        out.add_edge(a, b, **data)
    _add_loss(graph, out)
    for op in reversed(order):
        if needs_grad[op]:
            _add_backward(graph, out, op, needs_grad)
    for op in order:
        if parameters(graph.nodes[op]):
            _add_update(graph, out, op, optimizer)
    return validate_graph(out)


def _add_loss(graph: nx.DiGraph, out: nx.DiGraph) -> None:
    """Cross-entropy over every output: softmax, log, pick, mean — about 5 FLOPs per logit."""
    outputs = [op for op in graph if graph.out_degree(op) == 0]
    logits = sum(graph.nodes[op]["bytes_written"] for op in outputs)
    dtype = graph.nodes[outputs[-1]].get("dtype")
    numel = logits / DTYPE_BYTES.get(dtype or "fp32", 4)
    module = graph.nodes[outputs[-1]].get("module", "")
    add_op(out, "loss", op="reduction", target="loss.cross_entropy", flop=5 * numel, bytes_read=logits,
           bytes_written=4, dtype=dtype, shape=(), module=f"{module}.loss" if module else "loss")
    for op in outputs:
        out.add_edge(op, "loss", bytes=graph.nodes[op]["bytes_written"])


def _add_backward(graph: nx.DiGraph, out: nx.DiGraph, op: str, needs_grad: dict[str, bool]) -> None:
    data = graph.nodes[op]
    params = parameters(data)
    grads = {f"grad:{name}": nbytes for name, nbytes in params.items()}
    # gradients of the inputs that need one (autograd computes no others), and of the parameters,
    # accumulated in place into their persistent buffers
    inputs = sum(graph.edges[p, op]["bytes"] for p in graph.predecessors(op) if needs_grad[p])
    view = data["op"] == "view"
    add_op(out, f"grad.{op}", op=data["op"], target=f"backward:{data['target']}",
           flop=data["flop"] * BACKWARD_FLOP.get(data["op"], 1.0), dtype=data.get("dtype"), shape=data.get("shape"),
           module=data.get("module", ""), weights={**data["weights"], **grads},
           bytes_read=0.0 if view else data["bytes_written"] + data["bytes_read"],
           bytes_written=0.0 if view else inputs + sum(params.values()),
           inplace_bytes=0.0 if view else sum(params.values()))
    consumers = list(graph.successors(op))
    for succ in consumers:
        if needs_grad[succ]:
            out.add_edge(f"grad.{succ}", f"grad.{op}", bytes=graph.edges[op, succ]["bytes"])
    if not consumers:
        out.add_edge("loss", f"grad.{op}", bytes=data["bytes_written"])
    for pred in graph.predecessors(op):  # saved activations: alive until the backward op has run
        out.add_edge(pred, f"grad.{op}", bytes=graph.edges[pred, op]["bytes"])


def _add_update(graph: nx.DiGraph, out: nx.DiGraph, op: str, optimizer: str) -> None:
    data = graph.nodes[op]
    # the update reads the accumulated gradient buffer, not grad.<op>'s output: an ordering edge;
    # an op that does no arithmetic (an embedding) has no dtype: its parameters are in the graph's
    add_update(out, f"update.{op}", parameters(data), after=f"grad.{op}", optimizer=optimizer,
               dtype=data.get("dtype") or graph.graph.get("dtype"), module=data.get("module", ""))


def add_update(out: nx.DiGraph, name: str, params: dict[str, float], *, after: str, optimizer: str = "adamw",
               dtype: str | None = None, module: str = "", gradient_bytes: float = 0.0) -> None:
    """Add the optimizer update ``name`` of ``params`` (name → bytes), run after op ``after``.

    With ``gradient_bytes == 0`` (:func:`training_step`) the gradients are persistent ``grad:``
    buffers the update reads; otherwise (a captured joint graph, whose gradients are outputs of
    backward ops) the edge from ``after`` carries the gradient, alive until the update has run.
    """
    size = DTYPE_BYTES.get(dtype or "fp32", 4)
    count = sum(params.values()) / size
    weights = dict(params)
    if not gradient_bytes:
        weights.update({f"grad:{p}": nbytes for p, nbytes in params.items()})
    state = 0.0
    if optimizer == "adamw":
        for prefix in ("master", "adam_m", "adam_v"):
            weights.update({f"{prefix}:{p}": nbytes / size * 4 for p, nbytes in params.items()})
        state = 12.0 * count  # three fp32 tensors read and written
    add_op(out, name, op="elementwise", target=f"optimizer.{optimizer}",
           flop=(12.0 if optimizer == "adamw" else 2.0) * count, dtype="fp32", shape=(math.floor(count),),
           module=module, weights=weights, bytes_read=2 * sum(params.values()) + state,
           bytes_written=sum(params.values()) + state, inplace_bytes=sum(params.values()) + state)
    out.add_edge(after, name, bytes=gradient_bytes)


def batch_slice(data: dict, n: int) -> dict:
    """An op's attributes on 1/n of its batch: activations (and their collectives) scale; parameters,
    their gradients and optimizer states do not (microbatches and data-parallel replicas).

    Examples
    --------
    >>> batch_slice({"flop": 8.0, "bytes_read": 100.0, "bytes_written": 60.0, "weight_bytes": 20.0,
    ...              "weights": {"w.weight": 10.0, "grad:w.weight": 10.0}}, 2)["bytes_written"]
    35.0
    """
    params = sum(v for k, v in data["weights"].items() if k.startswith("grad:"))
    sliced = dict(data, flop=data["flop"] / n,
                  bytes_read=max(0.0, data["bytes_read"] - data["weight_bytes"]) / n + data["weight_bytes"],
                  bytes_written=max(0.0, data["bytes_written"] - params) / n + params)
    if "comm_bytes" in data:
        sliced["comm_bytes"] = data["comm_bytes"] / n
    return sliced
