"""hetsim's ``compiled`` fusion groups against the kernels TorchInductor generates, on this CPU.

For each small fp32 reference module, the module is captured (:func:`hetsim.capture`) and fused
(:func:`hetsim.graph.fusion.fuse`, mode ``compiled``), and the same module is compiled with
``torch.compile`` (Inductor, C++ backend). Two Inductor settings make its CPU output comparable to
the GPU kernels hetsim models:

* ``force_pointwise_cat``: on CPU Inductor always lowers ``cat`` to a ConcatKernel (one copy loop
  per input); on GPU it emits a pointwise cat fused with its neighbours (``torch/_inductor/
  lowering.py``, ``cat``), which this flag selects;
* one C++ function per fused scheduler node: the C++ backend otherwise packs every loop nest
  between two library calls into one function, where the GPU (Triton) backend launches each
  fused node as its own kernel (``CppScheduling.ready_to_flush`` patched to flush after each node).

Kernels are compared as sets of op names: Inductor names each kernel after the torch-level ops
it holds (``cpp.descriptive_names = "torch"``, e.g. ``cpp_fused_RMSNorm_add_3``); hetsim's kernels
after their members' ATen targets. Both sides are normalised (``RMSNorm`` → ``rms_norm``) and
views, dtype casts and the views of library GEMM outputs (``Linear``) are dropped. A hetsim kernel
agrees when one Inductor kernel holds the same set; agreement = matched / max(kernel counts).
Library calls (GEMMs, attention) are counted apart. ``--default-cpu`` also counts Inductor's
C++ functions with its default CPU settings.

Known differences (the table lists the unmatched kernels):

* the C++ backend fuses a pointwise op into a reduction only when their loop ranges are equal
  as tuples (``CppScheduling._why_fuse_nodes``: ``vars1 == vars2 + reduce2``), so a residual add
  over a flat range stays apart from the RMSNorm reading it; the GPU backend fuses them when
  ``numel1 == numel2 * rnumel2`` (``SIMDScheduling.can_fuse``, ``torch/_inductor/codegen/simd.py``),
  the rule hetsim follows (``add_rmsnorm``);
* Inductor recomputes cheap producers inside every consumer (the rotary cos/sin table, an
  embedding gather); hetsim runs each op in exactly one kernel, so those stay kernels of their own
  and the consumers' op sets differ.

Result on this machine (torch 2.13 CPU): residual+rmsnorm 0 of 2, rope 2/2, swiglu-mlp 1/1,
gelu-mlp 1/1, llama-block 6/6, gpt2-block 4/4, llama-2-layer 3 of 12, gpt2-2-layer 4 of 8.

Usage: python benchmarks/fusion_vs_inductor.py [--json] [--default-cpu] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import Any
from unittest import mock

import torch
from hetsim.models import gpt2, llama
from torch import nn

from hetsim.graph.capture import capture
from hetsim.graph.fusion import MATRIX_KINDS, fuse

#: names that are views, dtype casts, or library calls whose output views Inductor names a kernel after
DROPPED = frozenset({
    "view", "_unsafe_view", "reshape", "transpose", "permute", "t", "unsqueeze", "squeeze", "expand", "chunk",
    "split", "split_with_sizes", "getitem", "slice", "select", "alias", "contiguous", "clone", "to", "_to_copy",
    "type_as", "linear", "dropout", "detach", "scaled_dot_product_attention", "",
})
#: torch-level names Inductor uses for module calls → the ATen names hetsim captures
ALIASES = {"rmsnorm": "rms_norm", "layernorm": "layer_norm", "linear": "linear", "silu": "silu", "gelu": "gelu"}

_SIZES = {"batch": 1, "seq": 8, "d_model": 64, "heads": 4, "kv_heads": 2, "ffn": 160}


class ResidualRMSNorm(nn.Module):
    """``h = x + r; return rms_norm(h), h`` (a pre-norm block's residual add and next norm)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(d, eps=1e-5)

    def forward(self, x: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x + r
        return self.norm(h), h


class Rope(nn.Module):
    """Llama's rotary embedding of q and k with given cos/sin tables."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        return q * cos + llama.rotate_half(q) * sin, k * cos + llama.rotate_half(k) * sin


class GeluMLP(nn.Module):
    """A bias-free GELU(tanh) MLP whose activation sits between two GEMMs."""

    def __init__(self, d: int, f: int) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(d, f), nn.Linear(f, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(nn.functional.gelu(self.up(x), approximate="tanh"))


def reference_modules() -> list[tuple[str, nn.Module, tuple[Any, ...]]]:
    """``(name, module, example args)`` of the compared modules, fp32, seeded."""
    torch.manual_seed(0)
    b, t, d, h, kvh, f = (_SIZES[k] for k in ("batch", "seq", "d_model", "heads", "kv_heads", "ffn"))
    hd = d // h
    x, r = torch.randn(b, t, d), torch.randn(b, t, d)
    lcfg = llama.LlamaConfig(vocab_size=64, d_model=d, n_layers=2, n_heads=h, n_kv_heads=kvh, ffn_dim=f,
                             max_positions=64)
    gcfg = gpt2.GPT2Config(vocab_size=64, max_positions=64, d_model=d, n_layers=2, n_heads=h, ffn_dim=4 * d)
    cos, sin = llama.RotaryEmbedding(hd, 10000.0)(x, 0, t)
    q, k = torch.randn(b, h, t, hd), torch.randn(b, kvh, t, hd)
    ids = torch.randint(0, 64, (b, t))
    return [
        ("residual+rmsnorm", ResidualRMSNorm(d), (x, r)),
        ("rope", Rope(), (q, k, cos, sin)),
        ("swiglu-mlp", llama.MLP(lcfg), (x,)),
        ("gelu-mlp", GeluMLP(d, f), (x,)),
        ("llama-block", llama.Block(lcfg), (x, cos, sin, None)),
        ("gpt2-block", gpt2.Block(gcfg), (x, None)),
        ("llama-2-layer", llama.Llama(lcfg), (ids,)),
        ("gpt2-2-layer", gpt2.GPT2(gcfg), (ids,)),
    ]


def _normal(name: str) -> str:
    low = name.lower()
    return ALIASES.get(low, low)


def _signature(names: list[str]) -> frozenset[str]:
    return frozenset(n for n in map(_normal, names) if n not in DROPPED)


def our_kernels(module: nn.Module, args: tuple[Any, ...]) -> tuple[list[frozenset[str]], int]:
    """hetsim's ``compiled`` kernels outside the library ops (as name sets), and its library-op count."""
    graph = fuse(capture(module.eval(), args, dtype="fp32"), "compiled")
    kernels, library = [], 0
    for _, data in graph.nodes(data=True):
        if data["op"] in MATRIX_KINDS:
            library += 1
        elif data["op"] != "view":
            targets = data["fused"]["targets"] if "fused" in data else [data["target"]]
            sig = _signature([_aten_name(t) for t in targets])
            if sig:
                kernels.append(sig)
    return kernels, library


def _aten_name(target: str) -> str:
    parts = target.split("[")[0].split(".")
    return parts[1] if len(parts) >= 2 and parts[0] == "aten" else ""


def _split_name(name: str, vocabulary: frozenset[str]) -> list[str]:
    """``RMSNorm_add`` → ``["RMSNorm", "add"]``: the fewest words of ``vocabulary`` joined by ``_``."""
    best: dict[int, list[str] | None] = {len(name): []}

    def solve(i: int) -> list[str] | None:
        if i not in best:
            options = []
            for j in range(i + 1, len(name) + 1):
                if (j == len(name) or name[j] == "_") and name[i:j] in vocabulary:
                    rest = solve(min(j + 1, len(name)) if j < len(name) else j)
                    if rest is not None:
                        options.append([name[i:j], *rest])
            best[i] = min(options, key=len) if options else None
        return best[i]

    return solve(0) or name.split("_")


def inductor_kernels(module: nn.Module, args: tuple[Any, ...], vocabulary: frozenset[str], *,
                     gpu_like: bool = True) -> tuple[list[frozenset[str]], int, int]:
    """Inductor's generated kernels (as name sets), its library calls, and its C++ function count."""
    import torch._inductor.config as inductor_config
    from torch._inductor.codegen.cpp import CppScheduling
    from torch._inductor.utils import run_and_get_code

    torch._dynamo.reset()
    with ExitStack() as stack:
        stack.enter_context(inductor_config.patch({"cpp.descriptive_names": "torch", "compile_threads": 1,
                                                   "force_pointwise_cat": gpu_like, "fx_graph_cache": False}))
        if gpu_like:
            stack.enter_context(mock.patch.object(CppScheduling, "ready_to_flush", lambda self: True))
        with torch.no_grad():
            _, codes = run_and_get_code(torch.compile(module.eval(), backend="inductor"), *args)
    code = "\n".join(codes)
    body = code[code.find("def call("):]
    names = re.findall(r"^\s*cpp_fused_(\w+?)_\d+\(", body, re.M)  # call sites: a kernel may run twice
    library = len(re.findall(r"extern_kernels\.\w+\(|torch\.ops\.aten\.\w+\.\w+\(", body))
    kernels = [s for s in (_signature(_split_name(n, vocabulary)) for n in names) if s]
    return kernels, library, len(names)


@dataclass(frozen=True)
class Row:
    """One module's comparison."""

    module: str
    ours: int
    inductor: int
    matched: int
    agreement: float
    ours_library: int
    inductor_library: int
    only_ours: tuple[str, ...]
    only_inductor: tuple[str, ...]
    cpu_functions: int | None = None


def compare(name: str, module: nn.Module, args: tuple[Any, ...], *, default_cpu: bool = False) -> Row:
    """Match hetsim's kernels of ``module`` one to one with Inductor's by op-name set."""
    ours, ours_lib = our_kernels(module, args)
    aten = {n.split("::", 1)[1].split(".")[0] for n in torch._C._dispatch_get_all_op_names() if "::" in n}
    vocabulary = frozenset(aten) | {"RMSNorm", "LayerNorm", "Linear", "SiLU", "GELU", "Embedding", "truediv"}
    theirs, their_lib, _ = inductor_kernels(module, args, vocabulary)
    left, right = Counter(ours), Counter(theirs)
    matched = sum((left & right).values())
    cpu = inductor_kernels(module, args, vocabulary, gpu_like=False)[2] if default_cpu else None
    fmt = lambda c: tuple("+".join(sorted(s)) for s in c.elements())  # noqa: E731
    return Row(name, len(ours), len(theirs), matched, matched / max(len(ours), len(theirs), 1), ours_lib, their_lib,
               fmt(left - right), fmt(right - left), cpu)


def run(only: list[str] | None = None, *, default_cpu: bool = False,
        progress: Callable[[str], None] | None = None) -> list[Row]:
    """Compare every reference module (or those named in ``only``)."""
    torch.set_num_threads(1)
    rows = []
    for name, module, args in reference_modules():
        if only and name not in only:
            continue
        start = time.perf_counter()
        rows.append(compare(name, module, args, default_cpu=default_cpu))
        if progress:
            progress(f"{name}: {time.perf_counter() - start:.1f} s")
    return rows


def table(rows: list[Row]) -> str:
    """The comparison as a markdown table."""
    head = "| module | hetsim kernels | Inductor kernels | matched | agreement | library ops (hetsim / Inductor) |"
    if any(r.cpu_functions is not None for r in rows):
        head += " Inductor C++ functions (default CPU) |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        line = (f"| {r.module} | {r.ours} | {r.inductor} | {r.matched} | {r.agreement:.0%} | "
                f"{r.ours_library} / {r.inductor_library} |")
        if r.cpu_functions is not None:
            line += f" {r.cpu_functions} |"
        lines.append(line)
    total_m = sum(r.matched for r in rows)
    total = sum(max(r.ours, r.inductor) for r in rows)
    lines.append(f"\nOverall: {total_m} of {total} kernels agree ({total_m / max(total, 1):.0%}).")
    for r in rows:
        if r.only_ours or r.only_inductor:
            lines.append(f"- {r.module}: only hetsim {list(r.only_ours)}; only Inductor {list(r.only_inductor)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--default-cpu", action="store_true", help="also count Inductor's default CPU functions")
    parser.add_argument("--only", nargs="*", help="module names to compare")
    opts = parser.parse_args(argv)
    rows = run(opts.only, default_cpu=opts.default_cpu, progress=None if opts.json else print)
    if opts.json:
        print(json.dumps({"rows": [asdict(r) for r in rows]}))
    else:
        print(table(rows))


if __name__ == "__main__":
    main()
