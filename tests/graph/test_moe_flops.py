"""Mixtral FLOPs: captured matrix FLOPs equal FlopCounterMode on a real CPU run (any routing) and
the analytic count (attention as Llama, top_k SwiGLU experts and the router per token)."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
from hetsim.models.mixtral import Mixtral, MixtralConfig

from hetsim.graph.capture import capture
from hetsim.graph.capture_flops import flop_counter_mode
from hetsim.graph.catalog import model_config, model_graph

MATRIX = ("matmul", "attention")
VOCAB = 97


def tiny(**kwargs: object) -> Mixtral:
    torch.manual_seed(0)
    return Mixtral(MixtralConfig(vocab_size=VOCAB, d_model=64, n_layers=2, n_heads=8, n_kv_heads=2, ffn_dim=80,
                                 n_experts=4, top_k=2, **kwargs)).eval()


def matrix_flop(g) -> int:
    return sum(d["flop"] for _, d in g.nodes(data=True) if d["op"] in MATRIX)


def counted(module: torch.nn.Module, *args: object, **kwargs: object) -> tuple[int, dict]:
    with flop_counter_mode() as fc:
        module(*args, **kwargs)
    return fc.get_total_flops(), {str(k): v for k, v in fc.get_flop_counts()["Global"].items()}


def analytic(cfg: dict, batch: int, queries: int, context: int) -> int:
    """Per token: Llama's projections and attention, 2·top_k·3·d·ffn for the experts, 2·d·n_experts
    for the router, the LM head; attention over ``context`` keys (causal masking not discounted)."""
    d, heads, kv = cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"]
    hd = d // heads
    per_layer = (2 * (2 * d * heads * hd + 2 * d * kv * hd) + 4 * context * d
                 + 2 * cfg["top_k"] * 3 * d * cfg["ffn_dim"] + 2 * d * cfg["n_experts"])
    return batch * queries * (cfg["n_layers"] * per_layer + 2 * d * cfg["vocab_size"])


@pytest.mark.parametrize("balanced", [False, True])
def test_prefill_matrix_flops_equal_flop_counter_mode(balanced: bool) -> None:
    model = tiny(balanced_routing=balanced)
    ids = torch.randint(0, VOCAB, (2, 11))
    g = capture(model, (ids,))  # captured with balanced routing either way
    total, per_op = counted(model, ids)  # real routing, or balanced when forced
    assert matrix_flop(g) == total  # every (token, slot) assignment goes through one expert once
    assert per_op["aten._scaled_dot_product_flash_attention_for_cpu"] > 0
    assert total == analytic(asdict(model.config), 2, 11, 11)


def test_decode_matrix_flops_equal_flop_counter_mode() -> None:
    model = tiny()
    cfg = model.config
    cache = [(torch.randn(3, 2, 10, cfg.head_dim), torch.randn(3, 2, 10, cfg.head_dim))  # 9 past + the new one
             for _ in range(cfg.n_layers)]
    ids = torch.randint(0, VOCAB, (3, 1))
    g = capture(model, (ids,), {"past_key_values": cache}, phase="decode", seq_len=9)
    total, _ = counted(model, ids, past_key_values=cache)
    assert matrix_flop(g) == total == analytic(asdict(cfg), 3, 1, 10)
    assert g.graph["phase"] == "decode" and g.graph["seq_len"] == 9


@pytest.mark.parametrize(("phase", "batch", "seq"), [("prefill", 2, 32), ("decode", 1, 32), ("decode", 4, 32)])
def test_mixtral_tiny_flops_match_the_analytic_count(phase: str, batch: int, seq: int) -> None:
    g = model_graph("mixtral-tiny", phase=phase, batch=batch, seq_len=seq)
    cfg = dict(model_config("mixtral-tiny").config)
    queries, context = (seq, seq) if phase == "prefill" else (1, seq + 1)
    assert matrix_flop(g) == analytic(cfg, batch, queries, context)


@pytest.mark.slow
def test_mixtral_8x7b_prefill_matrix_flops_equal_the_analytic_count() -> None:
    seq = 512
    g = model_graph("mixtral-8x7b", phase="prefill", batch=1, seq_len=seq)
    cfg = dict(model_config("mixtral-8x7b").config)
    assert matrix_flop(g) == analytic(cfg, 1, seq, seq)
    # about 2 × 12.9B active parameters per token (Jiang et al. 2024: 13B active)
    active = (matrix_flop(g) - 4 * cfg["n_layers"] * seq * seq * cfg["d_model"]) / (2 * seq)
    assert 12.8e9 < active + cfg["vocab_size"] * cfg["d_model"] < 13.0e9
