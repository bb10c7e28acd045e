"""The model catalogue: published sizes, model_graph workloads, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import networkx as nx
import pytest

import hetsim
from hetsim.errors import GraphError
from hetsim.graph.catalog import build_model, list_models, model_config, model_graph

PUBLISHED = ["gpt2", "gpt2-xl", "llama-2-7b", "llama-3-8b", "llama-3-70b", "mistral-7b", "bert-base", "bert-large"]

#: headline counts as usually quoted (model cards, papers), to 3 significant figures
HEADLINE = {"gpt2": 124e6, "gpt2-xl": 1.56e9, "llama-2-7b": 6.74e9, "llama-3-8b": 8.03e9, "llama-3-70b": 70.6e9,
            "mistral-7b": 7.24e9, "bert-base": 110e6, "bert-large": 335e6}


def test_catalogue_lists_the_published_models_and_test_sizes() -> None:
    names = list_models()
    assert set(PUBLISHED) <= set(names) and names == sorted(names)
    assert hetsim.list_models() == names
    for name in names:
        spec = model_config(name)
        assert spec.family in ("gpt2", "llama", "bert", "mixtral") and spec.source
        assert spec.test_only == name.endswith("-tiny")
        assert (spec.params is None) == spec.test_only
    with pytest.raises(TypeError):
        model_config("gpt2").config["d_model"] = 1  # the entry is read-only


@pytest.mark.parametrize("name", PUBLISHED)
def test_built_model_reproduces_the_published_parameter_count(name: str) -> None:
    model = build_model(name)  # meta: no memory
    params = sum(p.numel() for p in model.parameters())
    assert abs(params - model_config(name).params) <= 0.01 * model_config(name).params
    assert abs(params - HEADLINE[name]) <= 0.01 * HEADLINE[name]
    assert all(p.device.type == "meta" for p in model.parameters())


def test_llama_3_8b_config_values() -> None:
    c = model_config("llama-3-8b").config
    assert (c["vocab_size"], c["d_model"], c["n_layers"], c["n_heads"], c["n_kv_heads"], c["ffn_dim"],
            c["rope_theta"], c["max_positions"]) == (128256, 4096, 32, 32, 8, 14336, 500000.0, 8192)


def test_prefill_graph_attributes_and_shape() -> None:
    g = model_graph("llama-tiny", phase="prefill", batch=2, seq_len=16, dtype="fp32")
    assert g.graph == {"name": "llama-tiny", "phase": "prefill", "batch": 2, "seq_len": 16, "dtype": "fp32"}
    assert nx.is_directed_acyclic_graph(g)
    head = next(d for _, d in g.nodes(data=True) if d["module"] == "lm_head")
    assert head["shape"] == (2, 16, 256) and head["dtype"] == "fp32"


def test_decode_graph_attends_over_cache_plus_one() -> None:
    spec = model_config("llama-tiny").config
    seq, batch, hd = 20, 3, spec["d_model"] // spec["n_heads"]
    g = model_graph("llama-tiny", phase="decode", batch=batch, seq_len=seq)
    assert g.graph["phase"] == "decode" and g.graph["seq_len"] == seq and g.graph["dtype"] == "bf16"
    attn = [d for _, d in g.nodes(data=True) if d["op"] == "attention"]
    assert len(attn) == spec["n_layers"]
    assert all(d["flop"] == 2 * batch * spec["n_heads"] * (seq + 1) * 2 * hd for d in attn)
    cache = {k: v for _, d in g.nodes(data=True) for k, v in d["weights"].items() if k.startswith("past_key_values")}
    assert len(cache) == 2 * spec["n_layers"]
    assert set(cache.values()) == {batch * spec["n_kv_heads"] * (seq + 1) * hd * 2}  # bf16, room for the new one
    head = next(d for _, d in g.nodes(data=True) if d["module"] == "lm_head")
    assert head["shape"] == (batch, 1, spec["vocab_size"])


def test_gpt2_and_bert_graphs() -> None:
    g = model_graph("gpt2-tiny", phase="decode", seq_len=10)
    assert sum(d["op"] == "attention" for _, d in g.nodes(data=True)) == 2
    g = model_graph("bert-tiny", seq_len=12, batch=4)
    assert g.graph["batch"] == 4 and sum(d["op"] == "norm" for _, d in g.nodes(data=True)) == 5


def test_model_graph_is_deterministic() -> None:
    a, b = model_graph("gpt2-tiny", seq_len=8), model_graph("gpt2-tiny", seq_len=8)
    assert list(a.nodes(data=True)) == list(b.nodes(data=True))
    assert list(a.edges(data=True)) == list(b.edges(data=True))


def test_unknown_model_names_the_field_and_the_known_names() -> None:
    with pytest.raises(GraphError) as info:
        model_graph("llama-9b")
    message = str(info.value)
    assert message.startswith("workload.model: got 'llama-9b'") and "\n" not in message
    assert all(name in message for name in PUBLISHED)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"phase": "train"}, "workload.phase"),
    ({"batch": 0}, "workload.batch"),
    ({"batch": True}, "workload.batch"),
    ({"batch": 1.5}, "workload.batch"),
    ({"seq_len": 0}, "workload.seq_len"),
    ({"seq_len": 257}, "workload.seq_len"),  # llama-tiny has 256 positions
    ({"seq_len": 256, "phase": "decode"}, "workload.seq_len"),  # the new token would sit at position 256
    ({"dtype": "fp8"}, "workload.dtype"),
])
def test_bad_workload_is_a_one_line_error_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(GraphError) as info:
        model_graph("llama-tiny", **kwargs)
    assert str(info.value).startswith(f"{field}: got ") and "\n" not in str(info.value)


def test_bert_has_no_decode() -> None:
    with pytest.raises(GraphError, match=r"^workload.phase: got 'decode', expected 'prefill' for bert-base"):
        model_graph("bert-base", phase="decode", seq_len=16)


def test_the_longest_prompt_fits() -> None:
    g = model_graph("gpt2-tiny", seq_len=128)
    assert g.graph["seq_len"] == 128


def test_catalogue_loads_without_a_top_level_models_package() -> None:
    code = ("import sys; from hetsim.graph.catalog import build_model; build_model('gpt2-tiny'); "
            "print('models' in sys.modules, 'hetsim.models.gpt2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def analytic_prefill_flop(name: str, seq: int) -> int:
    """2·N·T over the weight matrices (all but the token embedding) plus 4·L·T²·d of attention."""
    c = model_config(name).config
    d, layers, heads, kv, ffn = c["d_model"], c["n_layers"], c["n_heads"], c["n_kv_heads"], c["ffn_dim"]
    hd = d // heads
    n_matrix = layers * (2 * d * heads * hd + 2 * d * kv * hd + 3 * d * ffn) + d * c["vocab_size"]
    return 2 * n_matrix * seq + 4 * layers * seq * seq * d


def test_llama_tiny_flops_match_the_analytic_count() -> None:
    g = model_graph("llama-tiny", seq_len=64)
    matrix = sum(d["flop"] for _, d in g.nodes(data=True) if d["op"] in ("matmul", "attention"))
    assert matrix == analytic_prefill_flop("llama-tiny", 64)


@pytest.mark.slow
def test_llama_3_8b_prefill_total_flops_within_2_percent_of_analytic() -> None:
    seq = 2048
    g = model_graph("llama-3-8b", phase="prefill", batch=1, seq_len=seq)
    total = sum(d["flop"] for _, d in g.nodes(data=True))
    c = model_config("llama-3-8b")
    n_non_embedding = c.params - c.config["vocab_size"] * c.config["d_model"]
    analytic = 2 * n_non_embedding * seq + 4 * c.config["n_layers"] * seq * seq * c.config["d_model"]
    assert abs(total - analytic) <= 0.02 * analytic
    matrix = sum(d["flop"] for _, d in g.nodes(data=True) if d["op"] in ("matmul", "attention"))
    assert matrix == analytic_prefill_flop("llama-3-8b", seq)
