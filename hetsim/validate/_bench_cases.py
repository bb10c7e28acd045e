"""The microbenchmark grid: which ATen ops :mod:`hetsim.validate.microbench` times, at which sizes.

Each :class:`Case` builds one call of one ATen overload on real tensors, laid out as the reference
models (``models/``) lay them out: q, k and v are transposed views as after a head split, the KV
cache grows along dim 2, the rotary tables broadcast against (B, H, T, hd) activations. Sizes are
log-spaced: element counts from 1e2 to ~3e7 for the memory-bound ops (fp32: 400 B to 126 MB, so
from L1 through L2/L3 to DRAM, whose effects the fitted curves keep), GEMMs from (1×64×64) to
(2048×768×3072) and the GPT-2 ``lm_head``, attention from (T=16) to (T=1024) plus decode steps.

Every target also gets a *tiny* case (a handful of elements): its time is the op's fixed cost
(dispatch), which the fit subtracts before turning times into rates.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

#: ``"quick"`` or ``"full"``
GRIDS = ("quick", "full")


@dataclass(frozen=True)
class Call:
    """One op call: ``op(*args, **kwargs)``."""

    op: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    """One microbenchmark: ``build(device, dtype)`` makes the :class:`Call` (tensors are made lazily).

    ``target`` is the op's name as capture writes it (``aten.linear.default``); ``variant`` tells
    kernels of one target apart that run at different speeds (``approximate=tanh`` for GELU).
    """

    target: str
    label: str
    build: Callable[[Any, Any], Call]
    tiny: bool = False
    variant: str = ""
    dtype: str = "fp32"


def _aten(name: str) -> Any:
    import torch

    _, packet, overload = name.split(".")
    return getattr(getattr(torch.ops.aten, packet), overload)


def _sizes(grid: str, lo: float = 1e2, hi: float = 3.2e7) -> list[int]:
    """Log-spaced element counts: 3 per decade (full) or 1.5 per decade (quick)."""
    step = 1 / 3 if grid == "full" else 2 / 3
    count = math.floor(math.log10(hi / lo) / step + 1e-9) + 1
    return sorted({round(lo * 10 ** (i * step)) for i in range(count)})


def _rows(n: int, d: int) -> tuple[int, int]:
    """A (rows, d) shape of about ``n`` elements (d shrinks for tiny n)."""
    d = min(d, n)
    return max(1, n // d), d


def _rand(shape: Iterable[int], device: Any, dtype: Any) -> Any:
    """Uniform in [-1, 1) (one fast pass; normal samples take seconds for the big sizes)."""
    import torch

    return torch.empty(tuple(shape), device=device, dtype=dtype).uniform_(-1.0, 1.0)


# ---------------------------------------------------------------- memory-bound ops, by element count


def _unary(target: str, extra: tuple = (), kwargs: dict | None = None, variant: str = "",
           positive: bool = False) -> Callable[[int], Case]:
    def case(n: int, tiny: bool = False) -> Case:
        def build(device: Any, dtype: Any) -> Call:
            x = _rand(_rows(n, 768), device, dtype)
            return Call(_aten(target), (x.abs() + 0.5 if positive else x, *extra), dict(kwargs or {}))
        return Case(target, f"{_rows(n, 768)}", build, tiny, variant)
    return case


def _binary(target: str, broadcast: bool = False) -> Callable[[int], Case]:
    def case(n: int, tiny: bool = False) -> Case:
        shape = _rows(n, 768)
        other = shape[1:] if broadcast else shape

        def build(device: Any, dtype: Any) -> Call:
            y = _rand(other, device, dtype)
            return Call(_aten(target), (_rand(shape, device, dtype), y.abs() + 0.5 if "div" in target else y))
        return Case(target, f"{shape}{'+bcast' if broadcast else ''}", build, tiny)
    return case


def _norm(target: str, d: int) -> Callable[[int], Case]:
    def case(n: int, tiny: bool = False) -> Case:
        rows, dd = _rows(n, d)

        def build(device: Any, dtype: Any) -> Call:
            x, w = _rand((rows, dd), device, dtype), _rand((dd,), device, dtype)
            if target == "aten.layer_norm.default":
                return Call(_aten(target), (x, [dd], w, _rand((dd,), device, dtype), 1e-5))
            return Call(_aten(target), (x, [dd], w, 1e-5))
        return Case(target, f"({rows}, {dd})", build, tiny)
    return case


def _softmax(target: str) -> Callable[[int], Case]:
    def case(n: int, tiny: bool = False) -> Case:
        rows, t = _rows(n, 128 if n < 1e6 else 1024)

        def build(device: Any, dtype: Any) -> Call:
            x = _rand((rows, t), device, dtype)
            return Call(_aten(target), (x, -1, False) if target.startswith("aten._") else (x, -1))
        return Case(target, f"({rows}, {t})", build, tiny)
    return case


def _mean(n: int, tiny: bool = False) -> Case:
    shape = _rows(n, 768)

    def build(device: Any, dtype: Any) -> Call:
        return Call(_aten("aten.mean.dim"), (_rand(shape, device, dtype), [-1], True))
    return Case("aten.mean.dim", f"{shape}", build, tiny)


def _outer(n: int, tiny: bool = False) -> Case:
    rows, d = _rows(n, 64)

    def build(device: Any, dtype: Any) -> Call:
        return Call(_aten("aten.outer.default"), (_rand((rows,), device, dtype), _rand((d,), device, dtype)))
    return Case("aten.outer.default", f"{rows}x{d}", build, tiny)


def _pow_scalar(n: int, tiny: bool = False) -> Case:
    def build(device: Any, dtype: Any) -> Call:
        return Call(_aten("aten.pow.Scalar"), (10000.0, _rand((n,), device, dtype)))
    return Case("aten.pow.Scalar", f"({n},)", build, tiny)


def _clone(target: str, transposed: bool = False) -> Callable[[int], Case]:
    def case(n: int, tiny: bool = False) -> Case:
        rows, d = _rows(n, 768)
        if transposed and rows < 2:  # a (1, d) transpose is contiguous: the op would be a view
            rows, d = 2, max(2, n // 2)

        def build(device: Any, dtype: Any) -> Call:
            x = _rand((d, rows), device, dtype).t() if transposed else _rand((rows, d), device, dtype)
            if target == "aten._to_copy.default":
                import torch

                return Call(_aten(target), (x,), {"dtype": torch.bfloat16})
            if target == "aten.reshape.default":
                return Call(_aten(target), (x, [-1]))
            return Call(_aten(target), (x,))
        return Case(target, f"({rows}, {d}){'.T' if transposed else ''}", build, tiny)
    return case


def _cat_last(n: int, tiny: bool = False) -> Case:
    rows, d = _rows(max(2, n // 2), 64)

    def build(device: Any, dtype: Any) -> Call:
        return Call(_aten("aten.cat.default"), ([_rand((rows, d), device, dtype), _rand((rows, d), device, dtype)], -1))
    return Case("aten.cat.default", f"2x({rows}, {d}) dim -1", build, tiny)


def _cat_kv(heads: int, past: int) -> Case:
    def build(device: Any, dtype: Any) -> Call:
        old, new = _rand((1, heads, past, 64), device, dtype), _rand((1, heads, 1, 64), device, dtype)
        return Call(_aten("aten.cat.default"), ([old, new], 2))
    return Case("aten.cat.default", f"kv (1, {heads}, {past}+1, 64)", build)


def _arange(target: str) -> Callable[[int], Case]:
    def case(n: int, tiny: bool = False) -> Case:
        def build(device: Any, dtype: Any) -> Call:
            kw = {"device": device}
            if target == "aten.arange.default":
                return Call(_aten(target), (n,), kw)
            if target == "aten.arange.start":
                return Call(_aten(target), (0, n), kw)
            return Call(_aten(target), (0, 2 * n, 2), dict(kw, dtype=dtype))
        return Case(target, f"{n}", build, tiny)
    return case


def _zeros_like(n: int, tiny: bool = False) -> Case:
    def build(device: Any, dtype: Any) -> Call:
        return Call(_aten("aten.zeros_like.default"), (_rand((n,), device, dtype),))
    return Case("aten.zeros_like.default", f"({n},)", build, tiny)


def copy_into(nbytes: int) -> Case:
    """``dst.copy_(src)`` into a preallocated fp32 tensor: streams DRAM without page faults (the
    memory bandwidth of the profile)."""
    n = nbytes // 4

    def build(device: Any, dtype: Any) -> Call:
        import torch

        return Call(_aten("aten.copy_.default"), (torch.empty(n, device=device, dtype=torch.float32),
                                                   _rand((n,), device, torch.float32)))
    return Case("aten.copy_.default", f"({n},)", build, n <= 8)


def _embedding(vocab: int, d: int, tokens: int) -> Case:
    def build(device: Any, dtype: Any) -> Call:
        import torch

        ids = torch.randint(0, vocab, (1, tokens), device=device)
        return Call(_aten("aten.embedding.default"), (_rand((vocab, d), device, dtype), ids))
    return Case("aten.embedding.default", f"({vocab}, {d})[{tokens}]", build, tokens <= 2)


#: memory-bound targets over element counts: target -> case factories (variants pooled by the fit
#: unless ``variant`` is set)
def _elementwise_families() -> list[Callable[..., Case]]:
    return [
        _binary("aten.add.Tensor"), _binary("aten.add.Tensor", broadcast=True),
        _binary("aten.mul.Tensor"), _binary("aten.mul.Tensor", broadcast=True),
        _binary("aten.sub.Tensor"), _binary("aten.div.Tensor"),
        _unary("aten.gelu.default"), _unary("aten.gelu.default", kwargs={"approximate": "tanh"},
                                             variant="approximate=tanh"),
        _unary("aten.silu.default"), _unary("aten.neg.default"), _unary("aten.tanh.default"),
        _unary("aten.cos.default"), _unary("aten.sin.default"), _unary("aten.exp.default"),
        _unary("aten.relu.default"), _unary("aten.sigmoid.default"),
        _unary("aten.rsqrt.default", positive=True), _unary("aten.reciprocal.default", positive=True),
        _unary("aten.pow.Tensor_Scalar", (2,)), _pow_scalar, _outer,
        _norm("aten.layer_norm.default", 768), _norm("aten.rms_norm.default", 768),
        _softmax("aten._softmax.default"), _softmax("aten.softmax.int"), _mean,
        _clone("aten.clone.default"), _clone("aten.contiguous.default", transposed=True),
        _clone("aten.reshape.default", transposed=True), _clone("aten._to_copy.default"), _cat_last,
        _arange("aten.arange.default"), _arange("aten.arange.start"), _arange("aten.arange.start_step"),
        _zeros_like,
    ]


# ---------------------------------------------------------------- matrix ops, by FLOPs


def _linear(m: int, k: int, n: int, bias: bool = True, dtype: str = "fp32") -> Case:
    def build(device: Any, torch_dtype: Any) -> Call:
        x, w = _rand((1, m, k), device, torch_dtype), _rand((n, k), device, torch_dtype)
        return Call(_aten("aten.linear.default"), (x, w, _rand((n,), device, torch_dtype) if bias else None))
    return Case("aten.linear.default", f"{m}x{k}x{n}{'' if bias else ' nobias'}", build, m * k * n <= 512,
                dtype=dtype)


def _bmm(b: int, m: int, k: int, n: int) -> Case:
    def build(device: Any, dtype: Any) -> Call:
        return Call(_aten("aten.bmm.default"), (_rand((b, m, k), device, dtype), _rand((b, k, n), device, dtype)))
    return Case("aten.bmm.default", f"{b}x{m}x{k}x{n}", build, b * m * k * n <= 512)


def _sdpa(heads: int, q_len: int, kv_len: int, kv_heads: int | None = None, causal: bool = True,
          hd: int = 64) -> Case:
    kv_heads = kv_heads or heads

    def build(device: Any, dtype: Any) -> Call:
        # views of (B, T, H, hd) projections transposed to (B, H, T, hd), as in the models
        q = _rand((1, q_len, heads, hd), device, dtype).transpose(1, 2)
        k, v = (_rand((1, kv_len, kv_heads, hd), device, dtype).transpose(1, 2) for _ in range(2))
        kw: dict[str, Any] = {"is_causal": causal and q_len > 1}
        if kv_heads != heads:
            kw["enable_gqa"] = True
        return Call(_aten("aten.scaled_dot_product_attention.default"), (q, k, v), kw)
    label = f"H{heads}/{kv_heads} T{q_len} S{kv_len} hd{hd}{' causal' if causal and q_len > 1 else ''}"
    return Case("aten.scaled_dot_product_attention.default", label, build, q_len * kv_len <= 4 and hd <= 8)


#: (K, N, bias) of the linear grid: GPT-2/BERT-like layers with a bias, Llama-like ones without
_LINEAR_KN = {
    "quick": [(64, 256, True), (768, 768, True), (768, 3072, True), (3072, 768, True)],
    "full": [(64, 64, True), (64, 256, True), (256, 64, False), (256, 1024, True), (512, 512, False),
             (768, 768, True), (768, 2304, True), (768, 3072, True), (3072, 768, True), (1024, 4096, False),
             (2048, 2048, False)],
}
_LINEAR_M = {"quick": [1, 16, 128, 512], "full": [1, 4, 16, 64, 128, 256, 512, 2048]}


def matrix_cases(grid: str) -> list[Case]:
    """Linear, bmm and attention cases of ``grid`` (GEMMs up to ~10 GFLOP)."""
    cases = [_linear(1, 8, 8)]
    for m in _LINEAR_M[grid]:
        for k, n, bias in _LINEAR_KN[grid]:
            if 2 * m * k * n <= 1.1e10:
                cases.append(_linear(m, k, n, bias))
    for m in ((1, 128) if grid == "quick" else (1, 32, 128)):
        cases.append(_linear(m, 768, 50257, bias=False))  # GPT-2's lm_head
    if grid == "full":
        cases += [_linear(m, 768, 3072, dtype="bf16") for m in (16, 128, 512)]
    cases.append(_bmm(1, 2, 2, 2))
    for t in ((32, 256) if grid == "quick" else (16, 64, 256, 1024)):
        cases += [_bmm(12, t, 64, t), _bmm(12, t, t, 64)]
    cases.append(_sdpa(1, 1, 1, hd=8))
    lens = (16, 128, 512) if grid == "quick" else (16, 32, 64, 128, 256, 512, 1024)
    for t in lens:
        cases.append(_sdpa(12, t, t))
    if grid == "full":
        cases += [_sdpa(4, t, t) for t in (16, 128, 256)]
        cases += [_sdpa(12, t, t, causal=False) for t in (64, 128, 512)]
        cases += [_sdpa(32, t, t, kv_heads=8) for t in (32, 128, 512)]
    cases += [_sdpa(12, 1, s) for s in ((128, 1024) if grid == "quick" else (32, 128, 512, 2048))]
    return cases


# ---------------------------------------------------------------- views and getitem: fixed cost only


def _view_case(target: str, make: Callable[[Any], tuple[tuple, dict]]) -> Case:
    def build(device: Any, dtype: Any) -> Call:
        args, kwargs = make(_rand((2, 4, 8), device, dtype))
        op = operator.getitem if target == "<built-in function getitem>" else _aten(target)
        return Call(op, args, kwargs)
    return Case(target, "(2, 4, 8)", build, tiny=True)


def view_cases() -> list[Case]:
    """One tiny call of each view op the reference models export."""
    import torch

    views: dict[str, Callable[[Any], tuple[tuple, dict]]] = {
        "aten.view.default": lambda x: ((x, [8, 8]), {}),
        "aten._unsafe_view.default": lambda x: ((x, [8, 8]), {}),
        "aten.reshape.default": lambda x: ((x, [8, 8]), {}),
        "aten.transpose.int": lambda x: ((x, 1, 2), {}),
        "aten.permute.default": lambda x: ((x, [0, 2, 1]), {}),
        "aten.t.default": lambda x: ((x[0],), {}),
        "aten.unsqueeze.default": lambda x: ((x, 0), {}),
        "aten.expand.default": lambda x: ((x[:, :1], [2, 4, 8]), {}),
        "aten.slice.Tensor": lambda x: ((x, 2, 0, 4), {}),
        "aten.select.int": lambda x: ((x, 1, 0), {}),
        "aten.split.Tensor": lambda x: ((x, 4, 2), {}),
        "aten.chunk.default": lambda x: ((x, 2, -1), {}),
        "aten.to.dtype": lambda x: ((x, torch.float32), {}),
        "aten.alias.default": lambda x: ((x,), {}),
        "<built-in function getitem>": lambda x: ((x.split(4, 2), 0), {}),
    }
    return [_view_case(t, make) for t, make in views.items()]


def suite(grid: str = "full", targets: Iterable[str] | None = None) -> list[Case]:
    """Every case of ``grid`` (``"quick"`` or ``"full"``), optionally only for some ``targets``.

    Examples
    --------
    >>> cases = suite("quick", ["aten.add.Tensor"])
    >>> cases[0].target, sum(c.tiny for c in cases) >= 1
    ('aten.add.Tensor', True)
    """
    if grid not in GRIDS:
        raise ValueError(f"grid: got {grid!r}, expected one of {', '.join(GRIDS)}")
    sizes = _sizes(grid, hi=3.2e7 if grid == "full" else 1e7)
    cases: list[Case] = []
    for family in _elementwise_families():
        cases.append(family(8, tiny=True))
        cases += [family(n) for n in sizes]
    embeds = [(256, 64, 1), (256, 64, 128), (30522, 768, 1), (30522, 768, 128), (50257, 768, 128)]
    if grid == "full":
        embeds += [(256, 64, 16), (50257, 768, 1), (50257, 768, 16), (32000, 2048, 128), (50257, 768, 1024),
                   (30522, 768, 512)]
    cases += [_embedding(*e) for e in embeds]
    kv = [(12, 128), (12, 1024)] if grid == "quick" else [(4, 16), (12, 64), (12, 256), (12, 1024), (32, 2048)]
    cases += [_cat_kv(h, s) for h, s in kv]
    cases += [copy_into(32), copy_into(64 * 2 ** 20), copy_into(256 * 2 ** 20)]
    if grid == "full":
        cases += [_norm(t, 2048)(n) for t in ("aten.layer_norm.default", "aten.rms_norm.default")
                  for n in sizes if n >= 2048]
    cases += matrix_cases(grid) + view_cases()
    if targets is not None:
        wanted = set(targets)
        cases = [c for c in cases if c.target in wanted]
    return cases
