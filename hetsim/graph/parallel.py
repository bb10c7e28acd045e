"""Parallelism transforms on OpGraphs: tensor parallelism, Megatron style.

:func:`tensor_parallel` turns a one-device graph into one copy per rank, each op pinned to its
rank's unit, after Shoeybi et al., "Megatron-LM: training multi-billion parameter language models
using model parallelism", arXiv:1909.08053, 2019, §3:

* attention and MLP ops are **split**: each rank runs 1/p of the heads and of the FFN width, so
  their FLOPs, weights (KV cache included) and outputs are divided by p; an op reading a whole
  replicated tensor (the first projection after a norm) still reads all of it;
* the **row-parallel** projections that close a block (``o_proj``, ``down_proj``, GPT-2's
  ``c_proj``, BERT's ``output.dense``) produce partial sums of the full output: an all-reduce
  follows them; the vocabulary-parallel **embedding** (1/p of the table per rank) too;
* the **LM head** is column-parallel: each rank keeps 1/p of the logits;
* everything else (norms, residual adds, rotary tables) is **replicated** on every rank;
* a split tensor read by a replicated op other than through those all-reduces is all-gathered
  first, so the transform is correct for any graph the rules partly recognise.

Which modules are which is a :class:`TPRules` of regular expressions over the ``module``
attribute; the defaults cover the catalogue's Llama, Mistral, GPT-2 and BERT. Head counts are
assumed divisible by p (a KV head shared by several ranks is not modelled).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import networkx as nx

from hetsim.errors import GraphError
from hetsim.graph.schema import add_op, new_graph, validate_graph

SPLIT, REDUCE, REPLICATED = "split", "reduce", "replicated"


@dataclass(frozen=True)
class TPRules:
    """Regular expressions over an op's ``module`` naming how tensor parallelism treats it.

    In a training graph (:mod:`hetsim.graph.training`) the backward of a row-parallel projection
    is split, and the backward of the column-parallel projection that opens a block
    (``column_reduce``: one per block, as Megatron fuses QKV and the first FFN matmul) is
    followed by the all-reduce of its input gradient — Megatron's conjugate ``f``/``g`` operators.
    The other column-parallel input gradients (K, V, the gate) are summed into that all-reduce
    locally, without a collective of their own.
    """

    split: str = r"(^|\.)(self_attn|attn|attention|mlp|intermediate|feed_forward)(\.|$)"
    row_parallel: str = r"(^|\.)(o_proj|down_proj|c_proj|out_proj|wo|w2|attention_output\.dense|output\.dense)$"
    column_reduce: str = r"(^|\.)(q_proj|up_proj|c_attn|c_fc|query|intermediate|wq|w1)$"
    vocab_parallel: str = r"^(embed_tokens|wte|tok_embeddings|embeddings\.word_embeddings)(\.|$)"
    column_head: str = r"^(lm_head|output)(\.|$)"

    experts: str = r"(^|\.)experts\."

    def role(self, data: dict) -> str:
        """``split``, ``reduce`` (split, then an all-reduce of its output) or ``replicated``.

        Mixture-of-experts experts are not split (spread them with expert parallelism instead).
        """
        module, kind = data.get("module", ""), data["op"]
        if re.search(self.experts, module):
            return REPLICATED
        backward = str(data.get("target", "")).startswith("backward:")
        if kind == "matmul" and re.search(self.row_parallel, module):
            return SPLIT if backward else REDUCE
        if backward and kind == "matmul" and re.search(self.column_reduce, module):
            return REDUCE
        if re.search(self.vocab_parallel, module):
            return REDUCE if kind == "embedding" and not backward else SPLIT
        if re.search(self.split, module) or re.search(self.column_head, module):
            return SPLIT
        return REPLICATED


def tensor_parallel(graph: nx.DiGraph, units: Sequence[str] | Mapping[str, Sequence[str]],
                    rules: TPRules | None = None) -> nx.DiGraph:
    """One copy of ``graph`` per rank, split Megatron style, with its collectives.

    ``units`` lists the ranks' units, or maps every op to its own list (pipeline stages put each
    stage on other units; rank i of one stage talks to rank i of the next). Op ``x`` becomes
    ``x@unit`` on each unit, pinned there; the all-reduce after ``x`` is the collective
    ``all_reduce:x`` with members ``all_reduce:x@unit``. Node order follows the graph's.

    Examples
    --------
    >>> g = new_graph("block")
    >>> add_op(g, "norm", op="norm", flop=10, bytes_read=80, bytes_written=80, module="layers.0.norm")
    >>> add_op(g, "up", op="matmul", flop=800, bytes_read=880, bytes_written=80, module="layers.0.mlp.up_proj",
    ...        weights={"up.w": 800})
    >>> add_op(g, "down", op="matmul", flop=800, bytes_read=880, bytes_written=80,
    ...        module="layers.0.mlp.down_proj", weights={"down.w": 800})
    >>> g.add_edge("norm", "up", bytes=80); g.add_edge("up", "down", bytes=80)
    >>> tp = tensor_parallel(g, ["gpu0", "gpu1"])
    >>> sorted(tp.successors("down@gpu0")), tp.nodes["up@gpu1"]["weights"], tp.nodes["up@gpu1"]["bytes_read"]
    (['all_reduce:down@gpu0'], {'up.w': 400.0}, 480.0)
    """
    ranks = {op: list(units[op] if isinstance(units, Mapping) else units) for op in graph}
    sizes = {len(r) for r in ranks.values()}
    for op, rs in ranks.items():
        if not rs or len(set(rs)) != len(rs) or not all(isinstance(u, str) and u for u in rs) or len(sizes) > 1:
            raise GraphError(f"tensor_parallel.units: got {rs!r} for op {op!r}, expected distinct unit names, "
                             "as many for every op")
    rules = rules or TPRules()
    p = sizes.pop() if sizes else 1
    captured = next((op for op, d in graph.nodes(data=True)
                     if op.startswith("grad.") and not str(d.get("target", "")).startswith("backward:")), None)
    if p > 1 and captured is not None:
        raise GraphError(f"tensor_parallel: got a training step captured from autograd's joint graph (op "
                         f"{captured!r}), expected a forward graph or an estimated step (hetsim.graph.training): "
                         "the joint graph keeps no module names to split it by")
    role = {op: rules.role(data) for op, data in graph.nodes(data=True)}
    if p > 1 and all(r == REPLICATED for r in role.values()):
        raise GraphError(f"tensor_parallel: graph {graph.graph.get('name', '')!r} has no op the rules split "
                         "(expected attention/MLP modules such as layers.0.self_attn)")
    backward = {op for op, data in graph.nodes(data=True) if str(data.get("target", "")).startswith("backward:")}
    out = new_graph(graph.graph.get("name", ""))
    out.graph.update(graph.graph, tp=p)

    def edge_bytes(a: str, b: str, nbytes: float) -> float:
        """A tensor a split op hands to a split op is 1/p on each rank."""
        return nbytes / p if role[a] == SPLIT and role[b] != REPLICATED else nbytes

    # a forward shard read by a replicated op is gathered first; a backward one is a partial sum
    # folded into its block's all-reduce
    gathered = ({a for a, b in graph.edges if role[a] == SPLIT and role[b] == REPLICATED and a not in backward}
                if p > 1 else set())
    for op, data in graph.nodes(data=True):
        shard = _shard(graph, op, data, role, p, edge_bytes)
        for unit in ranks[op]:
            add_op(out, f"{op}@{unit}", **shard, pin=unit)
        if p > 1 and (role[op] == REDUCE or op in gathered):
            _add_collective(out, op, data, "all_reduce" if role[op] == REDUCE else "all_gather", ranks[op])
    for a, b, data in graph.edges(data=True):
        kind = "all_reduce" if role[a] == REDUCE else "all_gather" if a in gathered and role[b] == REPLICATED else None
        for src, dst in zip(ranks[a], ranks[b], strict=True):
            if p > 1 and kind is not None:
                out.add_edge(f"{kind}:{a}@{src}", f"{b}@{dst}", **dict(data))
            else:
                out.add_edge(f"{a}@{src}", f"{b}@{dst}", **dict(data, bytes=edge_bytes(a, b, data["bytes"])))
    return validate_graph(out)


def _add_collective(out: nx.DiGraph, op: str, data: dict, kind: str, units: list[str]) -> None:
    """The all-reduce (partial sums) or all-gather (shards) of ``op``'s output, one member per unit."""
    p, full = len(units), data["bytes_written"]
    mine = full if kind == "all_reduce" else full / p
    group = f"{kind}:{op}"
    for unit in units:
        add_op(out, f"{group}@{unit}", op="collective", collective=kind, group=group, ranks=tuple(units),
               comm_bytes=full, pin=unit, dtype=data.get("dtype"), shape=data.get("shape", ()),
               module=data.get("module", ""), bytes_read=mine, bytes_written=full)
        out.add_edge(f"{op}@{unit}", f"{group}@{unit}", bytes=mine)


def _shard(graph: nx.DiGraph, op: str, data: dict, role: dict, p: int, edge_bytes) -> dict:
    """One rank's copy of ``op``'s attributes."""
    attrs = {k: v for k, v in data.items() if k not in ("pin",)}
    if role[op] == REPLICATED or p == 1:
        return attrs
    weights = {name: nbytes / p for name, nbytes in data["weights"].items()}
    inputs = sum(d["bytes"] for _, _, d in graph.in_edges(op, data=True))
    inputs_here = sum(edge_bytes(a, op, d["bytes"]) for a, _, d in graph.in_edges(op, data=True))
    other = max(0.0, data["bytes_read"] - inputs - data["weight_bytes"])  # inputs not on an edge
    inplace = data.get("inplace_bytes", 0.0)  # into sharded persistent tensors: 1/p
    fresh = data["bytes_written"] - inplace  # a reduced output is partial sums of the whole tensor
    if "inplace_bytes" in data:
        attrs["inplace_bytes"] = inplace / p
    attrs.update(flop=data["flop"] / p, weights=weights, weight_bytes=data["weight_bytes"] / p,
                 bytes_read=inputs_here + other / p + data["weight_bytes"] / p,
                 bytes_written=(fresh if role[op] == REDUCE else fresh / p) + inplace / p)
    return attrs
