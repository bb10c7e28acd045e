"""GPT-2 in plain torch.

Learned token and position embeddings, pre-LayerNorm decoder blocks with fused QKV projection,
causal multi-head attention through :func:`torch.nn.functional.scaled_dot_product_attention`, a GELU
(tanh approximation, GPT-2's ``gelu_new``) MLP and an ``lm_head`` tied to the token embedding.
``nn.Linear`` stands in for GPT-2's ``Conv1D`` (same maths, transposed weight).

Decode follows the Hugging Face ``StaticCache`` convention, as :mod:`hetsim.models.llama` does: a
preallocated cache (:func:`empty_cache`) comes in as a forward input, each layer writes the new
tokens' keys and values into it in place (``index_copy_`` at positions ``[start, start + t)``,
by default its last ``t`` slots; ``cache_position`` sets ``start``), attention reads the filled
prefix, and the cache is returned with the logits. Prefill without a cache returns a new one.

Examples
--------
>>> import torch
>>> cfg = GPT2Config(vocab_size=64, max_positions=16, d_model=32, n_layers=2, n_heads=4)
>>> model = GPT2(cfg).eval()
>>> ids = torch.randint(0, 64, (2, 5))
>>> logits, cache = model(ids, use_cache=True)
>>> logits.shape, cache[0][0].shape
(torch.Size([2, 5, 64]), torch.Size([2, 4, 5, 8]))
>>> cache = empty_cache(cfg, 2, 5)  # 5 past tokens and room for one more
>>> for (k, v), (k5, v5) in zip(cache, model(ids, use_cache=True)[1]):
...     k[:, :, :5], v[:, :, :5] = k5, v5
>>> step, same = model(ids[:, :1], past_key_values=cache)  # position 5, written in place
>>> step.shape, same[0][0] is cache[0][0]
(torch.Size([2, 1, 64]), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from hetsim.models.llama import attend, cache_slots, write_cache
from torch import nn

KV = tuple[torch.Tensor, torch.Tensor]
KVCache = list[KV]


@dataclass(frozen=True)
class GPT2Config:
    """Sizes of a GPT-2 model (defaults: GPT-2 small, 124M)."""

    vocab_size: int = 50257
    max_positions: int = 1024
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    ffn_dim: int = 3072
    norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


class Attention(nn.Module):
    def __init__(self, cfg: GPT2Config) -> None:
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.c_attn = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.c_proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor, past: KV | None, slots: torch.Tensor | None = None,
                start: int = 0) -> tuple[torch.Tensor, KV]:
        b, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_heads, self.head_dim).transpose(1, 2) for z in (q, k, v))
        kv = (k, v) if past is None or slots is None else write_cache(past, k, v, slots)
        y = attend(q, *kv, start)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, d)), kv


class MLP(nn.Module):
    def __init__(self, cfg: GPT2Config) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.d_model, cfg.ffn_dim)
        self.c_proj = nn.Linear(cfg.ffn_dim, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg: GPT2Config) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, past: KV | None, slots: torch.Tensor | None = None,
                start: int = 0) -> tuple[torch.Tensor, KV]:
        a, kv = self.attn(self.ln_1(x), past, slots, start)
        x = x + a
        return x + self.mlp(self.ln_2(x)), kv


class GPT2(nn.Module):
    """GPT-2 language model: ``forward(input_ids, past_key_values=None, use_cache=False, cache_position=None)``.

    Returns the logits, or ``(logits, cache)`` when a cache is passed or ``use_cache`` is set; the
    cache holds one ``(keys, values)`` pair of shape ``(batch, n_heads, capacity, head_dim)`` per
    layer, written in place at ``cache_position .. cache_position + t`` (default: its last ``t`` slots).
    """

    def __init__(self, cfg: GPT2Config) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.max_positions, cfg.d_model)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, input_ids: torch.Tensor, past_key_values: KVCache | None = None, use_cache: bool = False,
                cache_position: int | None = None) -> torch.Tensor | tuple[torch.Tensor, KVCache]:
        t = input_ids.shape[1]
        start, slots = cache_slots(past_key_values, t, cache_position, input_ids.device)
        pos = torch.arange(start, start + t, device=input_ids.device) if slots is None else slots
        x = self.wte(input_ids) + self.wpe(pos)
        cache: KVCache = []
        for i, block in enumerate(self.h):
            x, kv = block(x, None if past_key_values is None else past_key_values[i], slots, start)
            cache.append(kv)
        logits = self.lm_head(self.ln_f(x))
        if past_key_values is None and not use_cache:
            return logits
        return logits, cache


def empty_cache(cfg: GPT2Config, batch: int, length: int, *, new_tokens: int = 1,
                device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> KVCache:
    """A preallocated KV cache: ``length`` past tokens plus room for ``new_tokens`` per sequence.

    Uninitialised (for shapes and capture, or for a prefill to fill); the default room is one
    decode step, which then writes slot ``length``.

    Examples
    --------
    >>> len(cache := empty_cache(GPT2Config(d_model=8, n_layers=1, n_heads=2), 2, 4, device="meta")), cache[0][0].shape
    (1, torch.Size([2, 2, 5, 4]))
    """
    shape = (batch, cfg.n_heads, length + new_tokens, cfg.head_dim)
    return [(torch.empty(shape, device=device, dtype=dtype), torch.empty(shape, device=device, dtype=dtype))
            for _ in range(cfg.n_layers)]
