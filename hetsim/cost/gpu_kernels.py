"""Kernel-level op time on a GPU: tiles and waves for GEMMs, FlashAttention, memory-bound families.

Used by :func:`hetsim.cost.roofline.op_cost` when the unit carries a
:class:`~hetsim.spec.kernels.GpuKernels` (``unit.kernels``); :func:`kernel_cost` returns ``None``
for ops it does not model, and the roofline takes over. Times are pure GPU kernel times: launch
costs are the execution mode's business, so ``overhead_s`` is 0.

GEMM (op kind ``matmul``; ``M, N, K`` and a batch recovered from ``shape``, ``flop``, ``dtype`` and
``bytes_read`` as :func:`hetsim.cost.traffic.op_traffic` does)
    For each tile ``Tm×Tn`` of ``gemm.tiles`` and split ``s`` of ``gemm.split_k`` (K slices at least
    ``split_k_min_depth`` deep), ``batch·⌈M/Tm⌉·⌈N/Tn⌉·s`` CTAs run in ``waves = ⌈CTAs/sms⌉``; one
    wave takes a tile's ``2·Tm·Tn·⌈K/s⌉`` FLOPs at the per-SM tensor rate × ``efficiency`` × the
    tile's intensity factor (wave quantization; a tile is paid whole where ``M < Tm``, so a GEMV's
    padded tiles count, and are outweighed by its weight streaming on real GPUs). Memory time is the DRAM bytes of
    :func:`~hetsim.cost.traffic.gemm_traffic` (the unit's ``onchip_bytes``; each operand once
    without it), plus the fp32 partial sums split-K writes and reads back, over ``gemm.bandwidth``.
    The time is ``fixed + ‖(compute, memory)‖_overlap`` and the plan with the least time wins, as a
    heuristic that predicts time would choose. A thin GEMM (decode) is memory-bound: weight bytes
    over the bandwidth. Only compute time scales with the clock of ``state``.
Attention (op kind ``attention``)
    FlashAttention-style: ``flop × causal fraction / (tensor peak × flash_efficiency)`` against
    the bytes of :func:`~hetsim.cost.traffic.op_traffic` over ``memory bandwidth ×
    decode_bandwidth_fraction``, combined as GEMMs are (same ``fixed`` and ``overlap``). A decode
    step (one query row) is the bandwidth term: KV bytes over the streaming bandwidth. Causal
    masking keeps ``Σ min(i+1, S)`` of the ``Lq·S`` score pairs (top-left aligned, as torch's
    ``is_causal``): half for a prompt. The captured SDPA node does not say whether it is causal
    (:mod:`hetsim.graph.capture` keeps no ``is_causal``), so an op counts as causal only when its
    dict has ``causal: True`` or its target ends in ``[is_causal=True]``.
Memory-bound families (``norm``, ``activation``, ``rotary``, ``elementwise``, ``embedding``,
``softmax``, ``reduction``, ``copy``; see :class:`~hetsim.spec.kernels.MemoryKernel`)
    ``max(min_kernel, floor + ‖(row time, stream time)‖_overlap)`` with bytes =
    ``bytes_read + bytes_written``; the stream time is bytes over the family's bandwidth, the
    first ``onchip_bytes`` of them (the unit's L2) at its ``cached_bandwidth`` when it has one.
    Row-parallel kernels — fused serving kernels (patterns
    ``rmsnorm``, ``add_rmsnorm``, ``silu_mul``, ``gelu``, ``rope``) and ``norm``/``softmax`` ops —
    run one CTA per row of ``shape`` (rows = product of all but the last dimension, width = the
    last; a ``rope`` op's shape is ``(tokens, (heads + kv heads)·head_dim)``, the layout vLLM's
    rotary kernel takes), ``⌈width/row_elems⌉`` passes per row, in waves of ``sms × rows_per_sm``
    rows; rows narrower than ``row_elems`` (one head of a ``(batch, heads, tokens, head_dim)``
    tensor) share a CTA, ``row_elems`` elements of them per pass. Elementwise,
    copy, reduction and embedding kernels are flat; an embedding with at most ``small_rows``
    indices runs PyTorch's serial small-index gather, ``floor + rows × small_row``. A fused op
    (op kind ``fused``, ``fused: {"pattern", "members", "targets"}``) maps its pattern to a family;
    ``pointwise`` is elementwise unless a member is a norm (then norm) or a softmax. The fused
    kernels were measured as vLLM's (row-parallel); a fused op whose mapping says
    ``"mode": "compiled"`` is an Inductor kernel instead, flat except for norms. A row-parallel
    op runs no more rows than its ``bytes_written`` fill (a kernel writing into a KV cache has the
    cache's shape).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from hetsim.cost.roofline import OpCost
from hetsim.cost.traffic import gemm_layout, gemm_traffic, op_traffic
from hetsim.graph.schema import DTYPE_BYTES
from hetsim.spec.kernels import GemmKernel, GpuKernels, MemoryKernel
from hetsim.spec.types import ComputeUnit, Memory, PowerState

#: fused patterns -> (family, row-parallel)
FUSED_FAMILIES: Mapping[str, tuple[str, bool]] = {
    "rope": ("rotary", True), "silu_mul": ("activation", True), "gelu": ("activation", True),
    "rmsnorm": ("norm", True), "add_rmsnorm": ("norm", True),
}
#: elementwise ATen ops that are activations (their own family, flat kernels)
ACTIVATIONS = frozenset({"gelu", "silu", "relu", "tanh", "sigmoid", "hardswish", "mish", "elu", "leaky_relu",
                         "softplus", "gelu_", "silu_", "relu_"})
#: op kinds with one CTA per row in PyTorch and serving engines
_ROW_KINDS = {"norm": "norm", "softmax": "softmax"}
_FLAT_KINDS = {"reduction": "reduction", "copy": "copy", "embedding": "embedding"}
#: intensity ``Tm·Tn/(Tm+Tn)`` of the 128×128 tile that reaches ``gemm.efficiency``
_REFERENCE_INTENSITY = 64.0


def smooth_max(a: float, b: float, p: float) -> float:
    """``(aᵖ + bᵖ)^(1/p)``: the sum at ``p = 1``, the maximum as ``p → ∞``.

    Examples
    --------
    >>> smooth_max(3.0, 4.0, 2.0), smooth_max(3.0, 4.0, 1.0), round(smooth_max(3.0, 4.0, 200.0), 6)
    (5.0, 7.0, 4.0)
    """
    top = max(a, b)
    if top <= 0:
        return 0.0
    return top * ((a / top) ** p + (b / top) ** p) ** (1.0 / p)


def gemm_dims(op: Mapping) -> tuple[int, int, int, int] | None:
    """``(batch, M, N, K)`` of a matmul op, or ``None`` when its attributes do not determine them.

    ``N`` is the output's last dimension and ``K = flop / (2·outputs)``; the op is one GEMM with a
    shared B (a linear: ``M`` = all other output elements) or a batch of GEMMs over the leading
    dimensions (a bmm), whichever matches ``bytes_read`` (within 10 %, for a bias or scales).

    Examples
    --------
    >>> gemm_dims({"op": "matmul", "dtype": "fp16", "shape": (4, 4096), "flop": 2 * 4 * 8192 * 4096,
    ...            "bytes_read": 2 * (4 * 8192 + 8192 * 4096)})
    (1, 4, 4096, 8192)
    >>> gemm_dims({"op": "matmul", "dtype": "fp16", "shape": (8, 128, 64), "flop": 2 * 8 * 128 * 64 * 128,
    ...            "bytes_read": 2 * 8 * (128 * 128 + 128 * 64)})
    (8, 128, 64, 128)
    """
    elem = DTYPE_BYTES.get(op.get("dtype"))  # type: ignore[arg-type]
    shape = tuple(op.get("shape") or ())
    flop, read = op.get("flop", 0), op.get("bytes_read", 0)
    if elem is None or len(shape) < 2 or not flop or not read or not all(shape):
        return None
    return gemm_layout(shape, flop, read, elem)


def gemm_plans(batch: int, m: int, n: int, k: int, gemm: GemmKernel, sms: int, onchip_bytes: float | None,
               elem: float) -> list[tuple[float, float, float]]:
    """Every (tile, split-K) plan of a GEMM as ``(work, intensity factor, DRAM bytes)``.

    ``work`` is the FLOPs one SM runs (waves × one tile's FLOPs); the factor is
    ``min(1, intensity / 64)``, which :func:`gemm_seconds` raises to ``tile_exponent``.

    Examples
    --------
    A 256×256×1024 GEMM on 4 SMs with 128×128 tiles: 4 CTAs fill one wave of 2·128·128·1024 FLOPs;
    one tile more (M = 257) takes a second wave.

    >>> g = GemmKernel(((128, 128),), (1,), 256, 0.8, 0.0, 0.0, 1e12, 2.0)
    >>> gemm_plans(1, 256, 256, 1024, g, 4, None, 2)[0][0] == 2 * 128 * 128 * 1024
    True
    >>> gemm_plans(1, 257, 256, 1024, g, 4, None, 2)[0][0] == 2 * 2 * 128 * 128 * 1024
    True
    """
    ideal = elem * (m * k + k * n + m * n)
    traffic = ideal if onchip_bytes is None else gemm_traffic(m, n, k, onchip_bytes, elem)
    plans = []
    for tm, tn in gemm.tiles:
        tiles = batch * -(-m // tm) * -(-n // tn)
        factor = min(1.0, tm * tn / (tm + tn) / _REFERENCE_INTENSITY)
        for split in gemm.split_k:
            depth = -(-k // split)
            if split > 1 and depth < gemm.split_k_min_depth:
                continue
            waves = -(-tiles * split // sms)
            workspace = 0.0 if split == 1 else 2 * 4 * split * batch * m * n  # fp32 partials, written and read
            plans.append((float(waves * 2 * tm * tn * depth), factor, batch * traffic + workspace))
    return plans


def gemm_seconds(work: float, factor: float, nbytes: float, sm_rate: float,
                 gemm: GemmKernel) -> tuple[float, float, float]:
    """``(total, compute, memory)`` seconds of one GEMM plan at ``sm_rate`` FLOP/s per SM.

    Examples
    --------
    >>> g = GemmKernel(((128, 128),), (1,), 256, 0.5, 0.0, 2e-6, 1e12, 1.0)
    >>> [round(x * 1e6, 6) for x in gemm_seconds(1e9, 1.0, 1e6, 1e15, g)]
    [5.0, 2.0, 1.0]
    """
    compute = work / (sm_rate * gemm.efficiency * factor ** gemm.tile_exponent)
    memory = nbytes / gemm.bandwidth_bytes_per_s
    return gemm.fixed_s + smooth_max(compute, memory, gemm.overlap), compute, memory


def _clock(unit: ComputeUnit, state: PowerState | None) -> float:
    return (state or unit.nominal).freq_hz / unit.ref_freq_hz


def _gemm_cost(op: Mapping, unit: ComputeUnit, kernels: GpuKernels, state: PowerState | None) -> OpCost | None:
    dims = gemm_dims(op)
    peak = unit.peak_flop_per_s.get(op.get("dtype"))  # type: ignore[arg-type]
    if dims is None or not peak:
        return None
    sm_rate = peak * _clock(unit, state) / kernels.sms
    elem = DTYPE_BYTES[op["dtype"]]
    best = min(gemm_seconds(w, f, b, sm_rate, kernels.gemm)
               for w, f, b in gemm_plans(*dims, kernels.gemm, kernels.sms, unit.onchip_bytes, elem))
    return OpCost(best[0], best[1], best[2], 0.0)


def causal_fraction(lq: int, s: int) -> float:
    """Fraction of the ``lq×s`` score pairs a causal (top-left aligned) mask keeps.

    Examples
    --------
    >>> causal_fraction(4, 4), causal_fraction(1, 100), causal_fraction(4096, 4096)
    (0.625, 0.01, 0.5001220703125)
    """
    kept = lq * (lq + 1) / 2 if lq <= s else s * (s + 1) / 2 + (lq - s) * s
    return kept / (lq * s)


def _is_causal(op: Mapping) -> bool:
    return op.get("causal") is True or str(op.get("target", "")).endswith("[is_causal=True]")


def _attention_cost(op: Mapping, unit: ComputeUnit, memory: Memory, kernels: GpuKernels,
                    state: PowerState | None) -> OpCost | None:
    flop = op.get("flop", 0)
    peak = unit.peak_flop_per_s.get(op.get("dtype"))  # type: ignore[arg-type]
    if not flop or not peak:
        return None
    shape = tuple(op.get("shape") or ())
    if _is_causal(op) and len(shape) >= 2:
        lq, dv = shape[-2], shape[-1]
        s = flop / (4 * math.prod(shape[:-1]) * dv)  # flop = 2·rows·S·(d + dv), d = dv
        flop *= causal_fraction(lq, max(1, round(s))) if s >= 0.5 else 0.5
    compute = flop / (peak * _clock(unit, state) * kernels.attention.flash_efficiency)
    moved = op.get("bytes_read", 0) + op.get("bytes_written", 0)
    if unit.onchip_bytes is not None:
        traffic = op_traffic(op, unit.onchip_bytes)
        moved = moved if traffic is None else traffic
    stream = memory.bandwidth_bytes_per_s * kernels.attention.decode_bandwidth_fraction
    memory_s = moved / stream
    total = kernels.gemm.fixed_s + smooth_max(compute, memory_s, kernels.gemm.overlap)
    return OpCost(total, compute, memory_s, 0.0)


def memory_family(op: Mapping) -> tuple[str, bool] | None:
    """``(family, row-parallel)`` of a memory-bound op, or ``None`` when it is not one.

    Examples
    --------
    >>> memory_family({"op": "fused", "fused": {"pattern": "silu_mul", "members": [], "targets": []}})
    ('activation', True)
    >>> memory_family({"op": "fused", "fused": {"pattern": "silu_mul", "members": [], "targets": [],
    ...                                         "mode": "compiled"}})
    ('activation', False)
    >>> memory_family({"op": "fused", "fused": {"pattern": "pointwise", "members": ["add", "rms_norm"],
    ...                                         "targets": ["aten.add.Tensor", "aten.rms_norm.default"]}})
    ('norm', True)
    >>> memory_family({"op": "elementwise", "target": "aten.gelu.default[approximate=tanh]"})
    ('activation', False)
    >>> memory_family({"op": "matmul"}) is None
    True
    """
    kind = op.get("op")
    if kind == "fused":
        fused = op.get("fused") or {}
        pattern = fused.get("pattern")
        if pattern in FUSED_FAMILIES:
            family, row = FUSED_FAMILIES[pattern]
            return family, row and (family == "norm" or fused.get("mode") != "compiled")
        if pattern != "pointwise":
            return None
        names = " ".join(str(x) for x in (*fused.get("members", ()), *fused.get("targets", ()))).lower()
        if "norm" in names:
            return "norm", True
        return ("softmax", True) if "softmax" in names else ("elementwise", False)
    if kind in _ROW_KINDS:
        return _ROW_KINDS[kind], True
    if kind in _FLAT_KINDS:
        return _FLAT_KINDS[kind], False
    if kind == "elementwise":
        name = str(op.get("target", "")).split("[")[0]
        name = name[5:] if name.startswith("aten.") else name
        return ("activation" if name.split(".")[0] in ACTIVATIONS else "elementwise"), False
    return None


def memory_terms(op: Mapping, family: MemoryKernel, row_parallel: bool, sms: int) -> tuple[float, int, int]:
    """``(bytes moved, row passes, rows)`` of a memory-bound op: passes = waves × passes per row
    for a row-parallel kernel, else 0.

    Examples
    --------
    4096 rows of 8192 on 108 SMs × 2 rows: 19 waves of 8 passes.

    >>> memory_terms({"shape": (4096, 8192), "dtype": "fp16", "bytes_read": 2 * 4096 * 8192,
    ...               "bytes_written": 2 * 4096 * 8192}, MemoryKernel(1e-6, 1e12, 4e-7), True, 108)
    (134217728, 152, 4096)
    """
    shape = tuple(op.get("shape") or ())
    moved = op.get("bytes_read", 0) + op.get("bytes_written", 0)
    rows = math.prod(shape[:-1]) if len(shape) >= 2 else 1
    if not row_parallel or not family.row_pass_s or len(shape) < 2:
        return moved, 0, rows
    width = shape[-1]
    elem = DTYPE_BYTES.get(op.get("dtype")) or 2  # type: ignore[arg-type]
    written = op.get("bytes_written", 0)
    ctas = rows
    if written:  # CTAs cover what the kernel writes: a KV-cache write's shape is the whole cache
        ctas = min(rows, max(1, math.ceil(written / (elem * width))))
    if width < family.row_elems:  # narrow rows (a head of 128) share a CTA's pass, as a token's heads do
        ctas = -(-ctas * width // family.row_elems)
    waves = -(-ctas // (sms * family.rows_per_sm))
    return moved, waves * -(-width // family.row_elems), rows


def memory_seconds(moved: float, passes: int, rows: int, family: MemoryKernel, min_kernel_s: float,
                   cached_bytes: float = 0.0) -> tuple[float, float]:
    """``(total, bandwidth part)`` seconds of a memory-bound kernel (see the module docstring).

    Examples
    --------
    3 passes of 1 µs against 2 MB at 1 TB/s, as a 2-norm, after a 1 µs floor: 1 + √(3² + 2²) µs.

    >>> fam = MemoryKernel(1e-6, 1e12, row_pass_s=1e-6, overlap=2.0)
    >>> [round(x * 1e6, 4) for x in memory_seconds(2e6, 3, 100, fam, 1e-6)]
    [4.6056, 2.0]
    """
    if family.cached_bandwidth_bytes_per_s and cached_bytes:
        hit = min(moved, cached_bytes)
        stream = hit / family.cached_bandwidth_bytes_per_s + (moved - hit) / family.bandwidth_bytes_per_s
    else:
        stream = moved / family.bandwidth_bytes_per_s
    if family.small_rows and rows <= family.small_rows:
        return max(min_kernel_s, family.floor_s + rows * family.small_row_s), stream
    body = smooth_max(passes * family.row_pass_s, stream, family.overlap)
    return max(min_kernel_s, family.floor_s + body), stream


def kernel_cost(op: Mapping, unit: ComputeUnit, memory: Memory, state: PowerState | None = None) -> OpCost | None:
    """Time of the op whose node attributes are ``op`` on GPU ``unit``, or ``None`` if not modelled.

    ``None`` also when ``unit.kernels`` is ``None``, when a matmul's shapes cannot be recovered
    or when the unit has no peak for its dtype.

    Examples
    --------
    A 1-token GEMV streaming an 8192×8192 fp16 weight at 2 TB/s after a 5 µs fixed cost:

    >>> from hetsim.spec.kernels import AttentionKernel
    >>> from hetsim.spec.types import ComputeUnit, Memory, PowerState
    >>> k = GpuKernels(100, 1e-6, GemmKernel(((128, 128),), (1,), 256, 0.8, 0.0, 5e-6, 2e12, 50.0),
    ...                AttentionKernel(0.6, 0.9), {"elementwise": MemoryKernel(2e-6, 1e12)})
    >>> u = ComputeUnit("gpu", "gpu", "hbm", {"fp16": 1e15}, 1e9, (PowerState("p0", 1e9, 1.0, 50, 500),),
    ...                 kernels=k)
    >>> m = Memory("hbm", "hbm", 80e9, 2.5e12)
    >>> op = {"op": "matmul", "dtype": "fp16", "shape": (1, 8192), "flop": 2 * 8192 * 8192,
    ...       "bytes_read": 2 * (8192 + 8192 * 8192), "bytes_written": 2 * 8192}
    >>> round(kernel_cost(op, u, m).total_s * 1e6, 2)
    72.13
    >>> kernel_cost({"op": "elementwise", "target": "aten.add.Tensor", "shape": (1000, 1000),
    ...              "bytes_read": 4e6, "bytes_written": 2e6}, u, m).total_s
    8e-06
    """
    kernels = unit.kernels
    if kernels is None:
        return None
    kind = op.get("op")
    if kind == "matmul":
        return _gemm_cost(op, unit, kernels, state)
    if kind == "attention":
        return _attention_cost(op, unit, memory, kernels, state)
    found = memory_family(op)
    if found is None:
        return None
    family = kernels.family(found[0])
    if family is None:
        return None
    moved, passes, rows = memory_terms(op, family, found[1], kernels.sms)
    total, stream = memory_seconds(moved, passes, rows, family, kernels.min_kernel_s, unit.onchip_bytes or 0.0)
    return OpCost(total, 0.0, stream, 0.0)
