"""Mixtral-style sparse Mixture-of-Experts decoder in plain torch.

The Llama decoder of :mod:`hetsim.models.llama` (RMSNorm, RoPE, grouped-query attention, a
preallocated KV cache written in place) with each block's SwiGLU MLP replaced by a sparse MoE
block, after Jiang et al. 2024, "Mixtral of Experts" (arXiv:2401.04088), and the reference code of
``mistralai/mistral-src`` (``moe.py``):

* a router ``gate`` (a linear ``d_model → n_experts``, no bias) scores every token;
* the ``top_k`` best logits are kept and softmaxed into the token's gating weights;
* ``n_experts`` SwiGLU experts ``experts.E`` (``w2(silu(w1(x)) * w3(x))``, each ``ffn_dim`` wide);
  each expert runs only on the tokens routed to it;
* the combine sums each token's ``top_k`` expert outputs weighted by its gating weights.

Module paths follow the Hugging Face checkpoint: ``layers.N.block_sparse_moe.gate`` and
``layers.N.block_sparse_moe.experts.E.w1`` (``w2``, ``w3``).

**Balanced routing for capture.** Which expert a token goes to depends on the data, and a graph
captured on meta or fake tensors has no data, so under ``torch.export`` (and on meta or fake
inputs, or when ``MixtralConfig.balanced_routing`` is set) the block assumes *balanced routing*:
the ``tokens · top_k`` (token, slot) assignments, in token-major order, are cut into
``n_experts`` contiguous slices, so expert ``E`` gets ``tokens · top_k / n_experts`` of them (the
slice sizes differ by at most one when that does not divide; an expert with an empty slice runs
nothing and reads no weights). The gating weights are still the top-k softmax of the router's
logits; only the experts' identity is replaced. Total expert FLOPs equal those of any routing
(every assignment is processed once); what balance hides is load imbalance between experts.
On real tensors in eager mode the block routes each token to its own top-k experts.

Examples
--------
>>> import torch
>>> cfg = MixtralConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=48,
...                     n_experts=4, top_k=2)
>>> model = Mixtral(cfg).eval()
>>> ids = torch.randint(0, 64, (2, 5))
>>> logits, cache = model(ids, use_cache=True)
>>> logits.shape, cache[0][0].shape
(torch.Size([2, 5, 64]), torch.Size([2, 2, 5, 8]))
>>> cache = empty_cache(cfg, 2, 5)  # (uninitialised) room for 5 past tokens and one new one
>>> step, same = model(ids[:, :1], past_key_values=cache)  # writes slot 5 of every layer in place
>>> step.shape, same[1][0] is cache[1][0], cache[1][0].shape
(torch.Size([2, 1, 64]), True, torch.Size([2, 2, 6, 8]))
>>> [n for n, _ in model.layers[0].block_sparse_moe.named_parameters()][:4]
['gate.weight', 'experts.0.w1.weight', 'experts.0.w2.weight', 'experts.0.w3.weight']
>>> balanced_slices(n_assignments=10, n_experts=4)
[(0, 2), (2, 5), (5, 7), (7, 10)]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from hetsim.models.llama import Block, Llama, LlamaConfig, empty_cache
from torch import nn

__all__ = ["Expert", "Mixtral", "MixtralBlock", "MixtralConfig", "SparseMoeBlock", "balanced_slices", "empty_cache"]


@dataclass(frozen=True)
class MixtralConfig(LlamaConfig):
    """Sizes of a Mixtral model: :class:`~hetsim.models.llama.LlamaConfig` plus the experts.

    ``n_experts`` experts per layer (``num_local_experts``), ``top_k`` of them per token
    (``num_experts_per_tok``). ``balanced_routing`` forces the capture-time balanced dispatch in
    eager mode too (see the module docstring).
    """

    n_experts: int = 8
    top_k: int = 2
    balanced_routing: bool = False


def balanced_slices(n_assignments: int, n_experts: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each expert's slice of ``n_assignments`` token-major assignments.

    Expert ``e`` gets ``[e·n // E, (e+1)·n // E)``: ``n / E`` each when ``E`` divides ``n``, else
    sizes differing by at most one (some empty when ``n < E``, e.g. a one-token decode step).
    """
    return [(e * n_assignments // n_experts, (e + 1) * n_assignments // n_experts) for e in range(n_experts)]


class Expert(nn.Module):
    """One SwiGLU expert: ``w2(silu(w1(x)) * w3(x))`` (Mixtral's names for gate, down, up)."""

    def __init__(self, cfg: MixtralConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=False)
        self.w2 = nn.Linear(cfg.ffn_dim, cfg.d_model, bias=False)
        self.w3 = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def _without_data(x: torch.Tensor) -> bool:
    """True when ``x`` has no values to route on (export, meta or fake tensors)."""
    from torch._subclasses.fake_tensor import is_fake

    return torch.compiler.is_compiling() or x.device.type == "meta" or is_fake(x)


class SparseMoeBlock(nn.Module):
    """Router, top-k softmax gating, ``n_experts`` experts and the weighted combine."""

    def __init__(self, cfg: MixtralConfig) -> None:
        super().__init__()
        self.top_k, self.balanced = cfg.top_k, cfg.balanced_routing
        self.gate = nn.Linear(cfg.d_model, cfg.n_experts, bias=False)
        self.experts = nn.ModuleList(Expert(cfg) for _ in range(cfg.n_experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = x.reshape(b * t, d)
        logits = self.gate(h)
        top, chosen = torch.topk(logits, self.top_k, dim=-1)
        weights = F.softmax(top, dim=-1, dtype=torch.float).to(h.dtype)
        if self.balanced or _without_data(h):
            out = self.balanced_experts(h, weights)
        else:
            out = self.routed_experts(h, weights, chosen)
        return out.view(b, t, d)

    def balanced_experts(self, h: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Experts under balanced routing: equal slices of the token-major assignments."""
        n, d = h.shape
        assigned = h.unsqueeze(1).expand(n, self.top_k, d).reshape(n * self.top_k, d)
        outs = [expert(assigned[start:end])
                for expert, (start, end) in zip(self.experts, balanced_slices(n * self.top_k, len(self.experts)),
                                                strict=True) if end > start]
        combined = torch.cat(outs).view(n, self.top_k, d)
        return (combined * weights.unsqueeze(-1)).sum(dim=1)

    def routed_experts(self, h: torch.Tensor, weights: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        """Experts on the tokens the router chose (``chosen``: ``(tokens, top_k)`` expert ids)."""
        out = torch.zeros_like(h)
        for e, expert in enumerate(self.experts):
            token, slot = torch.where(chosen == e)
            if token.numel():
                out.index_add_(0, token, expert(h[token]) * weights[token, slot, None])
        return out


class MixtralBlock(Block):
    """Pre-norm decoder block: Llama attention, then the sparse MoE block."""

    ffn_name = "block_sparse_moe"

    def ffn(self, cfg: MixtralConfig) -> nn.Module:
        return SparseMoeBlock(cfg)


class Mixtral(Llama):
    """Mixtral causal language model; ``forward`` and the KV cache are :class:`~hetsim.models.llama.Llama`'s."""

    block = MixtralBlock
