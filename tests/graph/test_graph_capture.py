"""capture(): FLOPs against FlopCounterMode, bytes, weights, views and graph structure."""

from __future__ import annotations

import math
import subprocess
import sys

import networkx as nx
import pytest
import torch
from hetsim.models.bert import Bert, BertConfig
from hetsim.models.gpt2 import GPT2, GPT2Config
from hetsim.models.llama import Llama, LlamaConfig, empty_cache
from torch import nn

from hetsim.graph.capture import capture
from hetsim.graph.capture_flops import flop_counter_mode, matrix_flop
from hetsim.graph.schema import validate_graph

MATRIX = ("matmul", "attention", "conv")
VOCAB = 97


def small_models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "gpt2": GPT2(GPT2Config(vocab_size=VOCAB, max_positions=32, d_model=48, n_layers=2, n_heads=4, ffn_dim=96)),
        "llama": Llama(LlamaConfig(vocab_size=VOCAB, d_model=64, n_layers=2, n_heads=8, n_kv_heads=2, ffn_dim=80)),
        "bert": Bert(BertConfig(vocab_size=VOCAB, d_model=48, n_layers=2, n_heads=4, ffn_dim=96, max_positions=32)),
    }


def matrix_flop_of(g: nx.DiGraph) -> int:
    return sum(d["flop"] for _, d in g.nodes(data=True) if d["op"] in MATRIX)


def counted(module: nn.Module, *args: object, **kwargs: object) -> tuple[int, dict]:
    with flop_counter_mode() as fc:
        module(*args, **kwargs)
    return fc.get_total_flops(), {str(k): v for k, v in fc.get_flop_counts()["Global"].items()}


@pytest.mark.parametrize("family", ["gpt2", "llama", "bert"])
def test_matrix_flops_equal_flop_counter_mode_on_real_cpu_run(family: str) -> None:
    model = small_models()[family].eval()
    ids = torch.randint(0, VOCAB, (2, 11))
    g = capture(model, (ids,))
    total, per_op = counted(model, ids)
    assert matrix_flop_of(g) == total
    # the CPU SDPA kernel is counted (torch alone would count it as 0)
    assert per_op.get("aten._scaled_dot_product_flash_attention_for_cpu", 0) > 0
    attention = sum(d["flop"] for _, d in g.nodes(data=True) if d["op"] == "attention")
    assert attention == per_op["aten._scaled_dot_product_flash_attention_for_cpu"]


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_decode_flops_equal_flop_counter_mode(family: str) -> None:
    model = small_models()[family].eval()
    cfg = model.config
    cache = [(torch.randn(2, getattr(cfg, "n_kv_heads", cfg.n_heads), 10, cfg.head_dim),  # 9 past + the new one
              torch.randn(2, getattr(cfg, "n_kv_heads", cfg.n_heads), 10, cfg.head_dim)) for _ in range(cfg.n_layers)]
    ids = torch.randint(0, VOCAB, (2, 1))
    g = capture(model, (ids,), {"past_key_values": cache}, phase="decode", seq_len=9)
    total, _ = counted(model, ids, past_key_values=cache)
    assert matrix_flop_of(g) == total > 0
    assert g.graph["phase"] == "decode" and g.graph["seq_len"] == 9 and g.graph["batch"] == 2


def test_linear_node_by_hand() -> None:
    b, t, k, n = 3, 5, 16, 24
    g = capture(nn.Linear(k, n), (torch.randn(b, t, k),))
    [d] = [d for u, d in g.nodes(data=True) if d["op"] == "matmul"]
    assert d["target"] == "aten.linear.default"
    assert d["flop"] == 2 * b * t * k * n
    assert d["bytes_read"] == 4 * (b * t * k + n * k + n)
    assert d["bytes_written"] == 4 * b * t * n
    assert d["weights"] == {"weight": 4 * n * k, "bias": 4 * n, "input": 4 * b * t * k}
    assert d["weight_bytes"] == sum(d["weights"].values())
    assert d["dtype"] == "fp32" and d["shape"] == (b, t, n)
    assert g.graph["dtype"] == "fp32" and g.graph["batch"] == b and g.graph["seq_len"] == t


class Heads(nn.Module):
    """No parameters: views, a copying reshape, a softmax and matmuls."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q = x.view(b, t, 4, d // 4).transpose(1, 2)  # views
        s = torch.softmax(q @ q.transpose(-1, -2), dim=-1)  # matmul, softmax
        z = (s @ q).transpose(1, 2).reshape(b, t, d)  # the reshape of a transposed tensor copies
        return torch.layer_norm(z + y, (d,))


def test_parameter_free_module() -> None:
    b, t, d = 2, 6, 32
    g = capture(Heads(), (torch.randn(b, t, d), torch.randn(b, t, d)))
    kinds = {u: d_["op"] for u, d_ in g.nodes(data=True)}
    assert sorted(kinds.values()).count("matmul") == 2
    assert {"view", "softmax", "copy", "elementwise", "norm"} <= set(kinds.values())
    hd = d // 4
    assert matrix_flop_of(g) == 2 * (2 * b * 4 * t * hd * t)
    total, _ = counted(Heads(), torch.randn(b, t, d), torch.randn(b, t, d))
    assert matrix_flop_of(g) == total
    softmax = next(x for _, x in g.nodes(data=True) if x["op"] == "softmax")
    assert softmax["flop"] == 5 * b * 4 * t * t
    norm = next(x for _, x in g.nodes(data=True) if x["op"] == "norm")
    assert norm["flop"] == 8 * b * t * d
    add = next(x for _, x in g.nodes(data=True) if x["target"] == "aten.add.Tensor")
    assert add["flop"] == b * t * d and add["weights"] == {"y": 4 * b * t * d}
    copy = next(x for _, x in g.nodes(data=True) if x["op"] == "copy")
    assert copy["bytes_read"] == copy["bytes_written"] == 4 * b * t * d


def test_views_cost_nothing_and_reshape_is_a_view_when_it_can_be() -> None:
    class M(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x.reshape(4, 6).t().unsqueeze(0) * 2).reshape(-1)

    g = capture(M(), (torch.randn(2, 3, 4),))
    ops = {u: d for u, d in g.nodes(data=True)}
    # reshape of a contiguous tensor is a view; the product keeps the transposed layout, so the final
    # reshape must copy
    assert [ops[u]["op"] for u in nx.topological_sort(g)] == ["view", "view", "view", "elementwise", "copy"]
    last = ops[list(nx.topological_sort(g))[-1]]
    assert last["bytes_read"] == last["bytes_written"] == 4 * 24 and last["flop"] == 0
    for d in ops.values():
        if d["op"] == "view":
            assert d["flop"] == d["bytes_read"] == d["bytes_written"] == 0 and d["dtype"] is None
    # the input reaches the multiply through three views: it is still the tensor the multiply reads
    mul = next(d for d in ops.values() if d["op"] == "elementwise")
    assert mul["weights"] == {"x": 4 * 24} and mul["bytes_read"] == 4 * 24


@pytest.mark.parametrize("family", ["gpt2", "llama", "bert"])
def test_every_view_is_free_and_graph_is_a_valid_dag(family: str) -> None:
    model = small_models()[family].eval()
    g = capture(model, (torch.randint(0, VOCAB, (1, 8)),))
    assert nx.is_directed_acyclic_graph(g) and validate_graph(g) is g
    views = [d for _, d in g.nodes(data=True) if d["op"] == "view"]
    assert views and all(d["flop"] == d["bytes_read"] == d["bytes_written"] == 0 for d in views)
    assert not any(d["target"].startswith("aten._assert") for _, d in g.nodes(data=True))
    # one weakly connected graph: position tables and token-type ids join the embeddings
    assert nx.number_weakly_connected_components(g) == 1
    creation = [d for _, d in g.nodes(data=True) if d["target"].startswith(("aten.arange.", "aten.zeros_like."))]
    assert creation and all(d["bytes_read"] == d["flop"] == 0 and not d["weights"] for d in creation)


@pytest.mark.parametrize("family", ["gpt2", "llama", "bert"])
def test_weights_cover_every_parameter_once(family: str) -> None:
    model = small_models()[family].eval()
    g = capture(model, (torch.randint(0, VOCAB, (1, 8)),))
    union = {k: v for _, d in g.nodes(data=True) for k, v in d["weights"].items()}
    params = dict(model.named_parameters())  # tied weights appear once
    assert {k: v for k, v in union.items() if k in params} == {
        k: p.numel() * p.element_size() for k, p in params.items()}
    assert sum(v for k, v in union.items() if k in params) == sum(p.numel() * p.element_size()
                                                                  for p in model.parameters())
    assert set(union) - set(params) == {"input_ids"}


def test_gpt2_tied_lm_head_reads_the_token_embedding() -> None:
    model = small_models()["gpt2"].eval()
    g = capture(model, (torch.randint(0, VOCAB, (1, 8)),))
    head = next(d for _, d in g.nodes(data=True) if d["module"] == "lm_head")
    assert head["weights"] == {"wte.weight": VOCAB * 48 * 4}


def test_meta_and_real_inputs_give_the_same_graph() -> None:
    cfg = LlamaConfig(vocab_size=VOCAB, d_model=64, n_layers=2, n_heads=8, n_kv_heads=2, ffn_dim=80)
    with torch.device("meta"):
        meta_model = Llama(cfg).eval()
    real_model = Llama(cfg).eval()
    real_ids, meta_ids = torch.zeros(1, 8, dtype=torch.long), torch.zeros(1, 8, dtype=torch.long, device="meta")
    graphs = [capture(m, (x,)) for m, x in [(meta_model, meta_ids), (meta_model, real_ids), (real_model, meta_ids),
                                            (real_model, real_ids)]]
    reference = dict(graphs[0].nodes(data=True))
    for g in graphs[1:]:
        assert dict(g.nodes(data=True)) == reference
        assert list(g.edges(data=True)) == list(graphs[0].edges(data=True))


def test_meta_capture_allocates_no_weights() -> None:
    # ~2.4 GB of fp32 weights if allocated; capture must not touch them
    cfg = LlamaConfig(vocab_size=32000, d_model=4096, n_layers=2, n_heads=32, n_kv_heads=8, ffn_dim=14336)
    with torch.device("meta"):
        model = Llama(cfg).eval()
    g = capture(model, (torch.zeros(1, 128, dtype=torch.long),))
    assert all(p.device.type == "meta" for p in model.parameters())
    weight_bytes = sum({k: v for _, d in g.nodes(data=True) for k, v in d["weights"].items()}.values())
    assert weight_bytes > 2e9


def test_decode_attention_spans_cache_plus_new_token() -> None:
    cfg = LlamaConfig(vocab_size=VOCAB, d_model=64, n_layers=2, n_heads=8, n_kv_heads=2, ffn_dim=80)
    with torch.device("meta"):
        model = Llama(cfg).eval()
    past, batch = 13, 3
    cache = empty_cache(cfg, batch, past, device="meta")
    g = capture(model, (torch.zeros(batch, 1, dtype=torch.long),), {"past_key_values": cache})
    attn = [(u, d) for u, d in g.nodes(data=True) if d["op"] == "attention"]
    assert len(attn) == cfg.n_layers
    for u, d in attn:
        assert d["flop"] == 2 * batch * cfg.n_heads * 1 * (past + 1) * 2 * cfg.head_dim
        keys = [g.nodes[p]["shape"] for p, _ in g.in_edges(u)]
        assert (batch, cfg.n_kv_heads, past + 1, cfg.head_dim) in keys
    cache_reads = {k for _, d in g.nodes(data=True) for k in d["weights"] if k.startswith("past_key_values")}
    assert len(cache_reads) == 2 * cfg.n_layers


def test_dtype_is_inferred_and_recorded_per_node() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.GELU()).to(torch.bfloat16)
    g = capture(model, (torch.randn(2, 8, dtype=torch.bfloat16),), name="mlp", phase="prefill")
    assert g.graph == {"name": "mlp", "phase": "prefill", "batch": 2, "seq_len": 8, "dtype": "bf16"}
    assert {d["dtype"] for _, d in g.nodes(data=True)} == {"bf16"}


def test_dropout_is_free_in_eval_and_costs_in_training() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1))
    x = torch.randn(4, 8)
    assert [d["op"] for _, d in capture(model.eval(), (x,)).nodes(data=True)] == ["matmul", "view"]
    train_kinds = [d["op"] for _, d in capture(model.train(), (x,)).nodes(data=True)]
    assert train_kinds[0] == "matmul" and "view" not in train_kinds[1:]


def test_conv_and_einsum_are_counted_by_flop_counter_mode() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x).flatten(2)
            return torch.einsum("bcn,bdn->bcd", y, y)

    x = torch.randn(2, 3, 8, 8)
    g = capture(M(), (x,))
    conv = next(d for _, d in g.nodes(data=True) if d["op"] == "conv")
    assert conv["flop"] == 2 * 2 * 16 * 8 * 8 * 3 * 3 * 3
    total, _ = counted(M(), x)
    assert matrix_flop_of(g) == total and total > conv["flop"]


def test_matrix_formulas_match_flop_counter_mode_on_shapes() -> None:
    cases = [
        (torch.mm, "mm", [(5, 7), (7, 3)]),
        (torch.bmm, "bmm", [(2, 5, 7), (2, 7, 3)]),
        (torch.matmul, "matmul", [(3, 1, 5, 7), (2, 7, 4)]),
        (torch.addmm, "addmm", [(3,), (5, 7), (7, 3)]),
        (torch.baddbmm, "baddbmm", [(2, 5, 3), (2, 5, 7), (2, 7, 3)]),
        (torch.nn.functional.linear, "linear", [(2, 4, 7), (3, 7), (3,)]),
    ]
    for fn, name, shapes in cases:
        tensors = [torch.randn(s) for s in shapes]
        with flop_counter_mode() as fc:
            fn(*tensors)
        assert matrix_flop(name, shapes) == fc.get_total_flops(), name
    q, k = torch.randn(2, 8, 5, 16), torch.randn(2, 2, 9, 16)
    with flop_counter_mode() as fc:
        torch.nn.functional.scaled_dot_product_attention(q, k, k, enable_gqa=True)
    assert matrix_flop("scaled_dot_product_attention", [q.shape, k.shape, k.shape]) == fc.get_total_flops() > 0


def test_unknown_or_failing_module_raises_one_line_graph_error() -> None:
    from hetsim.errors import GraphError

    class Bad(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent control flow cannot be exported
                return x
            return -x

    with pytest.raises(GraphError, match=r"^capture: torch.export failed for Bad") as info:
        capture(Bad(), (torch.randn(3),))
    assert "\n" not in str(info.value)


def test_edges_carry_the_flowing_tensor() -> None:
    g = capture(Heads(), (torch.randn(2, 6, 32), torch.randn(2, 6, 32)))
    for u, v, d in g.edges(data=True):
        shape = g.nodes[u]["shape"]
        if g.nodes[v]["target"] != "<built-in function getitem>":
            assert d["bytes"] <= 4 * math.prod(shape)
        assert d["bytes"] > 0


def test_importing_capture_does_not_import_torch() -> None:
    code = ("import sys, hetsim, hetsim.graph.capture, hetsim.graph.catalog, hetsim.graph.capture_flops; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_embedding_reads_the_gathered_rows_and_gelu_variants_are_named() -> None:
    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(1000, 16)

        def forward(self, ids):
            x = self.emb(ids)
            return torch.nn.functional.gelu(x, approximate="tanh") + torch.nn.functional.gelu(x)

    g = capture(Tiny(), (torch.zeros(2, 8, dtype=torch.long),))
    (emb,) = [d for _, d in g.nodes(data=True) if d["op"] == "embedding"]
    assert emb["bytes_read"] == 2 * 8 * 16 * 4 + 2 * 8 * 8  # gathered fp32 rows + int64 ids
    assert emb["weights"] == {"emb.weight": 1000 * 16 * 4, "ids": 2 * 8 * 8}  # the whole table stays resident
    targets = sorted(d["target"] for _, d in g.nodes(data=True) if "gelu" in d["target"])
    assert targets == ["aten.gelu.default", "aten.gelu.default[approximate=tanh]"]
