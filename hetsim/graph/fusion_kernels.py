"""The kernel graph of a fusion: one node per kernel, its attributes from its member ops.

:func:`hetsim.graph.fusion.fuse` decides which ops run together; :func:`kernel_graph` builds the
OpGraph of those kernels (the attributes are documented in :mod:`hetsim.graph.fusion`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import networkx as nx

from hetsim.graph.schema import new_graph, validate_graph

#: tokens per KV-cache block: vLLM's ``CacheConfig.DEFAULT_BLOCK_SIZE = 16``
#: (https://docs.vllm.ai/en/stable/api/vllm/config/cache/)
PAGED_BLOCK_TOKENS = 16
#: bytes per block-table entry: vLLM's paged attention reads ``block_tables`` as int32
#: ``[num_seqs, max_num_blocks_per_seq]`` (docs.vllm.ai, design/kernel/paged_attention)
BLOCK_TABLE_ENTRY_BYTES = 4


@dataclass(frozen=True)
class Kernel:
    """Ops run as one kernel (topological order), and its ``pattern`` and op ``kind``.

    A kernel without a pattern is one op run as captured (with any views beside it).
    """

    members: tuple[str, ...]
    pattern: str | None = None
    kind: str | None = None


def kernel_graph(graph: nx.DiGraph, kernels: Sequence[Kernel]) -> nx.DiGraph:
    """The validated OpGraph whose nodes are ``kernels`` (every op of ``graph`` in exactly one).

    Examples
    --------
    >>> from hetsim.graph.schema import add_op, new_graph
    >>> g = new_graph("pair")
    >>> add_op(g, "a", op="elementwise", flop=4, bytes_read=16, bytes_written=16, weights={"x": 16}, shape=(4,))
    >>> add_op(g, "b", op="elementwise", flop=4, bytes_read=16, bytes_written=16, shape=(4,))
    >>> g.add_edge("a", "b", bytes=16)
    >>> k = kernel_graph(g, [Kernel(("a", "b"), "pointwise", "fused")])
    >>> d = k.nodes["fused.a"]
    >>> d["flop"], d["bytes_read"], d["bytes_written"], d["fused"]["members"]
    (8, 16, 16, ['a', 'b'])
    """
    nodes = graph.nodes
    out = new_graph(graph.graph.get("name", ""))
    out.graph.update(graph.graph)
    node_of: dict[str, str] = {}
    for kernel in kernels:
        members = list(kernel.members)
        if kernel.pattern is None:
            for m in members:
                out.add_node(m, **_copy(nodes[m]))
                node_of[m] = m
            continue
        real = [m for m in members if nodes[m]["op"] != "view"] or members
        new_id = real[0] if len(members) == 1 else f"fused.{real[0]}"
        while new_id in out or (new_id in graph and new_id not in members):
            new_id += "+"
        out.add_node(new_id, **kernel_attrs(graph, members, kernel.pattern, kernel.kind or "fused"))
        node_of.update(dict.fromkeys(members, new_id))
    flows: dict[tuple[str, str], dict[str, dict]] = {}
    for u, v, d in graph.edges(data=True):
        nu, nv = node_of[u], node_of[v]
        if nu != nv:  # one tensor counted once, however many members read it
            kept = flows.setdefault((nu, nv), {})
            tensor = _tensor(graph, u, node_of)
            if tensor not in kept or d["bytes"] > kept[tensor]["bytes"]:
                kept[tensor] = d
    for (nu, nv), tensors in flows.items():
        datas = list(tensors.values())
        attrs = dict(datas[0]) if len(datas) == 1 else {"bytes": sum(d["bytes"] for d in datas)}
        costs = [d["cost"] for d in datas if "cost" in d]
        if costs and len(datas) > 1:
            attrs["cost"] = max(costs)
        out.add_edge(nu, nv, **attrs)
    return validate_graph(out)


def _copy(data: Mapping) -> dict:
    return {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}


def _tensor(graph: nx.DiGraph, u: str, node_of: Mapping[str, str]) -> str:
    """The op that made the tensor ``u`` outputs: views inside one kernel looked through."""
    while graph.nodes[u]["op"] == "view":
        preds = list(graph.predecessors(u))
        if len(preds) != 1 or node_of[preds[0]] != node_of[u]:
            break
        u = preds[0]
    return u


def kernel_attrs(graph: nx.DiGraph, members: list[str], pattern: str, kind: str) -> dict:
    """Attributes of the kernel running ``members`` (see :mod:`hetsim.graph.fusion`)."""
    nodes, inside = graph.nodes, set(members)
    fused = {"pattern": pattern, "members": list(members), "targets": [str(nodes[m]["target"]) for m in members]}
    if len(members) == 1:  # one op run by another kernel: its own attributes
        attrs = _copy(nodes[members[0]])
        attrs.update(op=kind, fused=fused)
        if pattern == "paged_attention":
            attrs["bytes_read"] += paged_extra_bytes(graph, members[0])
        return attrs
    real = [m for m in members if nodes[m]["op"] != "view"]
    weights: dict[str, float] = {}
    other = 0
    for m in members:
        for name, nbytes in nodes[m]["weights"].items():
            weights.setdefault(name, nbytes)
        edges = sum(d["bytes"] for _, _, d in graph.in_edges(m, data=True))
        other += max(0, nodes[m]["bytes_read"] - edges - nodes[m]["weight_bytes"])  # reads on no edge
    producers = {p for m in members for p in graph.predecessors(m) if p not in inside and not _weight_view(graph, p)}
    escapes: dict[str, bool] = {}  # the output is read outside the kernel (through views) or by no op
    for m in reversed(members):
        succ = list(graph.successors(m))
        escapes[m] = not succ or any(s not in inside or (nodes[s]["op"] == "view" and escapes[s]) for s in succ)
    written = [m for m in real if escapes[m] or nodes[m].get("inplace_bytes", 0) > 0]
    inplace = sum(nodes[m].get("inplace_bytes", 0) for m in real)
    dtypes = Counter(nodes[m]["dtype"] for m in real if nodes[m]["dtype"] is not None)
    targets = {nodes[m]["target"] for m in real}
    named = [m for m in real if nodes[m]["module"]] or members
    attrs = {
        "op": kind, "target": targets.pop() if kind != "fused" and len(targets) == 1 else "",
        "flop": sum(nodes[m]["flop"] for m in members),
        "bytes_read": sum(_read(graph, p, inside) for p in producers) + sum(weights.values()) + other,
        "bytes_written": sum(nodes[m]["bytes_written"] for m in written),
        "weights": weights, "weight_bytes": sum(weights.values()),
        "dtype": dtypes.most_common(1)[0][0] if dtypes else None,
        "shape": _shape(graph, real, [m for m in real if escapes[m]] or real, kind),
        "module": common_prefix(nodes[m]["module"] for m in named),
        "fused": fused,
    }
    if inplace:
        attrs["inplace_bytes"] = inplace
    if nodes[members[0]].get("pin") is not None:
        attrs["pin"] = nodes[members[0]]["pin"]
    return attrs


def _read(graph: nx.DiGraph, x: str, inside: set[str]) -> float:
    """Bytes of ``x``'s output that the kernel ``inside`` reads.

    Members reading ``x`` directly read the tensor (the largest edge); absorbed views pass on
    what their own readers read (a slice: its rows; both halves of a chunk: all of it), never
    more than flows into them.
    """
    direct, through, whole = 0, 0, 0
    for _, s, d in graph.out_edges(x, data=True):
        if s not in inside:
            continue
        whole = max(whole, d["bytes"])
        if graph.nodes[s]["op"] == "view":
            through += min(d["bytes"], _read(graph, s, inside))
        else:
            direct = max(direct, d["bytes"])
    return direct + through if x in inside else min(whole, direct + through)


def _weight_view(graph: nx.DiGraph, p: str) -> bool:
    """A view chain over a weight alone: its bytes are counted in the reader's ``weights``."""
    while graph.nodes[p]["op"] == "view":
        preds = list(graph.predecessors(p))
        if not preds:
            return True
        p = preds[0]
    return False


def _shape(graph: nx.DiGraph, real: list[str], outputs: list[str], kind: str) -> tuple[int, ...]:
    """The largest output's shape; a fused projection's concatenated output (last dimensions summed)."""
    shapes = [tuple(graph.nodes[m]["shape"]) for m in outputs]
    if kind == "matmul" and len(real) > 1 and all(shapes):
        return (*shapes[0][:-1], sum(s[-1] for s in shapes))
    return max(reversed(shapes), key=math.prod)


def paged_extra_bytes(graph: nx.DiGraph, n: str, block_tokens: int = PAGED_BLOCK_TOKENS) -> float:
    """Bytes paged attention op ``n`` reads beyond the captured op: KV padding to whole blocks, block table.

    The KV read is what the op reads besides its query-length inputs (q, a mask); the KV length
    is the key inputs' second-to-last dimension, else the graph's ``seq_len`` plus the new
    tokens (a cache read as a graph input only). Each of the ``batch`` sequences holds
    ``ceil(length / block_tokens)`` blocks, read whole, and one int32 block-table entry per block.

    Examples
    --------
    One sequence, 20 keys of 64 bytes each (K and V): 2 blocks of 16, so 12 padding rows and
    2 table entries.

    >>> from hetsim.graph.schema import add_op, new_graph
    >>> g = new_graph("decode", phase="decode", seq_len=19)
    >>> add_op(g, "q", op="elementwise", shape=(1, 1, 1, 8), bytes_written=32)
    >>> add_op(g, "kv", op="copy", shape=(1, 1, 20, 8), bytes_written=0)
    >>> add_op(g, "att", op="attention", shape=(1, 1, 1, 8), bytes_read=32 + 1280)
    >>> g.add_edge("q", "att", bytes=32); g.add_edge("kv", "att", bytes=0)
    >>> paged_extra_bytes(g, "att") == 1280 * 12 / 20 + 2 * 4
    True
    """
    data = graph.nodes[n]
    shape = data["shape"]
    lq = shape[-2] if len(shape) >= 2 else 1
    keys, others = [], 0.0
    for p, _, d in graph.in_edges(n, data=True):
        ps = graph.nodes[p]["shape"]
        if len(ps) >= 3 and ps[-2] != lq:
            keys.append(ps[-2])
        else:
            others += d["bytes"]
    length = max(keys) if keys else int(graph.graph.get("seq_len") or 0) + lq
    if length <= 0:
        return 0.0
    kv_bytes = max(0.0, data["bytes_read"] - others)
    blocks = math.ceil(length / block_tokens)
    batch = shape[0] if len(shape) >= 1 else 1
    return kv_bytes * (blocks * block_tokens - length) / length + batch * blocks * BLOCK_TABLE_ENTRY_BYTES


def common_prefix(modules: Iterable[str]) -> str:
    """The longest dotted prefix shared by the non-empty module paths.

    Examples
    --------
    >>> common_prefix(["layers.0.mlp.up_proj", "layers.0.mlp", "", "layers.0.mlp.gate_proj"])
    'layers.0.mlp'
    """
    paths = [m.split(".") for m in modules if m]
    if not paths:
        return ""
    prefix = paths[0]
    for p in paths[1:]:
        n = 0
        while n < min(len(prefix), len(p)) and prefix[n] == p[n]:
            n += 1
        prefix = prefix[:n]
    return ".".join(prefix)
