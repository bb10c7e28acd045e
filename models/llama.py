"""Llama-family decoder (Llama-2, Llama-3, Mistral) in plain torch.

Pre-norm decoder blocks with RMSNorm, rotary position embeddings (RoPE), grouped-query attention
(``n_kv_heads`` key/value heads shared by ``n_heads`` query heads) and a SwiGLU MLP; an untied
``lm_head`` unless ``tie_embeddings``. Attention runs through
:func:`torch.nn.functional.scaled_dot_product_attention` with ``enable_gqa=True``, so key/value heads
are broadcast by the kernel rather than copied.

Decode follows the Hugging Face ``StaticCache`` convention, as serving engines do: the KV cache is
preallocated (:func:`empty_cache`: room for the past tokens plus the new ones), each layer writes
only the new tokens' keys and values into it in place (``index_copy_`` at positions
``[start, start + t)``), and attention reads the filled prefix ``[0, start + t)``. ``start``
(``cache_position``) defaults to the cache length less the new tokens: a cache from
:func:`empty_cache` ``(length)`` holds ``length`` past tokens and the new token goes right after
them. Positions continue from ``start``. Prefill without a cache returns a new one of the prompt's
length; given a cache it fills it in place. Mistral's sliding window is not modelled: attention
covers the whole context.

Examples
--------
>>> import torch
>>> cfg = LlamaConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=48)
>>> model = Llama(cfg).eval()
>>> ids = torch.randint(0, 64, (2, 5))
>>> logits, cache = model(ids, use_cache=True)
>>> logits.shape, cache[0][0].shape
(torch.Size([2, 5, 64]), torch.Size([2, 2, 5, 8]))
>>> cache = empty_cache(cfg, 2, 0, new_tokens=6)  # room for the prompt and one generated token
>>> logits, cache = model(ids, past_key_values=cache, cache_position=0)  # prefill fills slots 0..4
>>> step, same = model(ids[:, :1], past_key_values=cache, cache_position=5)  # writes slot 5 in place
>>> step.shape, same[1][1].shape, same[1][1] is cache[1][1]
(torch.Size([2, 1, 64]), torch.Size([2, 2, 6, 8]), True)
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


def write_cache(past: KV, k: torch.Tensor, v: torch.Tensor, slots: torch.Tensor) -> KV:
    """Write the new tokens' ``k`` and ``v`` into the preallocated ``past`` in place, at positions ``slots``.

    Returns the cache tensors themselves (``index_copy_`` returns its destination), so what reads
    them afterwards depends on the write.

    Examples
    --------
    >>> past = (torch.zeros(1, 1, 3, 2), torch.zeros(1, 1, 3, 2))
    >>> keys, _ = write_cache(past, torch.ones(1, 1, 1, 2), torch.ones(1, 1, 1, 2), torch.tensor([1]))
    >>> keys is past[0], keys[0, 0, :, 0].tolist()
    (True, [0.0, 1.0, 0.0])
    """
    return past[0].index_copy_(2, slots, k), past[1].index_copy_(2, slots, v)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int, *, enable_gqa: bool = False) -> torch.Tensor:
    """SDPA of ``t`` new queries at positions ``start .. start + t`` over keys ``0 .. start + t``, causally.

    Keys and values past ``start + t`` (a cache's empty slots) are sliced off. One new token
    attends to every key (no mask); a prompt from position 0 uses ``is_causal``; a chunk after
    cached tokens gets the explicit bottom-right causal mask (``is_causal`` aligns top-left).

    Examples
    --------
    >>> q, kv = torch.randn(1, 2, 1, 4), torch.randn(1, 2, 6, 4)
    >>> torch.allclose(attend(q, kv, kv, 2), attend(q, kv[:, :, :3], kv[:, :, :3], 2))  # slots 3..5 unused
    True
    """
    t = q.shape[2]
    if k.shape[2] > start + t:
        k, v = k[:, :, :start + t], v[:, :, :start + t]
    mask = None
    if t > 1 and start > 0:
        mask = torch.ones(t, start + t, dtype=torch.bool, device=q.device).tril(start)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=t > 1 and start == 0,
                                          enable_gqa=enable_gqa)


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

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, past: KV | None,
                slots: torch.Tensor | None = None, start: int = 0) -> tuple[torch.Tensor, KV]:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        kv = (k, v) if past is None or slots is None else write_cache(past, k, v, slots)
        y = attend(q, *kv, start, enable_gqa=self.n_kv_heads != self.n_heads)
        y = y.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim)
        return self.o_proj(y), kv


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

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, past: KV | None,
                slots: torch.Tensor | None = None, start: int = 0) -> tuple[torch.Tensor, KV]:
        a, kv = self.self_attn(self.input_layernorm(x), cos, sin, past, slots, start)
        x = x + a
        return x + getattr(self, self.ffn_name)(self.post_attention_layernorm(x)), kv


class Llama(nn.Module):
    """Llama-family causal LM: ``forward(input_ids, past_key_values=None, use_cache=False, cache_position=None)``.

    Returns the logits, or ``(logits, cache)`` when a cache is passed or ``use_cache`` is set; the
    cache is a list with one ``(keys, values)`` pair of shape ``(batch, n_kv_heads, capacity,
    head_dim)`` per layer. A given cache is written in place at ``cache_position ..
    cache_position + t`` (default: its last ``t`` slots) and returned.
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

    def forward(self, input_ids: torch.Tensor, past_key_values: KVCache | None = None, use_cache: bool = False,
                cache_position: int | None = None) -> torch.Tensor | tuple[torch.Tensor, KVCache]:
        x = self.embed_tokens(input_ids)
        t = input_ids.shape[1]
        start, slots = cache_slots(past_key_values, t, cache_position, input_ids.device)
        cos, sin = self.rotary(x, start, t)
        cache: KVCache = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, cos, sin, None if past_key_values is None else past_key_values[i], slots, start)
            cache.append(kv)
        logits = self.lm_head(self.norm(x))
        if past_key_values is None and not use_cache:
            return logits
        return logits, cache


def cache_slots(cache: KVCache | None, t: int, cache_position: int | None,
                device: torch.device) -> tuple[int, torch.Tensor | None]:
    """``(start, slots)``: where ``t`` new tokens go in ``cache`` (``slots``: ``start .. start + t``).

    ``start`` is ``cache_position``, by default the cache's capacity less ``t`` (0 without a cache,
    and then no slots); a position outside the cache raises a one-line ``ValueError``.

    Examples
    --------
    >>> cache = [(torch.empty(1, 1, 6, 2), torch.empty(1, 1, 6, 2))]
    >>> cache_slots(cache, 1, None, torch.device("cpu"))
    (5, tensor([5]))
    >>> cache_slots(None, 4, None, torch.device("cpu"))
    (0, None)
    """
    if cache is None:
        return 0, None
    capacity = cache[0][0].shape[2]
    start = capacity - t if cache_position is None else cache_position
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= capacity - t:
        raise ValueError(f"cache_position: got {cache_position!r}, expected an integer in 0..{capacity - t} "
                         f"({t} new tokens in a cache of {capacity})")
    return start, torch.arange(start, start + t, device=device)


def empty_cache(cfg: LlamaConfig, batch: int, length: int, *, new_tokens: int = 1,
                device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> KVCache:
    """A preallocated KV cache: ``length`` past tokens plus room for ``new_tokens`` per sequence.

    Uninitialised (for shapes and capture, or for a prefill to fill); the default room is one
    decode step, which then writes slot ``length``.

    Examples
    --------
    >>> cfg = LlamaConfig(d_model=8, n_layers=1, n_heads=2, n_kv_heads=1)
    >>> len(cache := empty_cache(cfg, 2, 4, device="meta")), cache[0][0].shape
    (1, torch.Size([2, 1, 5, 4]))
    """
    shape = (batch, cfg.n_kv_heads, length + new_tokens, cfg.head_dim)
    return [(torch.empty(shape, device=device, dtype=dtype), torch.empty(shape, device=device, dtype=dtype))
            for _ in range(cfg.n_layers)]
