"""Llama-family decoder (Llama-2, Llama-3, Mistral) in plain torch.

Pre-norm decoder blocks with RMSNorm, rotary position embeddings (RoPE), grouped-query attention
(``n_kv_heads`` key/value heads shared by ``n_heads`` query heads) and a SwiGLU MLP; an untied
``lm_head`` unless ``tie_embeddings``. Attention runs through
:func:`torch.nn.functional.scaled_dot_product_attention` with ``enable_gqa=True``, so key/value heads
are broadcast by the kernel rather than copied.

Decode follows the Hugging Face ``DynamicCache`` convention: the past keys and values of every
layer come in as forward inputs, the new token's keys and values are concatenated onto them
(``torch.cat``), and the grown cache is returned with the logits. Positions continue from the
cache length. Mistral's sliding window is not modelled: attention covers the whole context.

Examples
--------
>>> import torch
>>> cfg = LlamaConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=48)
>>> model = Llama(cfg).eval()
>>> ids = torch.randint(0, 64, (2, 5))
>>> logits, cache = model(ids, use_cache=True)
>>> logits.shape, cache[0][0].shape
(torch.Size([2, 5, 64]), torch.Size([2, 2, 5, 8]))
>>> logits, cache = model(ids[:, :1], past_key_values=cache)
>>> logits.shape, cache[1][1].shape
(torch.Size([2, 1, 64]), torch.Size([2, 2, 6, 8]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

KV = tuple[torch.Tensor, torch.Tensor]
KVCache = list[KV]


@dataclass(frozen=True)
class LlamaConfig:
    """Sizes of a Llama-family model (names follow the published configs)."""

    vocab_size: int = 32000
    d_model: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: int = 32
    ffn_dim: int = 11008
    max_positions: int = 4096
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = False

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RotaryEmbedding(nn.Module):
    """cos/sin tables for positions ``start .. start + length`` (computed per call, like HF)."""

    def __init__(self, head_dim: int, theta: float) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta

    def forward(self, x: torch.Tensor, start: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        steps = torch.arange(0, self.head_dim, 2, device=x.device, dtype=torch.float32)
        inv_freq = 1.0 / (self.theta ** (steps / self.head_dim))
        pos = torch.arange(start, start + length, device=x.device, dtype=torch.float32)
        freqs = torch.outer(pos, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, cfg.n_heads * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                past: KV | None) -> tuple[torch.Tensor, KV]:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if past is not None:
            k = torch.cat((past[0], k), dim=2)
            v = torch.cat((past[1], v), dim=2)
        # one new token attends to every cached one; a prompt attends causally to itself
        y = F.scaled_dot_product_attention(q, k, v, is_causal=past is None and t > 1,
                                           enable_gqa=self.n_kv_heads != self.n_heads)
        y = y.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim)
        return self.o_proj(y), (k, v)


class MLP(nn.Module):
    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=False)
        self.up_proj = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=False)
        self.down_proj = nn.Linear(cfg.ffn_dim, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    """Pre-norm decoder block: attention, then the feed-forward part named ``ffn_name``.

    Subclasses change the feed-forward part (``ffn``) and its attribute name, which is the module
    path captured graphs show (``layers.3.mlp``).
    """

    ffn_name = "mlp"

    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.input_layernorm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        setattr(self, self.ffn_name, self.ffn(cfg))

    def ffn(self, cfg: LlamaConfig) -> nn.Module:
        return MLP(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                past: KV | None) -> tuple[torch.Tensor, KV]:
        a, kv = self.self_attn(self.input_layernorm(x), cos, sin, past)
        x = x + a
        return x + getattr(self, self.ffn_name)(self.post_attention_layernorm(x)), kv


class Llama(nn.Module):
    """Llama-family causal language model: ``forward(input_ids, past_key_values=None, use_cache=False)``.

    Returns the logits, or ``(logits, cache)`` when a cache is passed or ``use_cache`` is set; the
    cache is a list with one ``(keys, values)`` pair of shape ``(batch, n_kv_heads, length,
    head_dim)`` per layer.
    """

    block = Block  # the decoder block (Mixtral swaps in its sparse-MoE block)

    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.rotary = RotaryEmbedding(cfg.head_dim, cfg.rope_theta)
        self.layers = nn.ModuleList(self.block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def forward(self, input_ids: torch.Tensor, past_key_values: KVCache | None = None,
                use_cache: bool = False) -> torch.Tensor | tuple[torch.Tensor, KVCache]:
        x = self.embed_tokens(input_ids)
        start = 0 if past_key_values is None else past_key_values[0][0].shape[2]
        cos, sin = self.rotary(x, start, input_ids.shape[1])
        cache: KVCache = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, cos, sin, None if past_key_values is None else past_key_values[i])
            cache.append(kv)
        logits = self.lm_head(self.norm(x))
        if past_key_values is None and not use_cache:
            return logits
        return logits, cache


def empty_cache(cfg: LlamaConfig, batch: int, length: int, *, device: torch.device | str | None = None,
                dtype: torch.dtype | None = None) -> KVCache:
    """A KV cache of ``length`` past tokens per sequence (uninitialised; for shapes and capture)."""
    shape = (batch, cfg.n_kv_heads, length, cfg.head_dim)
    return [(torch.empty(shape, device=device, dtype=dtype), torch.empty(shape, device=device, dtype=dtype))
            for _ in range(cfg.n_layers)]
