"""Mixtral (sparse MoE) in the catalogue and expert parallelism: parameters, the captured MoE
block, the EP transform by hand and on mixtral-tiny, and an end-to-end run with all-to-alls."""

from __future__ import annotations

import re

import pytest
import torch
from hetsim.models.mixtral import Mixtral, MixtralConfig, balanced_slices, empty_cache

import hetsim
from hetsim.errors import GraphError
from hetsim.graph.catalog import build_model, model_config, model_graph
from hetsim.graph.experts import EPRules, expert_parallel
from hetsim.graph.schema import add_op, new_graph

UNITS4 = [f"gpu{i}" for i in range(4)]
EXPERT = re.compile(r"\.experts\.(\d+)\.")


@pytest.fixture(scope="module")
def tiny_prefill():
    return model_graph("mixtral-tiny", phase="prefill", batch=4, seq_len=16)


# ---- the model and its catalogue entries ----

def test_mixtral_8x7b_builds_its_published_parameter_count_exactly() -> None:
    spec = model_config("mixtral-8x7b")
    model = build_model("mixtral-8x7b")  # meta: no memory
    assert sum(p.numel() for p in model.parameters()) == spec.params == 46_702_792_704
    assert abs(spec.params - 46.7e9) <= 0.001 * 46.7e9  # "46.7B total" (Jiang et al. 2024)
    c = spec.config
    assert (c["vocab_size"], c["d_model"], c["n_layers"], c["n_heads"], c["n_kv_heads"], c["ffn_dim"],
            c["n_experts"], c["top_k"], c["rope_theta"]) == (32000, 4096, 32, 32, 8, 14336, 8, 2, 1e6)
    assert "balanced" in spec.notes and spec.family == "mixtral"
    tiny = model_config("mixtral-tiny")
    assert tiny.test_only and tiny.params is None and tiny.config["n_experts"] == 8


def test_balanced_slices_cut_the_assignments_evenly() -> None:
    assert balanced_slices(16, 4) == [(0, 4), (4, 8), (8, 12), (12, 16)]
    sizes = [end - start for start, end in balanced_slices(10, 8)]
    assert sum(sizes) == 10 and max(sizes) - min(sizes) <= 1
    assert [end - start for start, end in balanced_slices(2, 8)] == [0, 0, 0, 1, 0, 0, 0, 1]  # one decode token


def small(**kwargs: object) -> Mixtral:
    torch.manual_seed(0)
    cfg = MixtralConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=48, n_experts=4,
                        top_k=2, **kwargs)
    return Mixtral(cfg).double().eval()


def test_routed_decode_with_cache_equals_full_prefill() -> None:
    model = small()
    ids = torch.randint(0, 50, (2, 9))
    full = model(ids)
    cache = empty_cache(model.config, 2, 8, dtype=torch.float64)
    logits, _ = model(ids[:, :8], past_key_values=cache, cache_position=0)  # prefill fills slots 0..7
    torch.testing.assert_close(logits, full[:, :8])
    step, _ = model(ids[:, 8:], past_key_values=cache)  # slot 8, in place
    torch.testing.assert_close(step, full[:, 8:])


def test_balanced_dispatch_equals_routing_to_the_balanced_experts() -> None:
    moe = small().layers[0].block_sparse_moe
    h = torch.randn(6, 32, dtype=torch.float64)
    top, _ = torch.topk(moe.gate(h), 2, dim=-1)
    weights = torch.softmax(top, dim=-1)
    chosen = torch.empty(6 * 2, dtype=torch.long)
    for e, (start, end) in enumerate(balanced_slices(12, 4)):
        chosen[start:end] = e
    torch.testing.assert_close(moe.balanced_experts(h, weights), moe.routed_experts(h, weights, chosen.view(6, 2)))
    # real routing differs from the balanced assumption, which only the forced flag uses in eager mode
    x = torch.randn(1, 6, 32, dtype=torch.float64)
    assert not torch.allclose(small().layers[0].block_sparse_moe(x), small(balanced_routing=True).layers[0]
                              .block_sparse_moe(x))


def test_captured_moe_block_shows_router_gating_experts_and_combine(tiny_prefill) -> None:
    g, c = tiny_prefill, model_config("mixtral-tiny").config
    tokens, k, n_exp = 4 * 16, c["top_k"], c["n_experts"]
    for layer in range(c["n_layers"]):
        moe = f"layers.{layer}.block_sparse_moe"
        ops = {n: d for n, d in g.nodes(data=True) if d["module"].startswith(moe)}
        gate = [d for d in ops.values() if d["module"] == f"{moe}.gate"]
        assert len(gate) == 1 and gate[0]["op"] == "matmul" and gate[0]["shape"] == (tokens, n_exp)
        targets = {d["target"] for d in ops.values()}
        assert {"aten.topk.default", "aten.softmax.int", "aten.cat.default"} <= targets
        for e in range(n_exp):
            for w, out in (("w1", c["ffn_dim"]), ("w3", c["ffn_dim"]), ("w2", c["d_model"])):
                [op] = [d for d in ops.values() if d["module"] == f"{moe}.experts.{e}.{w}"]
                name = f"{moe}.experts.{e}.{w}.weight"
                assert op["op"] == "matmul" and list(op["weights"]) == [name]
                assert op["shape"] == (tokens * k // n_exp, out)  # balanced routing
        # the combine: the experts' outputs concatenated, weighted by the gates and summed over top_k
        [cat] = [n for n, d in ops.items() if d["target"] == "aten.cat.default"]
        assert {EXPERT.search(g.nodes[p]["module"]).group(1) for p in g.predecessors(cat)} == {str(e) for e in
                                                                                                range(n_exp)}


# ---- expert parallelism by hand ----

def moe_graph():
    """embed -> norm -> 4 slices -> 4 experts (up, down) -> cat -> add; 2 of 4 token copies per expert."""
    g = new_graph("moe")
    add_op(g, "embed", op="embedding", bytes_read=464, bytes_written=400, module="embed_tokens",
           weights={"embed.weight": 1000, "input_ids": 64})
    add_op(g, "norm", op="norm", flop=40, bytes_read=440, bytes_written=400, module="layers.0.norm",
           weights={"norm.weight": 40})
    add_op(g, "cat", op="copy", bytes_read=800, bytes_written=800, module="layers.0.moe")
    add_op(g, "add", op="elementwise", flop=100, bytes_read=1200, bytes_written=400, module="layers.0")
    g.add_edge("embed", "norm", bytes=400)
    for e in range(4):
        add_op(g, f"slice{e}", op="view", module="layers.0.moe")
        add_op(g, f"up{e}", op="matmul", flop=1000, bytes_read=700, bytes_written=300, dtype="bf16",
               module=f"layers.0.moe.experts.{e}.w1", weights={f"layers.0.moe.experts.{e}.w1.weight": 500})
        add_op(g, f"down{e}", op="matmul", flop=1000, bytes_read=800, bytes_written=200, dtype="bf16",
               module=f"layers.0.moe.experts.{e}.w2", weights={f"layers.0.moe.experts.{e}.w2.weight": 500})
        g.add_edge("norm", f"slice{e}", bytes=200)
        g.add_edge(f"slice{e}", f"up{e}", bytes=200)
        g.add_edge(f"up{e}", f"down{e}", bytes=300)
        g.add_edge(f"down{e}", "cat", bytes=200)
    g.add_edge("cat", "add", bytes=800)
    g.add_edge("embed", "add", bytes=400)
    return g


def test_experts_land_on_their_units_and_the_rest_is_replicated_on_a_share_of_the_tokens() -> None:
    g = moe_graph()
    ep = expert_parallel(g, ["g0", "g1"])
    for e, unit in enumerate(["g0", "g0", "g1", "g1"]):
        other = "g1" if unit == "g0" else "g0"
        assert ep.nodes[f"up{e}@{unit}"] == g.nodes[f"up{e}"] | {"pin": unit}  # unchanged, pinned
        assert f"up{e}@{other}" not in ep and f"down{e}@{other}" not in ep
        assert ep.edges[f"up{e}@{unit}", f"down{e}@{unit}"]["bytes"] == 300
    norm = ep.nodes["norm@g1"]
    assert norm["pin"] == "g1" and norm["flop"] == 20 and norm["weights"] == {"norm.weight": 40}
    assert norm["bytes_read"] == 40 + 400 / 2 and norm["bytes_written"] == 200
    embed = ep.nodes["embed@g0"]  # gathers the rows of its own tokens; input ids split, table whole
    assert embed["weights"] == {"embed.weight": 1000, "input_ids": 32} and embed["bytes_read"] == 232
    assert ep.edges["cat@g0", "add@g0"]["bytes"] == 400 and ep.edges["embed@g1", "add@g1"]["bytes"] == 200
    assert ep.number_of_nodes() == 2 * 8 + 8 + 2 * 2  # replicas, experts, two all-to-alls of two members
    assert ep.graph["ep"] == 2 and ep.graph["name"] == "moe"
    assert sum(d["flop"] for _, d in ep.nodes(data=True)) == sum(d["flop"] for _, d in g.nodes(data=True))


def test_dispatch_and_combine_are_all_to_alls_around_the_experts() -> None:
    ep = expert_parallel(moe_graph(), ["g0", "g1"])
    for unit, mine in (("g0", (0, 1)), ("g1", (2, 3))):
        dispatch = f"all_to_all:dispatch:layers.0.moe@{unit}"
        member = ep.nodes[dispatch]
        assert (member["op"], member["collective"], member["group"], member["ranks"], member["pin"]) == (
            "collective", "all_to_all", "all_to_all:dispatch:layers.0.moe", ("g0", "g1"), unit)
        # each rank sends its half of the 4 × 200 bytes of token copies, receives as much
        assert member["comm_bytes"] == member["bytes_read"] == member["bytes_written"] == 400
        assert sorted(ep.predecessors(dispatch)) == [f"slice{e}@{unit}" for e in range(4)]
        assert all(ep.edges[f"slice{e}@{unit}", dispatch]["bytes"] == 100 for e in range(4))
        assert sorted(ep.successors(dispatch)) == [f"up{e}@{unit}" for e in mine]
        assert all(ep.edges[dispatch, f"up{e}@{unit}"]["bytes"] == 200 for e in mine)
        combine = f"all_to_all:combine:layers.0.moe@{unit}"
        assert ep.nodes[combine]["comm_bytes"] == 400 and ep.nodes[combine]["collective"] == "all_to_all"
        assert sorted(ep.predecessors(combine)) == [f"down{e}@{unit}" for e in mine]
        assert list(ep.successors(combine)) == [f"cat@{unit}"] and ep.edges[combine, f"cat@{unit}"]["bytes"] == 400
        assert sorted(ep.predecessors(f"cat@{unit}")) == [combine]


def test_one_unit_keeps_every_expert_and_bad_input_is_one_line() -> None:
    ep = expert_parallel(moe_graph(), ["g0"])
    assert {d["pin"] for _, d in ep.nodes(data=True)} == {"g0"}
    assert ep.nodes["norm@g0"] == moe_graph().nodes["norm"] | {"pin": "g0"}
    with pytest.raises(GraphError, match=r"^expert_parallel.units: got 3 units, expected a divisor of the 4 experts"):
        expert_parallel(moe_graph(), ["g0", "g1", "g2"])
    with pytest.raises(GraphError, match=r"^expert_parallel.units: got \['g0', 'g0'\], expected distinct"):
        expert_parallel(moe_graph(), ["g0", "g0"])
    with pytest.raises(GraphError, match=r"^expert_parallel: graph 'moe' has no expert op"):
        expert_parallel(moe_graph(), ["g0", "g1"], EPRules(expert=r"^(?P<layer>nothing)(?P<index>\d)"))
    with pytest.raises(GraphError, match=r"^expert_parallel.n_experts: got 2, expected more than the highest expert "
                                         r"index 3 of graph 'moe'$"):
        expert_parallel(moe_graph(), ["g0", "g1"], n_experts=2)
    # experts 0-3 of 8: units 0 and 1 of 4 hold them, the others only replicas
    ep = expert_parallel(moe_graph(), UNITS4, n_experts=8)
    assert {"up0@gpu0", "up1@gpu0", "up2@gpu1", "up3@gpu1"} <= set(ep)


# ---- on mixtral-tiny ----

def test_each_unit_holds_its_share_of_the_experts_and_every_other_weight(tiny_prefill) -> None:
    c = model_config("mixtral-tiny").config
    model = build_model("mixtral-tiny")
    params = {name: p.numel() * 2 for name, p in model.named_parameters()}  # bf16
    dense = {name: b for name, b in params.items() if ".experts." not in name}
    ep = expert_parallel(tiny_prefill, UNITS4)
    per_unit = c["n_experts"] // 4
    expert_bytes = 3 * c["d_model"] * c["ffn_dim"] * 2
    for rank, unit in enumerate(UNITS4):
        held: dict[str, float] = {}
        for _, d in ep.nodes(data=True):
            if d["pin"] == unit:
                held.update(d["weights"])
        experts = {name for name in held if ".experts." in name}
        assert {int(EXPERT.search(name).group(1)) for name in experts} == set(range(rank * per_unit,
                                                                                    (rank + 1) * per_unit))
        assert sum(held[n] for n in experts) == c["n_layers"] * per_unit * expert_bytes
        assert {n: b for n, b in held.items() if n in dense} == dense  # everything else, whole
        assert held["input_ids"] == 4 * 16 * 8 / 4  # a quarter of the token ids (int64)
    groups = {d["group"] for _, d in ep.nodes(data=True) if d["op"] == "collective"}
    assert groups == {f"all_to_all:{kind}:layers.{i}.block_sparse_moe" for kind in ("dispatch", "combine")
                      for i in range(c["n_layers"])}
    token_copies = 4 * 16 * c["top_k"] * c["d_model"] * 2  # bf16 rows sent to experts in one layer
    assert all(d["comm_bytes"] == token_copies / 4 for _, d in ep.nodes(data=True) if d["op"] == "collective")


def test_a_one_token_decode_runs_top_k_experts_per_layer() -> None:
    g = model_graph("mixtral-tiny", phase="decode", batch=1, seq_len=16)
    active = {EXPERT.search(d["module"] + ".").group(1) for _, d in g.nodes(data=True) if ".experts." in d["module"]}
    assert active == {"3", "7"}  # 2 assignments cut into 8 slices: the balanced assumption's limit
    ep = expert_parallel(g, UNITS4)  # the highest expert index names 8 experts
    assert {d["pin"] for n, d in ep.nodes(data=True) if ".experts." in d["module"]} == {"gpu1", "gpu3"}


def test_expert_parallel_mixtral_tiny_runs_with_all_to_all_transfers(tiny_prefill) -> None:
    ep = expert_parallel(tiny_prefill, UNITS4)
    r = hetsim.simulate(ep, "dgx-h100")
    assert r.makespan_s > 0
    a2a = [t for t in r.trace.transfers if t.src_op.startswith("all_to_all:")]
    # 2 layers × (dispatch, combine) × 3 pairwise-exchange steps × 4 messages, each 1/4 of the buffer
    assert len(a2a) == 2 * 2 * 3 * 4
    comm = {n: d["comm_bytes"] for n, d in ep.nodes(data=True) if d["op"] == "collective"}
    assert all(t.bytes == comm[t.src_op] / 4 and t.dst_op.rsplit("@", 1)[0] == t.src_op.rsplit("@", 1)[0]
               for t in a2a)
    assert {t.src_memory for t in a2a} == {f"hbm{i}" for i in range(4)}
    assert len({r.peak_memory_bytes[f"hbm{i}"] for i in range(4)}) == 1  # symmetric layout
