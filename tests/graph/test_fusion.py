"""Kernel fusion (hetsim.graph.fusion): hand-checked kernels, and the patterns of captured models."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from collections import Counter
from pathlib import Path

import networkx as nx
import pytest

from hetsim.errors import GraphError
from hetsim.graph.catalog import model_graph
from hetsim.graph.fusion import MATRIX_KINDS, PATTERNS, _Groups, fuse
from hetsim.graph.fusion_kernels import BLOCK_TABLE_ENTRY_BYTES, PAGED_BLOCK_TOKENS
from hetsim.graph.io import graph_from_dict, graph_to_dict
from hetsim.graph.parallel import tensor_parallel
from hetsim.graph.schema import add_op, new_graph, validate_graph

F32 = 4


def _pointwise(g: nx.DiGraph, name: str, shape=(4, 8), **attrs) -> None:
    nbytes = F32 * shape[0] * shape[1]
    attrs = {"bytes_read": nbytes, "bytes_written": nbytes, "flop": shape[0] * shape[1], **attrs}
    add_op(g, name, op="elementwise", target=f"aten.{name.rstrip('0123456789')}.Tensor", dtype="fp32", shape=shape,
           **attrs)


def _matmul(g: nx.DiGraph, name: str, shape=(4, 8)) -> None:
    add_op(g, name, op="matmul", target="aten.mm.default", flop=2 * 4 * 8 * 8, bytes_read=128 + 256,
           bytes_written=128, weights={f"{name}.w": 256}, dtype="fp32", shape=shape)


def _kernels(g: nx.DiGraph) -> list[str]:
    return [n for n, d in g.nodes(data=True) if d["op"] != "view"]


def _bytes(g: nx.DiGraph) -> float:
    return sum(d["bytes_read"] + d["bytes_written"] for _, d in g.nodes(data=True))


# ---- hand-checked graphs ----

def test_chain_of_three_pointwise_ops_is_one_kernel_reading_and_writing_once():
    g = new_graph("chain", dtype="fp32")
    _pointwise(g, "mul", weights={"x": 128})  # x: a [4, 8] fp32 graph input, 128 bytes
    _pointwise(g, "add")
    _pointwise(g, "exp")
    g.add_edge("mul", "add", bytes=128)
    g.add_edge("add", "exp", bytes=128)
    k = fuse(g, "compiled")
    assert list(k) == ["fused.mul"]
    d = k.nodes["fused.mul"]
    assert (d["op"], d["bytes_read"], d["bytes_written"], d["flop"]) == ("fused", 128, 128, 96)
    assert d["fused"] == {"pattern": "pointwise", "members": ["mul", "add", "exp"],
                          "targets": ["aten.mul.Tensor", "aten.add.Tensor", "aten.exp.Tensor"], "mode": "compiled"}
    assert d["weights"] == {"x": 128} and d["shape"] == (4, 8) and d["dtype"] == "fp32"
    assert _bytes(g) == 768 and _bytes(k) == 256


def test_kernel_between_gemms_reads_a_tensor_read_twice_once():
    g = new_graph("between")
    _matmul(g, "mm")
    _pointwise(g, "mul")
    _pointwise(g, "add")  # the residual: reads mm's output again
    _matmul(g, "mm2")
    g.add_edge("mm", "mul", bytes=128)
    g.add_edge("mm", "add", bytes=128)
    g.add_edge("mul", "add", bytes=128)
    g.add_edge("add", "mm2", bytes=128)
    k = fuse(g, "compiled")
    assert list(k) == ["mm", "fused.mul", "mm2"]
    assert k.nodes["fused.mul"]["bytes_read"] == 128 and k.nodes["fused.mul"]["bytes_written"] == 128
    assert dict(k.edges[("mm", "fused.mul")]) == {"bytes": 128}
    assert dict(k.edges[("fused.mul", "mm2")]) == {"bytes": 128}


def test_gemm_is_never_in_a_pointwise_kernel():
    g = new_graph("sandwich")
    _pointwise(g, "neg")
    _matmul(g, "mm")
    _pointwise(g, "relu")
    g.add_edge("neg", "mm", bytes=128)
    g.add_edge("mm", "relu", bytes=128)
    for mode in ("compiled", "serving"):
        assert sorted(fuse(g, mode)) == ["mm", "neg", "relu"]


def test_a_diamond_through_a_gemm_is_not_fused_into_a_cycle():
    g = new_graph("diamond")
    _pointwise(g, "mul")
    _matmul(g, "mm")
    _pointwise(g, "add")
    g.add_edge("mul", "mm", bytes=128)
    g.add_edge("mm", "add", bytes=128)
    g.add_edge("mul", "add", bytes=128)  # fusing mul with add would put mm both before and after the kernel
    k = fuse(g, "compiled")
    assert sorted(k) == ["add", "mm", "mul"]
    g.remove_edge("mul", "mm")  # no path through mm any more: now they fuse
    _pointwise(g, "neg_src")
    g.add_edge("neg_src", "mm", bytes=128)
    assert "fused.mul" in fuse(g, "compiled")


def test_views_inside_a_kernel_are_absorbed_and_a_slice_reads_only_its_rows():
    g = new_graph("views")
    _matmul(g, "mm", shape=(4, 8))
    add_op(g, "slice", op="view", target="aten.slice.Tensor", shape=(2, 8))
    _pointwise(g, "neg", shape=(2, 8))
    _pointwise(g, "exp", shape=(2, 8))
    g.add_edge("mm", "slice", bytes=128)
    g.add_edge("slice", "neg", bytes=64)
    g.add_edge("neg", "exp", bytes=64)
    k = fuse(g, "compiled")
    assert list(k) == ["mm", "fused.neg"]
    d = k.nodes["fused.neg"]
    assert d["fused"]["members"] == ["slice", "neg", "exp"]
    assert d["bytes_read"] == 64 and d["bytes_written"] == 64  # the slice's 2 rows, not all 4


def test_ops_on_different_units_collectives_and_explicit_costs_never_fuse():
    g = new_graph("pinned")
    _pointwise(g, "a", pin="gpu0")
    _pointwise(g, "b", pin="gpu1")
    _pointwise(g, "c", cost={"gpu0": 1e-6})
    _pointwise(g, "d")
    g.add_edge("a", "b", bytes=128)
    g.add_edge("b", "c", bytes=128)
    g.add_edge("c", "d", bytes=128)
    assert sorted(fuse(g, "compiled")) == ["a", "b", "c", "d"]


def test_in_place_writes_are_kept_and_serving_writes_the_cache_in_its_own_kernel():
    g = new_graph("cache", phase="decode", seq_len=20)
    _pointwise(g, "add", shape=(1, 1, 1, 16), bytes_read=64, bytes_written=64)
    add_op(g, "index_copy_", op="copy", target="aten.index_copy_.default", bytes_read=64, bytes_written=64,
           inplace_bytes=64, shape=(1, 1, 21, 16))
    add_op(g, "sdpa", op="attention", target="aten.scaled_dot_product_attention.default", flop=4 * 21 * 16,
           bytes_read=64 + 2 * 21 * 64, bytes_written=64, weights={"k": 1344, "v": 1344}, dtype="fp32",
           shape=(1, 1, 1, 16))
    g.add_edge("add", "index_copy_", bytes=64)  # the new token's k, rotated, written into the cache
    g.add_edge("index_copy_", "sdpa", bytes=0)
    compiled = fuse(g, "compiled").nodes["fused.add"]
    # the rotated k reaches memory only as the cache write: 64 bytes, in place
    assert compiled["fused"]["members"] == ["add", "index_copy_"]
    assert compiled["inplace_bytes"] == 64 and compiled["bytes_written"] == 64 and compiled["bytes_read"] == 64
    serving = fuse(g, "serving")
    assert serving.nodes["index_copy_"]["fused"]["pattern"] == "kv_cache_write"
    assert serving.nodes["index_copy_"]["op"] == "copy" and serving.nodes["index_copy_"]["inplace_bytes"] == 64


def test_eager_is_an_unchanged_copy_and_the_input_is_never_modified():
    g = model_graph("llama-tiny", phase="decode", batch=2, seq_len=20, dtype="bf16")
    before = graph_to_dict(g)
    eager = fuse(g, "eager")
    assert eager is not g and graph_to_dict(eager) == before
    fuse(g, "compiled")
    fuse(g, "serving")
    assert graph_to_dict(g) == before


def test_unknown_mode_is_one_line_error():
    g = new_graph("x")
    _pointwise(g, "a")
    with pytest.raises(GraphError, match=r"^fuse\.mode: got 'jit', expected one of eager, compiled, serving$"):
        fuse(g, "jit")


def test_schema_checks_the_fused_record():
    g = new_graph("bad")
    add_op(g, "k", op="fused")
    with pytest.raises(GraphError, match=r"op 'k'\.fused: got None, expected"):
        validate_graph(g)
    g.nodes["k"]["fused"] = {"pattern": "pointwise", "members": ["a", "b"], "targets": ["aten.add.Tensor"]}
    with pytest.raises(GraphError, match="one target per member"):
        validate_graph(g)
    g.nodes["k"]["fused"]["targets"].append("aten.mul.Tensor")
    assert validate_graph(g) is g


def test_groups_never_merge_into_a_cycle_and_refuse_only_cycles():
    """Random DAGs and random merges, checked against the quotient graph built from scratch."""
    rng = random.Random(7)
    for trial in range(40):
        n = 14
        g = nx.DiGraph((i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.2)
        g.add_nodes_from(range(n))
        order = list(nx.topological_sort(g))
        groups = _Groups(g, order)
        for _ in range(25):
            a, b = rng.sample(range(n), 2)
            blocks = {groups.find(x): set() for x in g}
            for x in g:
                blocks[groups.find(x)].add(x)
            merged = [blk for root, blk in blocks.items() if root not in (groups.find(a), groups.find(b))]
            merged.append(blocks[groups.find(a)] | blocks[groups.find(b)])
            acyclic = nx.is_directed_acyclic_graph(nx.quotient_graph(g, merged))
            assert groups.merge(a, b) == acyclic, (trial, a, b)
        members = [set(ms) for ms in groups.members.values()]
        assert nx.is_directed_acyclic_graph(nx.quotient_graph(g, members))


def test_random_graphs_fuse_into_valid_graphs_with_the_same_flops():
    rng = random.Random(3)
    for trial in range(30):
        g = new_graph(f"random-{trial}")
        n = 25
        for i in range(n):
            if rng.random() < 0.2:
                _matmul(g, f"mm{i}")
            else:
                _pointwise(g, f"op{i}", shape=rng.choice([(4, 8), (2, 8)]))
        names = list(g)
        for i in range(n):
            for j in range(i + 1, min(n, i + 5)):
                if rng.random() < 0.35:
                    g.add_edge(names[i], names[j], bytes=64)
        for mode in ("compiled", "serving"):
            k = fuse(g, mode)
            assert sum(d["flop"] for _, d in k.nodes(data=True)) == sum(d["flop"] for _, d in g.nodes(data=True))
            covered = Counter(m for _, d in k.nodes(data=True) for m in d.get("fused", {}).get("members", ()))
            covered.update(n for n, d in k.nodes(data=True) if "fused" not in d)
            assert covered == Counter(g)


# ---- captured models ----

@pytest.fixture(scope="module")
def llama8b():
    return {phase: model_graph("llama-3-8b", phase=phase, batch=1, seq_len=16) for phase in ("prefill", "decode")}


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_llama_3_8b_serving_kernels_per_layer(llama8b, phase):
    g = llama8b[phase]
    kernels = {mode: fuse(g, mode) for mode in ("eager", "compiled", "serving")}
    counts = {mode: len(_kernels(k)) for mode, k in kernels.items()}
    assert counts["serving"] < counts["compiled"] < counts["eager"]
    serving = kernels["serving"]
    attention = "paged_attention" if phase == "decode" else "flash_attention"
    per_layer = Counter((d["fused"]["pattern"], d["module"].split(".")[1]) for _, d in serving.nodes(data=True)
                        if "fused" in d and d["module"].startswith("layers."))
    for layer in range(32):
        for pattern in ("qkv_proj", "gate_up_proj", "rope", "silu_mul", attention):
            assert per_layer[(pattern, str(layer))] == 1, (pattern, layer)
    assert (per_layer[("kv_cache_write", "0")] == 1) == (phase == "decode")
    patterns = {d["fused"]["pattern"] for _, d in serving.nodes(data=True) if "fused" in d}
    assert patterns <= set(PATTERNS)
    for mode, k in kernels.items():
        assert sum(d["flop"] for _, d in k.nodes(data=True)) == sum(d["flop"] for _, d in g.nodes(data=True)), mode
        assert validate_graph(k) is k
    assert _bytes(kernels["compiled"]) <= _bytes(kernels["eager"])


@pytest.mark.parametrize("name", ["llama-tiny", "gpt2-tiny", "bert-tiny", "mixtral-tiny"])
def test_compiled_moves_no_more_bytes_than_eager_and_never_fuses_matrix_ops(name):
    g = model_graph(name, phase="prefill", batch=2, seq_len=8)
    eager, compiled, serving = (fuse(g, mode) for mode in ("eager", "compiled", "serving"))
    assert _bytes(compiled) <= _bytes(eager)
    assert len(_kernels(serving)) <= len(_kernels(compiled)) < len(_kernels(eager))
    for k in (compiled, serving):
        for _, d in k.nodes(data=True):
            kinds = {g.nodes[m]["op"] for m in d.get("fused", {}).get("members", ())} - {"view"}
            if d["op"] == "fused":
                assert not kinds & MATRIX_KINDS
            elif kinds:
                assert kinds == {d["op"]}  # a serving matmul / attention / copy holds ops of its own kind


def test_fusion_is_deterministic():
    g = model_graph("llama-tiny", phase="decode", batch=2, seq_len=20)
    for mode in ("compiled", "serving"):
        a, b = fuse(g, mode), fuse(g, mode)
        assert graph_to_dict(a) == graph_to_dict(b)
        assert graph_to_dict(graph_from_dict(json.loads(json.dumps(graph_to_dict(a))))) == graph_to_dict(a)
        assert all(n.startswith("fused.") or n in g for n in a)


def test_paged_attention_reads_whole_blocks_of_16_tokens():
    # llama-tiny: 2 KV heads of 16 dims, bf16; batch 2, 20 cached tokens + the new one = 21
    g = model_graph("llama-tiny", phase="decode", batch=2, seq_len=20, dtype="bf16")
    serving = fuse(g, "serving")
    attention = [n for n, d in serving.nodes(data=True) if d.get("fused", {}).get("pattern") == "paged_attention"]
    assert len(attention) == 2
    kv = 2 * 2 * 2 * 21 * 16 * 2  # K and V x batch x heads x tokens x dims x bytes
    blocks = -(-21 // PAGED_BLOCK_TOKENS)
    extra = kv * (blocks * PAGED_BLOCK_TOKENS - 21) / 21 + 2 * blocks * BLOCK_TABLE_ENTRY_BYTES
    for n in attention:
        assert serving.nodes[n]["bytes_read"] == pytest.approx(g.nodes[n]["bytes_read"] + extra)
    prefill = fuse(model_graph("llama-tiny", phase="prefill", batch=2, seq_len=20), "serving")
    flash = [d for _, d in prefill.nodes(data=True) if d.get("fused", {}).get("pattern") == "flash_attention"]
    assert len(flash) == 2 and all(d["op"] == "attention" for d in flash)


@pytest.mark.parametrize("mode", ["compiled", "serving"])
def test_tensor_parallel_graph_fuses_without_crossing_ranks(mode):
    g = model_graph("llama-tiny", phase="decode", batch=2, seq_len=20)
    tp = tensor_parallel(g, ["gpu0", "gpu1"])
    k = fuse(tp, mode)
    fused = [d for _, d in k.nodes(data=True) if "fused" in d]
    assert fused
    for d in fused:
        assert {tp.nodes[m].get("pin") for m in d["fused"]["members"]} == {d["pin"]}
        assert all(tp.nodes[m]["op"] != "collective" for m in d["fused"]["members"])
    collectives = lambda x: sorted(n for n, d in x.nodes(data=True) if d["op"] == "collective")  # noqa: E731
    assert collectives(k) == collectives(tp)
    per_rank = Counter((d["fused"]["pattern"], d["pin"]) for d in fused)
    assert all(per_rank[(p, "gpu0")] == per_rank[(p, "gpu1")] for p, _ in per_rank)


def test_trace_shows_a_fused_kernel_as_one_slice_listing_its_members():
    import hetsim
    from hetsim.report.chrome import check_chrome_trace, chrome_trace

    k = fuse(model_graph("llama-tiny", phase="decode", batch=1, seq_len=8), "serving")
    platform = hetsim.load_platform("h100-sxm")
    obj = chrome_trace(hetsim.simulate(k, platform).trace, platform, k)
    check_chrome_trace(obj)
    slices = {e["name"]: e for e in obj["traceEvents"] if e["ph"] == "X" and e.get("cat") != "launch"}
    for node, d in k.nodes(data=True):
        if "fused" in d and node in slices:
            args = slices[node]["args"]
            assert (args["pattern"], args["members"], args["targets"]) == (
                d["fused"]["pattern"], d["fused"]["members"], d["fused"]["targets"])
    assert any("members" in s["args"] for s in slices.values())


# ---- Inductor cross-check ----

@pytest.mark.slow
def test_compiled_groups_agree_with_inductor_on_simple_modules():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "fusion_vs_inductor.py"
    spec = importlib.util.spec_from_file_location("fusion_vs_inductor", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclass resolves annotations through the module
    try:
        spec.loader.exec_module(bench)
        rows = bench.run(["rope", "swiglu-mlp", "gelu-mlp", "llama-block", "gpt2-block"])
    finally:
        del sys.modules[spec.name]
    assert len(rows) == 5
    for row in rows:
        assert row.matched == row.ours == row.inductor, row
        assert row.ours_library == row.inductor_library, row
