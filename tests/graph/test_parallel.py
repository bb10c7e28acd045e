"""Tensor parallelism on OpGraphs: shards by hand, the collectives it inserts, totals preserved."""

from __future__ import annotations

import pytest

from hetsim.errors import GraphError
from hetsim.graph.catalog import model_graph
from hetsim.graph.parallel import TPRules, tensor_parallel
from hetsim.graph.schema import add_op, new_graph

UNITS = ["g0", "g1", "g2", "g3"]


def block():
    """norm -> q (split) -> attn (split) -> o_proj (row parallel) -> add (replicated)."""
    g = new_graph("block")
    add_op(g, "norm", op="norm", flop=40, bytes_read=400, bytes_written=400, module="layers.0.input_layernorm",
           weights={"norm.w": 40})
    add_op(g, "q", op="matmul", flop=8000, bytes_read=2400, bytes_written=400, module="layers.0.self_attn.q_proj",
           weights={"q.w": 2000})
    add_op(g, "attn", op="attention", flop=1600, bytes_read=1200, bytes_written=400, module="layers.0.self_attn",
           weights={"kv": 800})
    add_op(g, "o", op="matmul", flop=8000, bytes_read=2400, bytes_written=400, module="layers.0.self_attn.o_proj",
           weights={"o.w": 2000})
    add_op(g, "add", op="elementwise", flop=100, bytes_read=800, bytes_written=400, module="layers.0")
    for a, b in (("norm", "q"), ("q", "attn"), ("attn", "o"), ("o", "add"), ("norm", "add")):
        g.add_edge(a, b, bytes=400)
    return g


def test_a_block_is_split_by_hand():
    tp = tensor_parallel(block(), UNITS)
    q, attn, o, add = (tp.nodes[f"{op}@g2"] for op in ("q", "attn", "o", "add"))
    assert q["pin"] == "g2" and q["flop"] == 2000 and q["weights"] == {"q.w": 500}
    assert q["bytes_read"] == 400 + 500  # the whole normed input, a quarter of the weight
    assert q["bytes_written"] == 100 and tp.edges["q@g2", "attn@g2"]["bytes"] == 100
    assert attn["weights"] == {"kv": 200} and attn["bytes_read"] == 100 + 0 + 200  # q shard, other inputs, KV
    assert o["bytes_written"] == 400  # partial sums of the full output
    assert add == block().nodes["add"] | {"pin": "g2"}  # replicated as is
    # o -> all-reduce -> add on every rank; the residual edge stays local
    assert sorted(tp.predecessors("add@g2")) == ["all_reduce:o@g2", "norm@g2"]
    member = tp.nodes["all_reduce:o@g2"]
    assert (member["collective"], member["comm_bytes"], member["ranks"]) == ("all_reduce", 400, tuple(UNITS))


def test_totals_are_preserved_and_replicas_repeat():
    g, tp = block(), tensor_parallel(block(), UNITS)
    split = ("q", "attn", "o")
    assert sum(tp.nodes[f"{op}@{u}"]["flop"] for op in split for u in UNITS) == sum(g.nodes[op]["flop"] for op in split)
    assert sum(tp.nodes[f"norm@{u}"]["weight_bytes"] for u in UNITS) == 4 * 40
    assert tp.number_of_nodes() == 4 * 5 + 4  # five ops per rank and one all-reduce member per rank


def test_a_split_tensor_read_by_a_replicated_op_is_gathered():
    g = block()
    g.add_edge("q", "add", bytes=400)  # a shard leaking out of the block
    tp = tensor_parallel(g, UNITS)
    assert "all_gather:q@g0" in tp.predecessors("add@g0")
    assert tp.nodes["all_gather:q@g0"]["bytes_read"] == 100 and tp.edges["all_gather:q@g0", "add@g0"]["bytes"] == 400


def test_one_unit_is_a_pinned_copy_and_bad_input_is_one_line():
    tp = tensor_parallel(block(), ["g0"])
    assert {d["pin"] for _, d in tp.nodes(data=True)} == {"g0"} and tp.number_of_nodes() == 5
    with pytest.raises(GraphError, match=r"^tensor_parallel.units: got \['g0', 'g0'\] for op 'norm', expected"):
        tensor_parallel(block(), ["g0", "g0"])
    with pytest.raises(GraphError, match=r"^tensor_parallel: graph 'block' has no op the rules split"):
        tensor_parallel(block(), ["g0", "g1"], TPRules(split="nothing", row_parallel="nothing",
                                                       vocab_parallel="nothing", column_head="nothing"))


@pytest.mark.parametrize("model", ["llama-tiny", "gpt2-tiny", "bert-tiny"])
def test_catalogue_models_split_with_one_all_reduce_per_block(model):
    g = model_graph(model, phase="prefill", batch=1, seq_len=16)
    tp = tensor_parallel(g, ["g0", "g1"])
    groups = {d["group"] for _, d in tp.nodes(data=True) if d["op"] == "collective"}
    reduces = {x for x in groups if x.startswith("all_reduce:")}
    layers = {d["module"].split(".")[1] for _, d in g.nodes(data=True)
              if d["module"].startswith(("layers.", "h.")) and d["module"].count(".") >= 1}
    # attention + MLP per layer, plus the vocabulary-parallel embedding
    assert len(reduces) == 2 * len(layers) + 1, sorted(reduces)
    total = sum(d["flop"] for _, d in g.nodes(data=True))
    assert sum(d["flop"] for _, d in tp.nodes(data=True)) >= total  # replicas add, splits do not lose
