"""The OpGraph schema: one place that names every attribute an op graph carries.

An OpGraph is a :class:`networkx.DiGraph`. Nodes are ops with readable, stable string ids; edges
are tensors flowing from producer to consumer. :func:`validate_graph` checks a graph against this
schema at every stage boundary.

Node attributes
    ``op``            op kind, one of :data:`OP_KINDS`
    ``target``        the ATen op when captured (``aten.mm.default``), else ``""``
    ``flop``          floating-point operations (2 per multiply-add)
    ``bytes_read``    bytes the op reads (inputs, weights included)
    ``bytes_written`` bytes the op writes (its outputs)
    ``weights``       ``{tensor name: bytes}`` of persistent tensors the op reads: parameters,
                      buffers and graph inputs such as a KV cache; they stay resident in memory
    ``weight_bytes``  sum of ``weights``
    ``dtype``         compute dtype (``bf16``, ``fp16``, ``fp32``, ...) or ``None`` for ops
                      without arithmetic
    ``shape``         output shape, a tuple of ints
    ``module``        dotted module path, e.g. ``layers.3.attn``
    ``cost``          optional ``{unit name: seconds}``: explicit per-unit costs win over the
                      cost model (classic benchmark instances, measured tables)
    ``pin``           optional unit name: the op may run only there (the ranks of a parallel
                      graph, see :mod:`hetsim.graph.parallel`)
    ``causal``        optional ``True`` on an attention op with a causal mask (``is_causal``): a
                      kernel then computes only the scores the mask keeps (about half of them)
    ``inplace_bytes`` optional part of ``bytes_written`` that goes into persistent tensors
                      (gradient accumulation, optimizer updates, a decode step's KV-cache
                      writes): traffic, but no new allocation
    ``fused``         optional ``{"pattern": str, "members": [op ids], "targets": [ATen targets]}``
                      of a kernel made of several ops by :func:`hetsim.graph.fusion.fuse`: the
                      pattern it implements (:data:`hetsim.graph.fusion.PATTERNS`), the ops of
                      the unfused graph it runs, in topological order, and their targets. Op kind
                      ``fused`` always carries it; a serving engine's fused matmul or attention
                      keeps its kind (``matmul``, ``attention``, ``copy``) and carries it too;
                      ``"mode"`` (``compiled`` or ``serving``) says which execution mode made it

Collective ops (``op == "collective"``) also carry
    ``collective``    one of :data:`COLLECTIVES`
    ``group``         the id shared by the members of one collective: one node per rank, each
                      pinned to its rank's unit; they run together
    ``ranks``         the group's unit names in rank order (a ring follows this order)
    ``comm_bytes``    the collective's buffer: the tensor reduced (all-reduce), the whole gathered
                      tensor (all-gather, reduce-scatter), the tensor broadcast (from rank 0), or
                      each rank's send buffer (all-to-all)

Edge attributes
    ``bytes``         size of the tensor that flows; 0 for an edge that only orders two ops (the
                      consumer reads nothing of the producer's output, which it does not keep alive)
    ``cost``          optional seconds the transfer takes when the two ends run on different
                      units (classic scheduling instances); replaces the route's time

Graph attributes
    ``name``, ``phase`` (``prefill``, ``decode``, ``train`` or ``""``), ``batch``, ``seq_len``,
    ``dtype``
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import networkx as nx

from hetsim.errors import GraphError

OP_KINDS = frozenset({
    "matmul", "attention", "conv", "elementwise", "norm", "softmax", "embedding", "reduction",
    "collective", "copy", "view", "fused", "other",
})

COLLECTIVES = frozenset({"all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all"})

#: node attributes an op may carry besides :data:`NODE_DEFAULTS`
OPTIONAL_KEYS = frozenset({"cost", "pin", "collective", "group", "ranks", "comm_bytes", "inplace_bytes",
                           "fused", "causal"})

#: op kinds that move no data and cost nothing (aliasing views)
FREE_OPS = frozenset({"view"})

#: bytes per element of each schema dtype (tf32 is stored as fp32)
DTYPE_BYTES: Mapping[str, float] = MappingProxyType({
    "fp64": 8, "int64": 8, "fp32": 4, "tf32": 4, "int32": 4, "bf16": 2, "fp16": 2, "int16": 2,
    "fp8": 1, "int8": 1, "uint8": 1, "bool": 1, "int4": 0.5,
})
DTYPES = frozenset(DTYPE_BYTES)

NODE_DEFAULTS: Mapping[str, object] = {
    "op": "other", "target": "", "flop": 0, "bytes_read": 0, "bytes_written": 0, "weights": {},
    "weight_bytes": 0, "dtype": None, "shape": (), "module": "",
}

GRAPH_KEYS = ("name", "phase", "batch", "seq_len", "dtype")


def new_graph(name: str, *, phase: str = "", batch: int = 1, seq_len: int = 0, dtype: str | None = None) -> nx.DiGraph:
    """An empty OpGraph carrying the graph attributes.

    Examples
    --------
    >>> g = new_graph("toy", phase="prefill", batch=1, seq_len=8, dtype="fp32")
    >>> add_op(g, "a", op="matmul", flop=100, dtype="fp32")
    >>> add_op(g, "b", op="elementwise", flop=4)
    >>> g.add_edge("a", "b", bytes=16)
    >>> validate_graph(g) is g
    True
    """
    g = nx.DiGraph()
    g.graph.update(name=name, phase=phase, batch=batch, seq_len=seq_len, dtype=dtype)
    return g


def add_op(g: nx.DiGraph, node: str, **attrs: object) -> None:
    """Add one op with every schema attribute present (defaults for those not given)."""
    unknown = set(attrs) - set(NODE_DEFAULTS) - OPTIONAL_KEYS
    if unknown:
        raise GraphError(f"op {node!r}: unknown attribute {sorted(unknown)[0]!r}, expected one of "
                         f"{', '.join(sorted(set(NODE_DEFAULTS) | OPTIONAL_KEYS))}")
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in NODE_DEFAULTS.items()}
    data.update(attrs)
    if "weights" in attrs and "weight_bytes" not in attrs:
        data["weight_bytes"] = sum(data["weights"].values())
    g.add_node(node, **data)


def _number_ok(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def validate_graph(g: nx.DiGraph) -> nx.DiGraph:
    """Check ``g`` against the schema; return it unchanged or raise a one-line GraphError.

    Examples
    --------
    >>> g = new_graph("loop")
    >>> add_op(g, "a"); add_op(g, "b")
    >>> g.add_edge("a", "b", bytes=1); g.add_edge("b", "a", bytes=1)
    >>> validate_graph(g)
    Traceback (most recent call last):
    ...
    hetsim.errors.GraphError: graph 'loop': got a cycle a -> b -> a, expected a DAG
    """
    if not isinstance(g, nx.DiGraph):
        raise GraphError(f"graph: got {type(g).__name__}, expected a networkx.DiGraph")
    name = g.graph.get("name", "")
    if g.number_of_nodes() == 0:
        raise GraphError(f"graph {name!r}: got no ops, expected at least one")
    if not nx.is_directed_acyclic_graph(g):  # a topological sort; find_cycle's edge DFS is far slower
        cycle = nx.find_cycle(g)
        path = " -> ".join([str(u) for u, _ in cycle] + [str(cycle[0][0])])
        raise GraphError(f"graph {name!r}: got a cycle {path}, expected a DAG")
    groups: dict[str, list[str]] = {}
    for node, data in g.nodes(data=True):
        op = data.get("op")
        if op not in OP_KINDS:
            raise GraphError(f"op {node!r}.op: got {op!r}, expected one of {', '.join(sorted(OP_KINDS))}")
        for key in ("flop", "bytes_read", "bytes_written", "weight_bytes"):
            if not _number_ok(data.get(key)):
                raise GraphError(f"op {node!r}.{key}: got {data.get(key)!r}, expected a non-negative number")
        dtype = data.get("dtype")
        if dtype is not None and dtype not in DTYPES:
            raise GraphError(f"op {node!r}.dtype: got {dtype!r}, expected one of {', '.join(sorted(DTYPES))}")
        cost = data.get("cost")
        if cost is not None and (not isinstance(cost, Mapping) or not all(_number_ok(v) for v in cost.values())):
            raise GraphError(f"op {node!r}.cost: got {cost!r}, expected a mapping unit -> seconds >= 0")
        inplace = data.get("inplace_bytes", 0)
        if not _number_ok(inplace) or inplace > data["bytes_written"] * (1 + 1e-9):
            raise GraphError(f"op {node!r}.inplace_bytes: got {inplace!r}, expected a number between 0 and "
                             f"bytes_written ({data['bytes_written']!r})")
        pin = data.get("pin")
        if pin is not None and not (isinstance(pin, str) and pin):
            raise GraphError(f"op {node!r}.pin: got {pin!r}, expected a unit name")
        if op == "collective":
            groups.setdefault(_check_collective(node, data), []).append(node)
        if op == "fused" or "fused" in data:
            _check_fused(node, data.get("fused"))
    for members in groups.values():
        _check_group(g, members)
    for u, v, data in g.edges(data=True):
        for key in ("bytes", "cost"):
            if (key == "bytes" or key in data) and not _number_ok(data.get(key)):
                raise GraphError(f"edge {u!r} -> {v!r}.{key}: got {data.get(key)!r}, expected a non-negative number")
    return g


def _check_fused(node: str, fused: object) -> None:
    """A fused kernel's record of its members: a pattern, op ids and one target per op."""
    ok = (isinstance(fused, Mapping) and isinstance(fused.get("pattern"), str) and fused["pattern"]
          and isinstance(fused.get("members"), list | tuple) and fused["members"]
          and all(isinstance(m, str) and m for m in fused["members"])
          and isinstance(fused.get("targets"), list | tuple) and len(fused["targets"]) == len(fused["members"])
          and all(isinstance(t, str) for t in fused["targets"]))
    if not ok:
        raise GraphError(f"op {node!r}.fused: got {fused!r}, expected {{'pattern': str, 'members': [op ids], "
                         "'targets': [one target per member]}")


def _check_collective(node: str, data: Mapping) -> str:
    """One member's collective attributes; its group id."""
    kind = data.get("collective")
    if kind not in COLLECTIVES:
        raise GraphError(f"op {node!r}.collective: got {kind!r}, expected one of {', '.join(sorted(COLLECTIVES))}")
    group, ranks = data.get("group"), data.get("ranks")
    if not (isinstance(group, str) and group):
        raise GraphError(f"op {node!r}.group: got {group!r}, expected the collective's id (a string)")
    if (not isinstance(ranks, tuple | list) or not ranks or not all(isinstance(r, str) and r for r in ranks)
            or len(set(ranks)) != len(ranks)):
        raise GraphError(f"op {node!r}.ranks: got {ranks!r}, expected a list of distinct unit names")
    if data.get("pin") not in ranks:
        raise GraphError(f"op {node!r}.pin: got {data.get('pin')!r}, expected one of its ranks {list(ranks)}")
    if not _number_ok(data.get("comm_bytes")):
        raise GraphError(f"op {node!r}.comm_bytes: got {data.get('comm_bytes')!r}, expected a non-negative number")
    return group


def _check_group(g: nx.DiGraph, members: list[str]) -> None:
    """The members of one collective agree, and there is one per rank."""
    first = g.nodes[members[0]]
    for node in members[1:]:
        data = g.nodes[node]
        for key in ("collective", "comm_bytes"):
            if data[key] != first[key]:
                raise GraphError(f"op {node!r}.{key}: got {data[key]!r}, expected {first[key]!r} as the other "
                                 f"members of collective {first['group']!r}")
        if tuple(data["ranks"]) != tuple(first["ranks"]):
            raise GraphError(f"op {node!r}.ranks: got {list(data['ranks'])}, expected {list(first['ranks'])} as "
                             f"the other members of collective {first['group']!r}")
    pins = sorted(g.nodes[m]["pin"] for m in members)
    if pins != sorted(first["ranks"]):
        raise GraphError(f"collective {first['group']!r}: members pinned to {pins}, expected one member on each "
                         f"of {sorted(first['ranks'])}")
