"""The KV cache is written in place: decode numerics, capture of the writes, the bytes a decode step moves."""

from __future__ import annotations

import math

import networkx as nx
import pytest
import torch
from hetsim.models.gpt2 import GPT2, GPT2Config
from hetsim.models.llama import Llama, LlamaConfig, empty_cache
from hetsim.models.mixtral import Mixtral, MixtralConfig
from torch import nn

import hetsim
from hetsim.graph.capture import _mutations, _persistent_names, add_fx_ops, capture, export_program, graph_for
from hetsim.graph.catalog import model_config
from hetsim.graph.parallel import tensor_parallel
from hetsim.graph.schema import validate_graph

CACHE = "past_key_values"


def decoders() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "gpt2": GPT2(GPT2Config(vocab_size=50, max_positions=32, d_model=32, n_layers=2, n_heads=4, ffn_dim=64)),
        "llama": Llama(LlamaConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=48)),
        "mixtral": Mixtral(MixtralConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=48,
                                         n_experts=4, top_k=2)),
    }


def preallocated(model: nn.Module, batch: int, capacity: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    cfg = model.config
    heads = getattr(cfg, "n_kv_heads", cfg.n_heads)
    return [(torch.full((batch, heads, capacity, cfg.head_dim), float("nan")),
             torch.full((batch, heads, capacity, cfg.head_dim), float("nan"))) for _ in range(cfg.n_layers)]


@pytest.mark.parametrize("name", ["gpt2", "llama", "mixtral"])
def test_decode_steps_equal_the_full_forward(name: str) -> None:
    """Prefill fills a preallocated cache, then each decode step writes one slot: logits equal the
    full-sequence forward at those positions (the concatenating reference) within 1e-5. Slots not
    yet written hold NaN, so reading one would show."""
    model = decoders()[name].eval()
    ids = torch.randint(0, 50, (2, 9))
    full = model(ids)
    cache = preallocated(model, 2, 9)
    logits, same = model(ids[:, :6], past_key_values=cache, cache_position=0)
    torch.testing.assert_close(logits, full[:, :6], atol=1e-5, rtol=0)
    for pos in range(6, 9):
        step, same = model(ids[:, pos:pos + 1], past_key_values=cache, cache_position=pos)
        torch.testing.assert_close(step, full[:, pos:pos + 1], atol=1e-5, rtol=0)
    assert all(a is b for kv, kv_same in zip(cache, same, strict=True) for a, b in zip(kv, kv_same, strict=True))
    assert not any(t.isnan().any() for kv in cache for t in kv)


def test_a_chunk_after_cached_tokens_attends_causally() -> None:
    model = decoders()["llama"].eval()
    ids = torch.randint(0, 50, (1, 9))
    full = model(ids)
    cache = preallocated(model, 1, 9)
    model(ids[:, :4], past_key_values=cache, cache_position=0)
    chunk, _ = model(ids[:, 4:8], past_key_values=cache, cache_position=4)  # 4 new tokens after 4 cached
    torch.testing.assert_close(chunk, full[:, 4:8], atol=1e-5, rtol=0)


def test_default_position_is_the_last_slots_and_bad_positions_are_one_line() -> None:
    model = decoders()["llama"].eval()
    ids = torch.randint(0, 50, (1, 5))
    full = model(ids)
    cache = empty_cache(model.config, 1, 4)  # 4 past tokens + room for one
    assert cache[0][0].shape[2] == 5
    model(ids[:, :4], past_key_values=cache, cache_position=0)
    step, _ = model(ids[:, 4:], past_key_values=cache)  # slot 4 by default
    torch.testing.assert_close(step, full[:, 4:], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"^cache_position: got 5, expected an integer in 0\.\.4") as info:
        model(ids[:, :1], past_key_values=cache, cache_position=5)
    assert "\n" not in str(info.value)


class SliceWrite(nn.Module):
    """Writes one position of an input cache by slice assignment, then reads the whole cache."""

    def forward(self, x: torch.Tensor, cache: torch.Tensor) -> torch.Tensor:
        cache[:, :, 5:6] = x
        return (cache * 2).sum()


class IndexWrite(nn.Module):
    def forward(self, x: torch.Tensor, cache: torch.Tensor) -> torch.Tensor:
        return (cache.index_copy_(2, torch.tensor([5]), x) * 2).sum()


def _graph(module: nn.Module, functional: bool):
    x, cache = torch.randn(2, 3, 1, 4), torch.randn(2, 3, 6, 4)
    if not functional:
        return capture(module, (x, cache))
    ep = export_program(module, (x, cache)).run_decompositions({})  # functionalized: scatter + a mutation output
    persistent = _persistent_names(ep, module)
    g = graph_for(module, ep.graph, ep.graph_signature.user_inputs, "capture", name=None, phase="", dtype=None)
    add_fx_ops(g, ep.graph, persistent, mutations=_mutations(ep, module, persistent))
    return validate_graph(g)


@pytest.mark.parametrize("module", [SliceWrite, IndexWrite])
@pytest.mark.parametrize("functional", [False, True])
def test_a_write_into_an_input_moves_only_the_update(module: type, functional: bool) -> None:
    """In place (``copy_``, ``index_copy_``) or functionalized (``slice_scatter``, ``index_copy`` plus a
    user-input mutation): the write stores the update's 96 bytes, allocates nothing, and the reader
    lists the cache (576 bytes) in ``weights`` and reads it once, after the write."""
    g = _graph(module(), functional)
    update, whole = 2 * 3 * 1 * 4 * 4, 2 * 3 * 6 * 4 * 4
    [(write, w)] = [(u, d) for u, d in g.nodes(data=True) if d.get("inplace_bytes")]
    assert w["bytes_written"] == w["inplace_bytes"] == update
    assert update <= w["bytes_read"] <= update + 8 * 1  # the update, and an index if any
    [(mul, m)] = [(u, d) for u, d in g.nodes(data=True) if d["target"] == "aten.mul.Tensor"]
    assert m["weights"] == {"cache": whole} and m["bytes_read"] == whole
    assert mul in nx.descendants(g, write)


def _analytic(name: str, batch: int, seq_len: int) -> dict[str, int]:
    """Bytes of a bf16 decode step from the catalogue config alone."""
    c = model_config(name).config
    d, layers, vocab, ffn = c["d_model"], c["n_layers"], c["vocab_size"], c["ffn_dim"]
    kv_heads, hd = c.get("n_kv_heads", c["n_heads"]), d // c["n_heads"]
    if name.startswith("gpt2"):  # fused QKV, 2 LayerNorms and biases per block, tied head, learned positions
        per_layer = 3 * d * d + 3 * d + d * d + d + 2 * d * ffn + ffn + d + 4 * d
        params = layers * per_layer + vocab * d + c["max_positions"] * d + 2 * d
    else:
        per_layer = d * (c["n_heads"] + 2 * kv_heads) * hd + c["n_heads"] * hd * d + 3 * d * ffn + 2 * d
        params = layers * per_layer + 2 * vocab * d + d
    token_kv = layers * 2 * batch * kv_heads * hd * 2  # one token's K and V, every layer
    return {"weights": 2 * params, "kv_read": token_kv * (seq_len + 1), "kv_written": token_kv,
            "layer_cache": batch * kv_heads * (seq_len + 1) * hd * 2, "token_kv": batch * kv_heads * hd * 2}


def _tally(g) -> dict[str, float]:
    weights: dict[str, float] = {}
    cache_read = 0.0
    for _, d in g.nodes(data=True):
        weights.update(d["weights"])
        cache_read += sum(v for k, v in d["weights"].items() if k.startswith(CACHE))
    return {"weights": sum(v for k, v in weights.items() if not k.startswith((CACHE, "input_ids"))),
            "kv_read": cache_read, "kv_written": sum(d.get("inplace_bytes", 0) for _, d in g.nodes(data=True))}


@pytest.fixture(scope="module")
def llama_b8():
    return hetsim.model_graph("llama-3-8b", phase="decode", batch=8, seq_len=4096, dtype="bf16")


@pytest.mark.parametrize(("name", "batch", "seq_len"), [("llama-3-8b", 8, 4096), ("gpt2", 4, 1000)])
def test_decode_moves_weights_kv_read_and_new_kv(name: str, batch: int, seq_len: int, llama_b8) -> None:
    g = llama_b8 if name == "llama-3-8b" else hetsim.model_graph(name, phase="decode", batch=batch, seq_len=seq_len)
    want, got = _analytic(name, batch, seq_len), _tally(g)
    for key in ("weights", "kv_read", "kv_written"):
        assert got[key] == pytest.approx(want[key], rel=0.01), key
    assert got["kv_read"] == want["kv_read"] and got["kv_written"] == want["kv_written"]  # exact, in fact
    # only the attention ops read the cache, each its layer's K and V once
    readers = [d for _, d in g.nodes(data=True) if any(k.startswith(CACHE) for k in d["weights"])]
    assert {d["op"] for d in readers} == {"attention"}
    assert all(len(d["weights"]) == 2 for d in readers)
    # no op writes a copy of the cache: a write stores one token's K or V, nothing else comes near a layer's cache
    assert max(d["bytes_written"] for _, d in g.nodes(data=True)) < want["layer_cache"]
    writes = [d for _, d in g.nodes(data=True) if d.get("inplace_bytes")]
    assert len(writes) == 2 * model_config(name).config["n_layers"]
    assert all(d["bytes_written"] == d["inplace_bytes"] == want["token_kv"] for d in writes)


def test_batch_1_decode_bytes_decompose_exactly() -> None:
    """bytes_read + bytes_written of all ops = weights read + KV read + new KV written + activations.

    Weights read: every weight tensor once, but the embedding table only for the row it gathers
    (one token). For llama-3-8b at 4096 tokens the activations are 16.7 MB, 0.11 % of the step's
    15.56 GB (weights 15.01 GB, KV read 0.537 GB, new KV 0.13 MB)
    """
    name, seq_len = "llama-3-8b", 4096
    g = hetsim.model_graph(name, phase="decode", batch=1, seq_len=seq_len, dtype="bf16")
    c, want = model_config(name).config, _analytic(name, 1, seq_len)
    table = 2 * c["vocab_size"] * c["d_model"]
    weights_read = want["weights"] - table + 2 * c["d_model"]
    total = sum(d["bytes_read"] + d["bytes_written"] for _, d in g.nodes(data=True))
    activations = total - weights_read - want["kv_read"] - want["kv_written"]
    # the rest is activations: each op's non-weight inputs and its outputs
    expected = sum(d["bytes_read"] - d["weight_bytes"] + d["bytes_written"] - d.get("inplace_bytes", 0)
                   for _, d in g.nodes(data=True) if d["op"] != "embedding")
    embedding = next(d for _, d in g.nodes(data=True) if d["op"] == "embedding")
    expected += embedding["bytes_read"] - 2 * c["d_model"] + embedding["bytes_written"]
    assert activations == pytest.approx(expected, rel=1e-9)
    assert 0 < activations < 0.01 * total


def test_decode_peak_memory_holds_no_second_cache(llama_b8) -> None:
    result = hetsim.simulate(llama_b8, "h100-sxm")
    resident = sum({k: v for _, d in llama_b8.nodes(data=True) for k, v in d["weights"].items()}.values())
    (peak,) = result.peak_memory_bytes.values()
    layer_kv = 2 * _analytic("llama-3-8b", 8, 4096)["layer_cache"]  # what one concatenated layer would add
    assert resident <= peak < resident + 0.1 * layer_kv


def test_tensor_parallel_splits_the_cache_and_its_writes() -> None:
    name, batch, seq_len, p = "llama-tiny", 2, 100, 2
    g = hetsim.model_graph(name, phase="decode", batch=batch, seq_len=seq_len)
    tp = tensor_parallel(g, ["gpu0", "gpu1"])
    want = _analytic(name, batch, seq_len)
    for unit in ("gpu0", "gpu1"):
        mine = [d for u, d in tp.nodes(data=True) if u.endswith(f"@{unit}")]
        assert sum(v for d in mine for k, v in d["weights"].items() if k.startswith(CACHE)) == want["kv_read"] / p
        assert sum(d.get("inplace_bytes", 0) for d in mine) == want["kv_written"] / p
        for d in mine:
            if d["op"] == "attention":  # its query shard and its cache shard, once
                q = math.prod(d["shape"]) * 2 / p
                assert d["bytes_read"] == pytest.approx(q + d["weight_bytes"])
