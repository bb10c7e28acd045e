"""Expert parallelism on OpGraphs: experts spread over units, everything else data parallel.

:func:`expert_parallel` lays a Mixture-of-Experts graph out as GShard and Switch Transformer do
(Lepikhin et al., "GShard: scaling giant models with conditional computation and automatic
sharding", ICLR 2021, §2.2; Fedus et al., "Switch Transformers", JMLR 23, 2022, §2.2), expert
parallelism combined with data parallelism over the same ``p`` units:

* the experts of each MoE layer are **spread**: with ``E`` experts per layer, unit ``r`` holds
  experts ``r·E/p … (r+1)·E/p − 1`` — their weights and their ops, unchanged (each expert still
  processes all the tokens routed to it, now gathered from every unit);
* every other op is **replicated** as a data-parallel replica on ``1/p`` of the tokens: FLOPs,
  activations, outputs, explicit costs and token inputs (``input_ids``, a KV cache) divided by
  ``p``; parameters whole on every unit;
* around each MoE layer an **all-to-all dispatch** sends every unit's token copies to the units of
  their experts, and an **all-to-all combine** brings the experts' outputs back: collective ops
  ``all_to_all:dispatch:<layer>`` and ``all_to_all:combine:<layer>``, one member per unit.

Routing is taken as balanced (see :mod:`hetsim.models.mixtral`): each unit sends ``1/p`` of a
layer's token copies and receives as much, so ``comm_bytes`` (each rank's send buffer) is the
layer's dispatched (or combined) bytes divided by ``p``. A replica's share is exact when the
batch divides by ``p`` (each unit runs ``batch/p`` sequences); otherwise it is the average load,
and per-position work (RoPE's tables) is undercounted by the same ``1/p``.

Which ops are experts is an :class:`EPRules` of regular expressions over the ``module``
attribute (default: Mixtral's ``layers.N.block_sparse_moe.experts.E``); which ``weights`` are
token data rather than parameters is another (default: names without a dot, i.e. graph inputs).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx

from hetsim.errors import GraphError
from hetsim.graph.schema import add_op, new_graph, validate_graph

Edges = list[tuple[str, str, float]]  # (producer, consumer, bytes) crossing an MoE layer's boundary


@dataclass(frozen=True)
class EPRules:
    """Regular expressions naming an op's expert (over ``module``) and the token-data weights.

    ``expert`` must capture ``layer`` (the MoE layer's module path) and ``index`` (the expert's
    number). ``data_input`` matches the ``weights`` entries that hold tokens (graph inputs: input
    ids, a KV cache), which a data-parallel replica holds ``1/p`` of; the others are parameters.

    Examples
    --------
    >>> EPRules().expert_of("layers.3.block_sparse_moe.experts.5.w1")
    ('layers.3.block_sparse_moe', 5)
    >>> EPRules().expert_of("layers.3.block_sparse_moe.gate") is None
    True
    """

    expert: str = r"^(?P<layer>.+)\.experts\.(?P<index>\d+)(\.|$)"
    data_input: str = r"^[^.]+$"

    def expert_of(self, module: str) -> tuple[str, int] | None:
        """``(layer, expert index)`` of an op in ``module``, or ``None`` for a non-expert op."""
        m = re.search(self.expert, module)
        return (m.group("layer"), int(m.group("index"))) if m else None


def expert_parallel(graph: nx.DiGraph, units: Sequence[str], rules: EPRules | None = None, *,
                    n_experts: int | None = None) -> nx.DiGraph:
    """``graph`` with its experts spread over ``units``, the rest data parallel, and all-to-alls.

    Parameters
    ----------
    graph : networkx.DiGraph
        A one-device OpGraph with expert ops (e.g. ``model_graph("mixtral-tiny")``).
    units : sequence of str
        The ranks' units, in rank order; their number must divide ``n_experts``.
    rules : EPRules, optional
        Which ops are experts and which weights are token data.
    n_experts : int, optional
        Experts per MoE layer; default: one more than the highest expert index in the graph.

    Returns
    -------
    networkx.DiGraph
        Op ``x`` becomes ``x@unit``, pinned there: on every unit for a replicated op, on its
        expert's unit for an expert op. Graph attributes as ``graph``'s, plus ``ep`` (``p``).

    Examples
    --------
    Two experts on two units: a norm feeds both experts through the dispatch, and their outputs
    come back to a concatenation through the combine.

    >>> g = new_graph("moe")
    >>> add_op(g, "norm", op="norm", flop=40, bytes_read=440, bytes_written=400, module="layers.0.norm",
    ...        weights={"norm.w": 40})
    >>> add_op(g, "cat", op="copy", bytes_read=400, bytes_written=400, module="layers.0.moe")
    >>> for e in range(2):
    ...     add_op(g, f"w{e}", op="matmul", flop=800, bytes_read=1000, bytes_written=200,
    ...            module=f"layers.0.moe.experts.{e}.w1", weights={f"w{e}.weight": 800})
    ...     g.add_edge("norm", f"w{e}", bytes=200)
    ...     g.add_edge(f"w{e}", "cat", bytes=200)
    >>> ep = expert_parallel(g, ["gpu0", "gpu1"])
    >>> sorted(ep.successors("all_to_all:dispatch:layers.0.moe@gpu1"))
    ['w1@gpu1']
    >>> ep.nodes["norm@gpu0"]["flop"], ep.nodes["norm@gpu0"]["weights"], ep.nodes["w1@gpu1"]["flop"]
    (20.0, {'norm.w': 40}, 800)
    >>> ep.nodes["all_to_all:combine:layers.0.moe@gpu0"]["comm_bytes"]
    200.0
    """
    units = list(units)
    if not units or len(set(units)) != len(units) or not all(isinstance(u, str) and u for u in units):
        raise GraphError(f"expert_parallel.units: got {units!r}, expected distinct unit names")
    rules = rules or EPRules()
    expert = {op: e for op, data in graph.nodes(data=True) if (e := rules.expert_of(data.get("module", "")))}
    name = graph.graph.get("name", "")
    if not expert:
        raise GraphError(f"expert_parallel: graph {name!r} has no expert op (expected modules such as "
                         "layers.0.block_sparse_moe.experts.0)")
    p = len(units)
    n = n_experts if n_experts is not None else 1 + max(index for _, index in expert.values())
    highest = max(index for _, index in expert.values())
    if n <= highest:
        raise GraphError(f"expert_parallel.n_experts: got {n}, expected more than the highest expert index "
                         f"{highest} of graph {name!r}")
    if n % p:
        raise GraphError(f"expert_parallel.units: got {p} units, expected a divisor of the {n} experts per layer "
                         f"of graph {name!r}")
    owner = {op: units[index // (n // p)] for op, (_, index) in expert.items()}

    out = new_graph(name)
    out.graph.update(graph.graph, ep=p)
    for op, data in graph.nodes(data=True):
        if op in owner:
            add_op(out, f"{op}@{owner[op]}", **_without_pin(data), pin=owner[op])
        else:
            for unit in units:
                add_op(out, f"{op}@{unit}", **_replica(data, p, rules), pin=unit)
    dispatch: dict[str, Edges] = {}
    combine: dict[str, Edges] = {}
    for a, b, data in graph.edges(data=True):
        if a in owner and b in owner:
            out.add_edge(f"{a}@{owner[a]}", f"{b}@{owner[b]}", **dict(data))
        elif b in owner:
            dispatch.setdefault(expert[b][0], []).append((a, b, data["bytes"]))
        elif a in owner:
            combine.setdefault(expert[a][0], []).append((a, b, data["bytes"]))
        else:
            for unit in units:
                out.add_edge(f"{a}@{unit}", f"{b}@{unit}", **dict(data, bytes=data["bytes"] / p))
    for layer, edges in dispatch.items():
        dtype = graph.nodes[edges[0][1]].get("dtype")
        _dispatch(out, f"all_to_all:dispatch:{layer}", layer, edges, units, owner, dtype)
    for layer, edges in combine.items():
        dtype = graph.nodes[edges[0][0]].get("dtype")
        _combine(out, f"all_to_all:combine:{layer}", layer, edges, units, owner, dtype)
    return validate_graph(out)


def _without_pin(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "pin"}


def _replica(data: dict, p: int, rules: EPRules) -> dict:
    """One data-parallel replica's attributes: the token-proportional part divided by ``p``."""
    attrs = _without_pin(data)
    if p == 1:
        return attrs
    params = {k: v for k, v in data["weights"].items() if not re.search(rules.data_input, k)}
    tokens = {k: v / p for k, v in data["weights"].items() if re.search(rules.data_input, k)}
    resident = sum(params.values())
    if data["op"] == "embedding":  # reads the rows of its own tokens, not the whole table
        read = data["bytes_read"] / p
    else:
        read = resident + max(0.0, data["bytes_read"] - resident) / p
    inplace = data.get("inplace_bytes", 0.0)  # into parameters (gradients, optimizer): whole
    attrs.update(flop=data["flop"] / p, weights=params | tokens, weight_bytes=resident + sum(tokens.values()),
                 bytes_read=read, bytes_written=(data["bytes_written"] - inplace) / p + inplace)
    if data.get("cost") is not None:
        attrs["cost"] = {unit: s / p for unit, s in data["cost"].items()}
    return attrs


def _sums(edges: Edges) -> tuple[dict[str, float], dict[str, float]]:
    """Bytes of each distinct tensor sent (by producer) and read (summed per consumer)."""
    sent: dict[str, float] = {}
    read: dict[str, float] = {}
    for a, b, nbytes in edges:
        sent[a] = max(sent.get(a, 0.0), nbytes)  # one tensor, however many consumers read it
        read[b] = read.get(b, 0.0) + nbytes
    return sent, read


def _members(out: nx.DiGraph, group: str, layer: str, comm: float, units: list[str], dtype: object) -> None:
    for unit in units:
        add_op(out, f"{group}@{unit}", op="collective", collective="all_to_all", group=group, ranks=tuple(units),
               comm_bytes=comm, pin=unit, dtype=dtype, module=layer, bytes_read=comm, bytes_written=comm)


def _dispatch(out: nx.DiGraph, group: str, layer: str, edges: Edges, units: list[str], owner: dict[str, str],
              dtype: object) -> None:
    """Every replica sends its ``1/p`` of each token tensor; each expert reads its tokens whole."""
    p = len(units)
    sent, read = _sums(edges)
    _members(out, group, layer, sum(sent.values()) / p, units, dtype)
    for unit in units:
        for a, nbytes in sent.items():
            out.add_edge(f"{a}@{unit}", f"{group}@{unit}", bytes=nbytes / p)
    for b, nbytes in read.items():
        out.add_edge(f"{group}@{owner[b]}", f"{b}@{owner[b]}", bytes=nbytes)


def _combine(out: nx.DiGraph, group: str, layer: str, edges: Edges, units: list[str], owner: dict[str, str],
             dtype: object) -> None:
    """Every expert sends its output whole; each replica reads ``1/p`` of every consumer's input."""
    p = len(units)
    sent, read = _sums(edges)
    _members(out, group, layer, sum(sent.values()) / p, units, dtype)
    for a, nbytes in sent.items():
        out.add_edge(f"{a}@{owner[a]}", f"{group}@{owner[a]}", bytes=nbytes)
    for unit in units:
        for b, nbytes in read.items():
            out.add_edge(f"{group}@{unit}", f"{b}@{unit}", bytes=nbytes / p)
