"""Fit the kernel-level GPU model to measured kernel times, and cross-validate it by model.

:func:`read_gpu_ops` turns ``shared/calibration/gpu_ops.csv`` (Vidur's per-op kernel times of one
Transformer layer on A100 and H100, fp16; see that folder's README, section 1) into
:class:`Sample` values whose ``op`` is the op dict hetsim would run for that kernel:

==========================================  =================================================
CSV op                                      op dict (per GPU, this TP shard; fp16)
==========================================  =================================================
``attn_pre_proj`` … ``mlp_down_proj``       ``matmul`` ``M×K×N`` = ``gemm_m, gemm_k, gemm_n`` (+ the
                                            bias the column-parallel call reads)
``input_layernorm``, ``post_attention_…``   fused ``rmsnorm`` over ``n_embd`` (``layer_norm``:
                                            a ``norm`` op with weight and bias)
``mlp_act``                                 fused ``silu_mul`` reading ``2d`` and writing ``d``
                                            per token (``d = n_expanded/tp``); else an
                                            elementwise tanh-GELU reading and writing ``d``
``attn_rope``                               fused ``rope`` reading and writing q and k of the
                                            shard in place (``shape (T, (heads + kv heads)·
                                            head_dim)``) plus one cos/sin cache row and one
                                            int64 position per token
``add``                                     elementwise add of two ``T×n_embd`` tensors; a
                                            parallel block (``post_attn_norm`` false, phi-2)
                                            times two such adds (``kernels = 2``)
``emb``                                     embedding gather of ``T`` rows of ``n_embd``
==========================================  =================================================

:func:`fit_kernels` fits a :class:`~hetsim.spec.kernels.GpuKernels` by robust least squares on
log time (Nelder–Mead; the model's wave and tile choices make it piecewise smooth), per family;
:func:`cross_validate` fits on all models but one of a GPU and predicts the held-out model.

Errors are counted at the measurement's resolution: the profiler stamps whole microseconds
(README section 1, caveats), so a prediction within half a microsecond of the median counts as
exact (``|err| = max(0, |predicted − measured| − 0.5 µs) / measured``); the raw relative error
is reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np

from hetsim.cost.gpu_kernels import gemm_dims, gemm_plans, kernel_cost, memory_family, memory_terms
from hetsim.spec.kernels import AttentionKernel, GemmKernel, GpuKernels, MemoryKernel
from hetsim.spec.loader import load_platform
from hetsim.spec.types import Platform
from hetsim.validate._minimize import nelder_mead
from hetsim.validate._table import read_table
from hetsim.validate.calibrate import CalibrationError

#: columns read from gpu_ops.csv
REQUIRED_COLUMNS = ("gpu", "model", "op", "num_tokens", "tp", "n_embd", "n_head", "n_kv_head", "head_dim",
                    "n_expanded_embd", "use_gated_mlp", "use_bias", "use_qkv_bias", "norm", "post_attn_norm",
                    "gemm_m", "gemm_k", "gemm_n", "measured_ms")
#: CSV op -> sample family (the issue's families); ``residual_add`` uses the ``elementwise`` parameters
FAMILIES = {"attn_pre_proj": "gemm", "attn_post_proj": "gemm", "mlp_up_proj": "gemm", "mlp_down_proj": "gemm",
            "input_layernorm": "norm", "post_attention_layernorm": "norm", "mlp_act": "activation",
            "attn_rope": "rotary", "add": "residual_add", "emb": "embedding"}
_PARAMS = {"norm": "norm", "activation": "activation", "rotary": "rotary", "residual_add": "elementwise",
           "embedding": "embedding"}
#: the preset whose peaks and memory each GPU of the table is fitted against
PRESETS = {"a100": "a100-sxm-80gb", "h100": "h100-sxm"}
#: profiler timestamp resolution (README section 1): half of it is the tolerance of one measurement
RESOLUTION_S = 1e-6
_DATA = "shared/calibration/gpu_ops.csv"


@dataclass(frozen=True)
class Sample:
    """One measured kernel time: the op hetsim would run, seconds, the model it belongs to
    (``group``), its family and GPU; ``kernels`` identical kernels make up ``seconds``."""

    op: Mapping
    seconds: float
    group: str
    family: str
    gpu: str
    kernels: int = 1


@dataclass(frozen=True)
class ErrorRow:
    """Cross-validated |error| of one family on one GPU (fractions, resolution-aware and raw)."""

    gpu: str
    family: str
    n: int
    median: float
    p90: float
    worst: float
    median_raw: float
    p90_raw: float


def _fused(pattern: str, targets: Sequence[str]) -> dict:
    return {"pattern": pattern, "members": [t.split(".")[1] for t in targets], "targets": list(targets)}


def sample_op(row: Mapping[str, str]) -> tuple[dict, int]:
    """The op dict of one gpu_ops.csv row and how many identical kernels its time covers.

    Examples
    --------
    >>> row = {"op": "add", "num_tokens": "8", "tp": "1", "n_embd": "2560", "n_head": "32", "n_kv_head": "32",
    ...        "head_dim": "80", "post_attn_norm": "false"}
    >>> op, kernels = sample_op(row)
    >>> op["op"], op["shape"], op["bytes_read"], kernels
    ('elementwise', (8, 2560), 81920, 2)
    """
    op, t, tp = row["op"], int(row["num_tokens"]), int(row["tp"])
    e, heads, kv, hd = int(row["n_embd"]), int(row["n_head"]), int(row["n_kv_head"]), int(row["head_dim"])
    base = {"dtype": "fp16", "weights": {}}
    if FAMILIES[op] == "gemm":
        m, k, n = (int(float(row[c])) for c in ("gemm_m", "gemm_k", "gemm_n"))
        bias = ((op == "attn_pre_proj" and row["use_qkv_bias"] == "true")
                or (op == "mlp_up_proj" and row["use_bias"] == "true"))
        return {**base, "op": "matmul", "target": "aten.linear.default", "shape": (m, n), "flop": 2 * m * k * n,
                "bytes_read": 2 * (m * k + k * n + (n if bias else 0)), "bytes_written": 2 * m * n}, 1
    if op in ("input_layernorm", "post_attention_layernorm"):
        if row["norm"] == "layer_norm":
            return {**base, "op": "norm", "target": "aten.layer_norm.default", "shape": (t, e), "flop": 8 * t * e,
                    "bytes_read": 2 * (t * e + 2 * e), "bytes_written": 2 * t * e}, 1
        fused = _fused("rmsnorm", ("aten.pow.Tensor_Scalar", "aten.mean.dim", "aten.add.Tensor", "aten.rsqrt.default",
                                   "aten.mul.Tensor", "aten.mul.Tensor"))
        return {**base, "op": "fused", "fused": fused, "shape": (t, e), "flop": 4 * t * e,
                "bytes_read": 2 * (t * e + e), "bytes_written": 2 * t * e}, 1
    if op == "mlp_act":
        d = int(row["n_expanded_embd"]) // tp
        if row["use_gated_mlp"] == "true":
            return {**base, "op": "fused", "fused": _fused("silu_mul", ("aten.silu.default", "aten.mul.Tensor")),
                    "shape": (t, d), "flop": 5 * t * d, "bytes_read": 2 * 2 * t * d, "bytes_written": 2 * t * d}, 1
        return {**base, "op": "elementwise", "target": "aten.gelu.default[approximate=tanh]", "shape": (t, d),
                "flop": 8 * t * d, "bytes_read": 2 * t * d, "bytes_written": 2 * t * d}, 1
    if op == "attn_rope":
        width = (heads // tp + max(1, kv // tp)) * hd  # KV heads are replicated when tp > n_kv_head
        fused = _fused("rope", ("aten.mul.Tensor", "aten.neg.default", "aten.cat.default", "aten.mul.Tensor",
                                "aten.add.Tensor"))
        return {**base, "op": "fused", "fused": fused, "shape": (t, width), "flop": 3 * t * width,
                "bytes_read": 2 * t * width + 2 * t * hd + 8 * t, "bytes_written": 2 * t * width}, 1
    if op == "add":
        adds = 1 if row["post_attn_norm"] == "true" else 2
        return {**base, "op": "elementwise", "target": "aten.add.Tensor", "shape": (t, e), "flop": t * e,
                "bytes_read": 2 * 2 * t * e, "bytes_written": 2 * t * e}, adds
    return {"op": "embedding", "target": "aten.embedding.default", "dtype": None, "weights": {}, "shape": (t, e),
            "flop": 0, "bytes_read": 8 * t + 2 * t * e, "bytes_written": 2 * t * e}, 1


def read_gpu_ops(path: str | Path) -> list[Sample]:
    """Read ``gpu_ops.csv`` into samples (see the module docstring); one-line errors on bad input.

    Raises
    ------
    CalibrationError
        The file cannot be read, a required column is missing, an op is unknown, or a time is not
        a finite positive number.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "ops.csv"
    >>> _ = path.write_text("gpu,model,op,measured_ms\\nh100,m,emb,0.002\\n")
    >>> read_gpu_ops(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hetsim.validate.calibrate.CalibrationError: .../ops.csv: column 'num_tokens' is missing, expected the columns ...
    """
    rows = read_table(path, REQUIRED_COLUMNS, _DATA)
    samples = []
    for i, row in enumerate(rows, start=2):
        where = f"{path} line {i}"
        if row["op"] not in FAMILIES:
            raise CalibrationError(f"{where}, column op: got {row['op']!r}, expected one of {', '.join(FAMILIES)}")
        try:
            ms = float(row["measured_ms"])
        except (TypeError, ValueError):
            raise CalibrationError(f"{where}, column measured_ms: got {row['measured_ms']!r}, "
                                   "expected a number of milliseconds") from None
        if not math.isfinite(ms) or ms <= 0:
            raise CalibrationError(f"{where}, column measured_ms: got {row['measured_ms']!r}, "
                                   "expected a finite positive time in milliseconds")
        try:
            op, kernels = sample_op(row)
        except (TypeError, ValueError):
            raise CalibrationError(f"{where}: shape columns (num_tokens, tp, n_embd, heads, gemm_m/k/n) must be "
                                   "whole numbers") from None
        samples.append(Sample(op, ms * 1e-3, row["model"], FAMILIES[row["op"]], row["gpu"], kernels))
    return samples


def base_kernels(gpu: str) -> GpuKernels:
    """The sourced structure of a GPU's kernel model (``a100`` or ``h100``) and the starting point
    of the fit.

    Examples
    --------
    >>> k = base_kernels("h100")
    >>> k.sms, k.attention.flash_efficiency, k.memory["embedding"].small_rows
    (132, 0.668, 16)
    """
    h100 = gpu == "h100"
    tiles = ((256, 128), (128, 256), (256, 64), (64, 256), (128, 128), (128, 64), (64, 128), (64, 64))
    row = {"row_elems": 1024, "rows_per_sm": 2, "overlap": 2.0, "row_pass_s": 0.5e-6}
    memory = {
        "norm": MemoryKernel(1e-6, 1.5e12, **row), "activation": MemoryKernel(1e-6, 1.5e12, **row),
        "rotary": MemoryKernel(1e-6, 1.5e12, **{**row, "rows_per_sm": 4}),
        "elementwise": MemoryKernel(1e-6, 2e12), "embedding": MemoryKernel(2e-6, 4e11, small_rows=16, small_row_s=7e-7),
    }
    sources = {
        "sms": "NV-DS-H100: 132 SMs (H100 SXM5)" if h100 else "NV-DS-A100: 108 SMs",
        "gemm.tiles": "CUTLASS SM80 f16 tensor-op CTA tiles (NVIDIA/cutlass generator.py, "
                      "GenerateSM80_TensorOp_16816); "
                      "assumed on sm_90 too",
        "gemm.split_k": "assumption: split-K by 2, 4 or 8 when each slice keeps >= 256 of K",
        "attention.flash_efficiency": (
            "Shah et al., FlashAttention-3 (arXiv 2407.08608), Table 2: 661 TFLOP/s, fp16, non-causal, batch 4, seqlen "
            "8448, 16 heads, head dim 128, H100 80GB SXM5 = 0.668 of 989" if h100 else
            "Dao, FlashAttention-2 (arXiv 2307.08691) abstract: 50-73 % of the A100 peak; the midpoint 0.615"),
        "memory.*.row_elems": "vLLM csrc activation_kernels.cu, layernorm_kernels.cu: grid(num_tokens), "
                              "block(min(d, 1024)), one element per thread per pass; pos_encoding_kernels.cu: "
                              "block(min(heads*rot_dim/2, 512)), two elements per thread",
        "memory.*.rows_per_sm": "CUDA programming guide: 2048 resident threads per SM (sm_80, sm_90) / threads per CTA",
        "memory.embedding.small_rows": "pytorch aten/src/ATen/native/cuda/Indexing.cu: index_select takes the "
                                       "small-index kernel (serial over indices) when numIndices <= 16",
        "memory.softmax, reduction, copy": "no data: these families use the elementwise parameters",
    }
    return GpuKernels(sms=132 if h100 else 108, min_kernel_s=1e-6,
                      gemm=GemmKernel(tiles, (1, 2, 4, 8), 256, 0.8, 0.5, 4e-6, 3e12 if h100 else 1.6e12, 3.0),
                      attention=AttentionKernel(0.668 if h100 else 0.615, 0.85),
                      memory=MappingProxyType(memory), sources=MappingProxyType(sources))


def resolution_error(predicted: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """``max(0, |predicted − measured| − RESOLUTION_S/2) / measured``.

    Examples
    --------
    >>> resolution_error(np.array([1.4e-6, 110e-6]), np.array([1e-6, 100e-6])).round(3).tolist()
    [0.0, 0.095]
    """
    return np.maximum(0.0, np.abs(predicted - measured) - RESOLUTION_S / 2) / measured


def _loss(predicted: np.ndarray, measured: np.ndarray) -> float:
    """Robust (soft-L1) loss on the log of the resolution-aware error."""
    r = np.log1p(resolution_error(predicted, measured)) / 0.05
    return float(np.mean(np.sqrt(1 + r * r) - 1))


def _minimize(f: Callable[[np.ndarray], float], z0: np.ndarray, rounds: int = 2, iters: int = 200) -> np.ndarray:
    """Nelder–Mead on unconstrained parameters, restarted from the best point ``rounds`` times."""
    return nelder_mead(f, z0, step=0.2, rounds=rounds, iters=iters)


def _smooth_max(a: np.ndarray, b: np.ndarray, p: float) -> np.ndarray:
    top = np.maximum(np.maximum(a, b), 1e-300)
    return top * ((a / top) ** p + (b / top) ** p) ** (1.0 / p)


def _gemm_design(samples: Sequence[Sample], gemm: GemmKernel, sms: int, peak: Mapping[str, float],
                 onchip: float | None) -> tuple[np.ndarray, ...]:
    """``(work, factor, bytes, per-SM rate)`` of every GEMM sample's plans (rows padded with NaN).

    Only plans no other plan beats on work, tile intensity and bytes at once are kept: only they
    can be the fastest, whatever the fitted parameters.
    """
    kept = []
    for s in samples:
        plans = np.array(gemm_plans(*gemm_dims(s.op), gemm, sms, onchip, 2))  # type: ignore[misc]
        w, f, b = plans[:, 0], plans[:, 1], plans[:, 2]
        no_worse = (w[:, None] <= w) & (f[:, None] >= f) & (b[:, None] <= b)
        better = no_worse & ((w[:, None] < w) | (f[:, None] > f) | (b[:, None] < b))
        kept.append(np.unique(plans[~better.any(axis=0)], axis=0))
    width = max(len(k) for k in kept)
    work, factor, nbytes = (np.full((len(kept), width), np.nan) for _ in range(3))
    for i, k in enumerate(kept):
        work[i, :len(k)], factor[i, :len(k)], nbytes[i, :len(k)] = k.T
    rate = np.array([peak[s.op["dtype"]] / sms for s in samples])[:, None]
    return work, factor, nbytes, rate


def _fit_gemm(design: tuple[np.ndarray, ...], measured: np.ndarray, start: GemmKernel) -> GemmKernel:
    work, factor, nbytes, rate = design

    def unpack(z: np.ndarray) -> GemmKernel:
        eff, exponent, fixed, bandwidth, overlap = (float(v) for v in np.exp(z))
        return replace(start, efficiency=min(1.0, eff), tile_exponent=exponent, fixed_s=fixed,
                       bandwidth_bytes_per_s=bandwidth, overlap=1 + overlap)

    def predict(g: GemmKernel) -> np.ndarray:
        compute = work / (rate * g.efficiency * factor ** g.tile_exponent)
        return g.fixed_s + np.nanmin(_smooth_max(compute, nbytes / g.bandwidth_bytes_per_s, g.overlap), axis=1)

    z0 = np.log([start.efficiency, max(start.tile_exponent, 1e-3), start.fixed_s, start.bandwidth_bytes_per_s,
                 start.overlap - 1])
    return unpack(_minimize(lambda z: _loss(predict(unpack(z)), measured), z0))


def _fit_memory(samples: Sequence[Sample], start: MemoryKernel, sms: int, min_kernel: float,
                cached: float = 0.0, ceiling: float = 0.0) -> MemoryKernel:
    terms = np.array([memory_terms(s.op, start, memory_family(s.op)[1], sms) for s in samples], float)  # type: ignore[index]
    moved, passes, rows = terms.T
    count = np.array([s.kernels for s in samples], float)
    measured = np.array([s.seconds for s in samples])
    rowed, small = bool(passes.any()), bool(start.small_rows) and bool((rows <= start.small_rows).any())
    is_small = (rows <= start.small_rows) if start.small_rows else np.zeros(len(rows), bool)
    use_cache = bool(cached) and ceiling > start.bandwidth_bytes_per_s and not start.small_rows

    def unpack(z: np.ndarray) -> MemoryKernel:
        values = iter(float(v) for v in np.exp(z))
        floor, bandwidth = next(values), next(values)
        row_pass, overlap = (next(values), 1 + next(values)) if rowed else (start.row_pass_s, start.overlap)
        small_row = next(values) if small else start.small_row_s
        # between the DRAM bandwidth and the on-chip level's (sourced) bandwidth
        hi = bandwidth + (ceiling - bandwidth) / (1 + 1 / next(values)) if use_cache else 0.0
        return replace(start, floor_s=floor, bandwidth_bytes_per_s=bandwidth, row_pass_s=row_pass, overlap=overlap,
                       small_row_s=small_row, cached_bandwidth_bytes_per_s=hi)

    def predict(k: MemoryKernel) -> np.ndarray:
        if k.cached_bandwidth_bytes_per_s:
            hit = np.minimum(moved, cached)
            stream = hit / k.cached_bandwidth_bytes_per_s + (moved - hit) / k.bandwidth_bytes_per_s
        else:
            stream = moved / k.bandwidth_bytes_per_s
        body = _smooth_max(passes * k.row_pass_s, stream, k.overlap)
        t = np.where(is_small, k.floor_s + rows * k.small_row_s, k.floor_s + body)
        return np.maximum(min_kernel, t) * count

    z0 = [start.floor_s, start.bandwidth_bytes_per_s]
    z0 += [start.row_pass_s, start.overlap - 1] if rowed else []
    z0 += [start.small_row_s] if small else []
    z0 += [0.3] if use_cache else []
    z = _minimize(lambda z: _loss(predict(unpack(z)), measured), np.log(z0))
    return unpack(z)


def _gpu_of(samples: Sequence[Sample]) -> str:
    gpus = sorted({s.gpu for s in samples})
    if len(gpus) != 1:
        raise CalibrationError(f"samples: got GPUs {gpus}, expected the samples of exactly one GPU")
    return gpus[0]


def _platform(gpu: str, platform: str | Platform | None) -> Platform:
    if platform is None:
        if gpu not in PRESETS:
            raise CalibrationError(f"samples: got GPU {gpu!r}, expected one of {', '.join(PRESETS)} or a platform")
        platform = PRESETS[gpu]
    return load_platform(platform)


def fit_kernels(samples: Sequence[Sample], base: GpuKernels | None = None, *,
                platform: str | Platform | None = None) -> GpuKernels:
    """Fit the GEMM and memory-family parameters of one GPU's kernel model to ``samples``.

    ``base`` gives the structure (SMs, tiles, row sizes) and the starting values (default
    :func:`base_kernels`); ``platform`` gives the peaks and memory (default the GPU's preset in
    :data:`PRESETS`). Attention parameters are not fitted (the table has no attention kernels):
    ``flash_efficiency`` stays sourced and ``decode_bandwidth_fraction`` is set to the fitted GEMM
    streaming bandwidth over the memory's bandwidth (assumed: a decode attention kernel streams
    its KV cache as a thin GEMM streams its weights). ``min_kernel_s`` is the shortest kernel
    measured.

    Examples
    --------
    Residual adds of two "models" timed as 2 µs + bytes / 2 TB/s on an H100 give the bandwidth
    back (the floor only to within the half microsecond the fit forgives):

    >>> def add(t, group):
    ...     op = {"op": "elementwise", "target": "aten.add.Tensor", "shape": (t, 4096),
    ...           "bytes_read": 4 * t * 4096, "bytes_written": 2 * t * 4096}
    ...     return Sample(op, 2e-6 + 6 * t * 4096 / 2e12, group, "residual_add", "h100")
    >>> samples = [add(2 ** i, f"m{i % 2}") for i in range(18)]
    >>> k = fit_kernels(samples)
    >>> fam = k.memory["elementwise"]
    >>> round(fam.bandwidth_bytes_per_s / 1e12, 2), 1.5e-6 <= fam.floor_s <= 2.5e-6
    (2.0, True)
    >>> round(float(predict(samples, k)[-1] / samples[-1].seconds), 3)
    1.0
    >>> [(r.family, r.n, r.median < 0.01) for r in cross_validate(samples)]
    [('residual_add', 18, True)]
    """
    gpu = _gpu_of(samples)
    return _fit(samples, base or base_kernels(gpu), _platform(gpu, platform))


def _fit(samples: Sequence[Sample], base: GpuKernels, plat: Platform,
         design: tuple[np.ndarray, ...] | None = None) -> GpuKernels:
    """:func:`fit_kernels`, given the GEMM samples' plans when they are already known."""
    gpu = samples[0].gpu
    unit = next(u for u in plat.units if u.kind == "gpu")
    memory = plat.memory(unit.memory)
    where = f"fitted to {_DATA} (gpu={gpu}, {len({s.group for s in samples})} models: {{}})"
    sources = dict(base.sources)
    min_kernel = min(s.seconds / s.kernels for s in samples)
    sources["min_kernel"] = where.format("the shortest measured kernel").replace("fitted to", "measured in")
    gemm_samples = [s for s in samples if s.family == "gemm"]
    gemm = base.gemm
    if gemm_samples:
        if design is None:
            design = _gemm_design(gemm_samples, base.gemm, base.sms, unit.peak_flop_per_s, unit.onchip_bytes)
        gemm = _fit_gemm(design, np.array([s.seconds for s in gemm_samples]), base.gemm)
        for key in ("efficiency", "tile_exponent", "fixed", "bandwidth", "overlap"):
            sources[f"gemm.{key}"] = where.format(f"{len(gemm_samples)} rows of the 4 linear ops")
    families = dict(base.memory)
    for family, key in _PARAMS.items():
        chosen = [s for s in samples if s.family == family]
        if chosen and key in families:
            families[key] = _fit_memory(chosen, families[key], base.sms, min_kernel, unit.onchip_bytes or 0.0,
                                        unit.onchip_bandwidth_bytes_per_s or 0.0)
            sources[f"memory.{key}"] = where.format(f"{len(chosen)} {family} rows")
    fraction = min(1.0, gemm.bandwidth_bytes_per_s / memory.bandwidth_bytes_per_s)
    sources["attention.decode_bandwidth_fraction"] = (
        "assumption: the fitted GEMM streaming bandwidth / the memory's bandwidth (no attention kernels in the table)")
    return replace(base, min_kernel_s=min_kernel, gemm=gemm, memory=MappingProxyType(families),
                   attention=replace(base.attention, decode_bandwidth_fraction=fraction),
                   sources=MappingProxyType(sources))


def predict(samples: Iterable[Sample], kernels: GpuKernels, platform: str | Platform | None = None) -> np.ndarray:
    """Predicted seconds of each sample (its ``kernels`` kernels) through :func:`kernel_cost`, on
    ``platform`` (default the GPU's preset) with ``kernels`` on its GPU unit (see
    :func:`fit_kernels` for an example)."""
    samples = list(samples)
    plat = _platform(_gpu_of(samples), platform)
    unit = replace(next(u for u in plat.units if u.kind == "gpu"), kernels=kernels)
    memory = plat.memory(unit.memory)
    out = []
    for s in samples:
        cost = kernel_cost(s.op, unit, memory)
        if cost is None:
            raise CalibrationError(f"sample {s.family} of {s.group}: the kernel model does not cover op {s.op['op']!r}")
        out.append(cost.total_s * s.kernels)
    return np.array(out)


def error_rows(samples: Sequence[Sample], predicted: np.ndarray) -> list[ErrorRow]:
    """Median, 90th percentile and worst |error| per (GPU, family), sorted.

    Examples
    --------
    >>> s = [Sample({}, 10e-6, "m", "norm", "a100"), Sample({}, 100e-6, "m", "norm", "a100")]
    >>> r = error_rows(s, np.array([11e-6, 100e-6]))[0]
    >>> r.n, round(r.worst, 3), round(r.median_raw, 3)
    (2, 0.05, 0.05)
    """
    measured = np.array([s.seconds for s in samples])
    tol, raw = resolution_error(predicted, measured), np.abs(predicted / measured - 1)
    rows = []
    for gpu, family in sorted({(s.gpu, s.family) for s in samples}):
        pick = np.array([s.gpu == gpu and s.family == family for s in samples])
        rows.append(ErrorRow(gpu, family, int(pick.sum()), float(np.median(tol[pick])),
                             float(np.percentile(tol[pick], 90)), float(tol[pick].max()),
                             float(np.median(raw[pick])), float(np.percentile(raw[pick], 90))))
    return rows


def cross_validate(samples: Sequence[Sample]) -> list[ErrorRow]:
    """Leave-one-model-out per GPU: fit on the other models, predict the held-out one; the error
    table of every prediction per (GPU, family) (see :func:`fit_kernels` for an example)."""
    predicted = np.zeros(len(samples))
    for gpu in sorted({s.gpu for s in samples}):
        base, plat = base_kernels(gpu), _platform(gpu, None)
        unit = next(u for u in plat.units if u.kind == "gpu")
        gemms = [s for s in samples if s.gpu == gpu and s.family == "gemm"]
        design = _gemm_design(gemms, base.gemm, base.sms, unit.peak_flop_per_s, unit.onchip_bytes) if gemms else ()
        for group in sorted({s.group for s in samples if s.gpu == gpu}):
            held = [i for i, s in enumerate(samples) if s.gpu == gpu and s.group == group]
            train = [s for s in samples if s.gpu == gpu and s.group != group]
            rows = np.array([s.group != group for s in gemms])
            kernels = _fit(train, base, plat, tuple(a[rows] for a in design) if gemms else None)
            predicted[held] = predict([samples[i] for i in held], kernels, plat)
    return error_rows(samples, predicted)
