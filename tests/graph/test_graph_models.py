"""The plain-torch reference models: decode with a KV cache equals prefill, parameter layout."""

from __future__ import annotations

import pytest
import torch
from hetsim.models.bert import Bert, BertConfig
from hetsim.models.gpt2 import GPT2, GPT2Config
from hetsim.models.llama import Llama, LlamaConfig


def decoders() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "gpt2": GPT2(GPT2Config(vocab_size=50, max_positions=32, d_model=32, n_layers=2, n_heads=4, ffn_dim=64)),
        "llama-gqa": Llama(LlamaConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=48)),
        "llama-mha": Llama(LlamaConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, n_kv_heads=4, ffn_dim=48)),
    }


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "llama-mha"])
def test_decode_with_cache_equals_full_prefill(name: str) -> None:
    model = decoders()[name].double().eval()
    ids = torch.randint(0, 50, (2, 9))
    full = model(ids)
    logits, prompt = model(ids[:, :8], use_cache=True)
    torch.testing.assert_close(logits, full[:, :8])
    cache = [tuple(torch.cat((t, torch.zeros_like(t[:, :, :1])), dim=2) for t in kv) for kv in prompt]  # + room
    step, written = model(ids[:, 8:], past_key_values=cache)
    torch.testing.assert_close(step, full[:, 8:])
    assert written[0][0] is cache[0][0] and cache[0][0].shape[2] == 9  # written in place


def test_causal_prefill_ignores_future_tokens() -> None:
    model = decoders()["llama-gqa"].double().eval()
    ids = torch.randint(0, 50, (1, 6))
    other = ids.clone()
    other[0, -1] = (ids[0, -1] + 1) % 50
    torch.testing.assert_close(model(ids)[:, :5], model(other)[:, :5])


def test_bert_attends_both_ways_and_pools_the_first_token() -> None:
    torch.manual_seed(0)
    model = Bert(BertConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, ffn_dim=64, max_positions=16)).eval()
    ids = torch.randint(0, 50, (1, 6))
    other = ids.clone()
    other[0, -1] = (ids[0, -1] + 1) % 50
    hidden, pooled = model(ids)
    assert not torch.allclose(hidden[:, 0], model(other)[0][:, 0])  # bidirectional
    torch.testing.assert_close(pooled, torch.tanh(model.pooler(hidden[:, 0])))


def test_gpt2_lm_head_is_tied_and_llama_is_not() -> None:
    models = decoders()
    assert models["gpt2"].lm_head.weight is models["gpt2"].wte.weight
    assert models["llama-gqa"].lm_head.weight is not models["llama-gqa"].embed_tokens.weight
    tied = Llama(LlamaConfig(vocab_size=50, d_model=32, n_layers=1, n_heads=4, n_kv_heads=2, ffn_dim=48,
                             tie_embeddings=True))
    assert tied.lm_head.weight is tied.embed_tokens.weight
