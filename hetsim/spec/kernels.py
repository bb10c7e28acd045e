"""The kernel-level model of one GPU: every parameter :mod:`hetsim.cost.gpu_kernels` needs.

A :class:`GpuKernels` rides on a :class:`~hetsim.spec.types.ComputeUnit` (its ``kernels`` field)
and replaces the unit's one-efficiency-per-op-kind roofline for the ops it models. It holds
values only; the formulas that use them are in :mod:`hetsim.cost.gpu_kernels` (``spec`` imports
no cost code). Every parameter says in ``sources`` whether it is fitted (and to which rows of
which table) or taken from a datasheet, a paper or a kernel's source.

The YAML form (a ``kernels:`` mapping on a unit; quantities may carry units)::

    kernels:
      sms: 108                         # streaming multiprocessors
      min_kernel: 1 us                 # the shortest kernel the GPU runs (GPU side, no launch)
      gemm: {tiles: [[256, 128], [128, 128]], split_k: [1, 2, 4], split_k_min_depth: 256,
             efficiency: 0.74, tile_exponent: 0.4, fixed: 4.2 us, bandwidth: 1.62 TB/s, overlap: 4.5}
      attention: {flash_efficiency: 0.615, decode_bandwidth_fraction: 0.8}
      memory:                          # memory-bound kernel families
        norm: {floor: 1.2 us, bandwidth: 1.1 TB/s, cached_bandwidth: 1.6 TB/s, row_pass: 0.45 us,
               row_elems: 1024, rows_per_sm: 2, overlap: 2}
        embedding: {floor: 2 us, bandwidth: 300 GB/s, small_rows: 16, small_row: 0.7 us}
      sources: {gemm.efficiency: "fitted to shared/calibration/gpu_ops.csv (...)"}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from hetsim.errors import SpecError
from hetsim.units import parse_positive

#: memory-bound kernel families :mod:`hetsim.cost.gpu_kernels` knows; a missing one falls back to
#: ``elementwise``
MEMORY_FAMILIES = ("norm", "activation", "rotary", "elementwise", "embedding", "softmax", "reduction", "copy")


@dataclass(frozen=True)
class GemmKernel:
    """Matrix-multiply kernels: the tile shapes a cuBLAS-like heuristic picks from, and their rates.

    A GEMM runs as CTAs of one ``Tm×Tn`` output tile (``split_k`` ways along K when that helps)
    in waves over the SMs; each wave takes a tile's FLOPs at ``efficiency`` of the per-SM tensor
    peak, times ``(intensity / intensity of 128×128) ** tile_exponent`` (capped at 1) for tiles
    smaller than 128×128, whose operands per FLOP are more. Its DRAM bytes stream at
    ``bandwidth_bytes_per_s``; compute and memory time combine as an ``overlap``-norm (a smooth
    maximum: 1 adds them, infinity is the plain maximum) plus ``fixed_s``.
    """

    tiles: tuple[tuple[int, int], ...]
    split_k: tuple[int, ...]
    split_k_min_depth: int
    efficiency: float
    tile_exponent: float
    fixed_s: float
    bandwidth_bytes_per_s: float
    overlap: float


@dataclass(frozen=True)
class AttentionKernel:
    """Fused attention: FlashAttention's fraction of the tensor peak on the score and value
    products, and the fraction of the memory's bandwidth a decode (one query row) kernel streams
    the KV cache at."""

    flash_efficiency: float
    decode_bandwidth_fraction: float


@dataclass(frozen=True)
class MemoryKernel:
    """One family of memory-bound kernels (norms, activations, rotary, elementwise, gathers).

    Time is ``max(min_kernel, floor_s + ‖(row time, bytes / bandwidth_bytes_per_s)‖_overlap)``.
    Row-parallel kernels (one CTA per token, as vLLM's RMSNorm, SiLU-and-mul and rotary kernels
    launch: ``grid(num_tokens)``) add a latency term: each CTA makes ``ceil(width / row_elems)``
    passes over its row of ``row_pass_s`` each, and ``rows_per_sm`` CTAs fit on one SM, so the
    rows run in waves. Flat (grid-stride) kernels have ``row_pass_s = 0``. With a
    ``cached_bandwidth_bytes_per_s``, the first bytes up to the unit's on-chip (L2) capacity
    stream at that rate and only the rest at ``bandwidth_bytes_per_s``: the producer of a
    kernel's input has just left it in L2, and L2 absorbs its writes. A kernel with at most
    ``small_rows`` rows takes ``floor_s + rows × small_row_s`` instead (PyTorch's index_select
    iterates over at most 16 indices serially).
    """

    floor_s: float
    bandwidth_bytes_per_s: float
    row_pass_s: float = 0.0
    row_elems: int = 1024
    rows_per_sm: int = 2
    overlap: float = 2.0
    small_rows: int = 0
    small_row_s: float = 0.0
    cached_bandwidth_bytes_per_s: float = 0.0


@dataclass(frozen=True)
class GpuKernels:
    """Every parameter of the kernel model of one GPU (see the module docstring).

    Examples
    --------
    >>> k = parse_kernels({"sms": 108, "min_kernel": "1 us",
    ...     "gemm": {"tiles": [[128, 128]], "split_k": [1], "split_k_min_depth": 256, "efficiency": 0.8,
    ...              "tile_exponent": 0, "fixed": "4 us", "bandwidth": "1.6 TB/s", "overlap": 4},
    ...     "attention": {"flash_efficiency": 0.6, "decode_bandwidth_fraction": 0.8},
    ...     "memory": {"elementwise": {"floor": "1 us", "bandwidth": "1.8 TB/s"}}}, "units.gpu.kernels")
    >>> k.sms, k.gemm.fixed_s, k.memory["elementwise"].bandwidth_bytes_per_s
    (108, 4e-06, 1800000000000.0)
    >>> parse_kernels(kernels_to_dict(k), "k") == k
    True
    """

    sms: int
    min_kernel_s: float
    gemm: GemmKernel
    attention: AttentionKernel
    memory: Mapping[str, MemoryKernel]
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def family(self, name: str) -> MemoryKernel | None:
        """The parameters of memory-bound family ``name``, else ``elementwise``'s, else ``None``."""
        return self.memory.get(name) or self.memory.get("elementwise")


_TOP = {"sms", "min_kernel", "gemm", "attention", "memory", "sources"}
_GEMM = {"tiles", "split_k", "split_k_min_depth", "efficiency", "tile_exponent", "fixed", "bandwidth", "overlap"}
_ATTENTION = {"flash_efficiency", "decode_bandwidth_fraction"}
_MEMORY = {"floor", "bandwidth", "row_pass", "row_elems", "rows_per_sm", "overlap", "small_rows", "small_row",
           "cached_bandwidth"}


def _mapping(raw: Any, where: str, allowed: set[str]) -> Mapping:
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: got {raw!r}, expected a mapping")
    unknown = sorted(str(k) for k in set(raw) - allowed)
    if unknown:
        raise SpecError(f"{where}.{unknown[0]}: unknown field, expected one of {', '.join(sorted(allowed))}")
    return raw


def _required(raw: Mapping, key: str, where: str) -> Any:
    if raw.get(key) is None:
        raise SpecError(f"{where}.{key}: missing, this field is required")
    return raw[key]


def _number(value: Any, where: str, *, low: float = 0.0, high: float = math.inf, open_low: bool = True) -> float:
    """A finite plain number in (low, high] (or [low, high] with ``open_low=False``)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value > low or (not open_low and value == low)) and value <= high:
        return float(value)
    bound = f"({low:g}, {high:g}]" if open_low else f"[{low:g}, {high:g}]"
    raise SpecError(f"{where}: got {value!r}, expected a finite number in {bound}")


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{where}: got {value!r}, expected a positive whole number")
    return value


def _counts(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise SpecError(f"{where}: got {value!r}, expected a non-empty list of positive whole numbers")
    return tuple(_count(v, f"{where}[{i}]") for i, v in enumerate(value))


def _tiles(value: Any, where: str) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list | tuple) or not value:
        raise SpecError(f"{where}: got {value!r}, expected a non-empty list of [rows, columns] tile shapes")
    tiles = []
    for i, tile in enumerate(value):
        if not isinstance(tile, list | tuple) or len(tile) != 2:
            raise SpecError(f"{where}[{i}]: got {tile!r}, expected a [rows, columns] pair")
        tiles.append((_count(tile[0], f"{where}[{i}][0]"), _count(tile[1], f"{where}[{i}][1]")))
    return tuple(tiles)


def _gemm(raw: Any, where: str) -> GemmKernel:
    raw = _mapping(raw, where, _GEMM)
    return GemmKernel(
        tiles=_tiles(_required(raw, "tiles", where), f"{where}.tiles"),
        split_k=_counts(raw.get("split_k", [1]), f"{where}.split_k"),
        split_k_min_depth=_count(raw.get("split_k_min_depth", 256), f"{where}.split_k_min_depth"),
        efficiency=_number(_required(raw, "efficiency", where), f"{where}.efficiency", high=1.0),
        tile_exponent=_number(raw.get("tile_exponent", 0.0), f"{where}.tile_exponent", high=10.0, open_low=False),
        fixed_s=parse_positive(raw.get("fixed", 0.0), "time", f"{where}.fixed", allow_zero=True),
        bandwidth_bytes_per_s=parse_positive(_required(raw, "bandwidth", where), "bandwidth", f"{where}.bandwidth"),
        overlap=_number(raw.get("overlap", 2.0), f"{where}.overlap", low=1.0, high=1e3, open_low=False),
    )


def _attention(raw: Any, where: str) -> AttentionKernel:
    raw = _mapping(raw, where, _ATTENTION)
    return AttentionKernel(
        flash_efficiency=_number(_required(raw, "flash_efficiency", where), f"{where}.flash_efficiency", high=1.0),
        decode_bandwidth_fraction=_number(_required(raw, "decode_bandwidth_fraction", where),
                                          f"{where}.decode_bandwidth_fraction", high=1.0),
    )


def _memory_kernel(raw: Any, where: str) -> MemoryKernel:
    raw = _mapping(raw, where, _MEMORY)
    return MemoryKernel(
        floor_s=parse_positive(raw.get("floor", 0.0), "time", f"{where}.floor", allow_zero=True),
        bandwidth_bytes_per_s=parse_positive(_required(raw, "bandwidth", where), "bandwidth", f"{where}.bandwidth"),
        row_pass_s=parse_positive(raw.get("row_pass", 0.0), "time", f"{where}.row_pass", allow_zero=True),
        row_elems=_count(raw.get("row_elems", 1024), f"{where}.row_elems"),
        rows_per_sm=_count(raw.get("rows_per_sm", 2), f"{where}.rows_per_sm"),
        overlap=_number(raw.get("overlap", 2.0), f"{where}.overlap", low=1.0, high=1e3, open_low=False),
        small_rows=_count(raw["small_rows"], f"{where}.small_rows") if raw.get("small_rows") else 0,
        small_row_s=parse_positive(raw.get("small_row", 0.0), "time", f"{where}.small_row", allow_zero=True),
        cached_bandwidth_bytes_per_s=parse_positive(raw.get("cached_bandwidth", 0.0), "bandwidth",
                                                    f"{where}.cached_bandwidth", allow_zero=True),
    )


def parse_kernels(mapping: Any, where: str) -> GpuKernels:
    """Check a ``kernels:`` mapping (see the module docstring) and build the :class:`GpuKernels`.

    ``where`` names the mapping in error messages (``units.gpu.kernels``).

    Raises
    ------
    SpecError
        One line naming the first bad field, its value and what was expected.

    Examples
    --------
    >>> parse_kernels({"sms": -4}, "units.gpu.kernels")
    Traceback (most recent call last):
    ...
    hetsim.errors.SpecError: units.gpu.kernels.sms: got -4, expected a positive whole number
    """
    raw = _mapping(mapping, where, _TOP)
    sms = _count(_required(raw, "sms", where), f"{where}.sms")
    min_kernel = parse_positive(raw.get("min_kernel", 0.0), "time", f"{where}.min_kernel", allow_zero=True)
    gemm = _gemm(_required(raw, "gemm", where), f"{where}.gemm")
    attention = _attention(_required(raw, "attention", where), f"{where}.attention")
    memory_raw = _mapping(_required(raw, "memory", where), f"{where}.memory", set(MEMORY_FAMILIES))
    memory = {str(k): _memory_kernel(v, f"{where}.memory.{k}") for k, v in memory_raw.items()}
    sources = raw.get("sources") or {}
    if not isinstance(sources, Mapping):
        raise SpecError(f"{where}.sources: got {sources!r}, expected a mapping parameter -> where it comes from")
    return GpuKernels(sms=sms, min_kernel_s=min_kernel, gemm=gemm, attention=attention,
                      memory=MappingProxyType(memory),
                      sources=MappingProxyType({str(k): str(v) for k, v in sources.items()}))


def _time(seconds: float) -> str:
    return f"{seconds * 1e6:.6g} us"


def _bandwidth(bytes_per_s: float) -> str:
    return f"{bytes_per_s / 1e9:.6g} GB/s"


def kernels_to_dict(kernels: GpuKernels) -> dict:
    """The YAML-ready mapping :func:`parse_kernels` reads back (times in µs, bandwidths in GB/s,
    six significant digits).

    Examples
    --------
    >>> from types import MappingProxyType
    >>> k = GpuKernels(132, 1e-6, GemmKernel(((128, 256),), (1, 2), 256, 0.75, 0.5, 4.2e-6, 3.0e12, 3.0),
    ...                AttentionKernel(0.668, 0.9), MappingProxyType({"norm": MemoryKernel(1e-6, 2.5e12)}))
    >>> d = kernels_to_dict(k)
    >>> d["gemm"]["fixed"], d["memory"]["norm"]["bandwidth"]
    ('4.2 us', '2500 GB/s')
    """
    g = kernels.gemm
    memory = {}
    for name, m in kernels.memory.items():
        entry: dict[str, Any] = {"floor": _time(m.floor_s), "bandwidth": _bandwidth(m.bandwidth_bytes_per_s)}
        if m.row_pass_s or (m.row_elems, m.rows_per_sm) != (1024, 2):
            entry.update(row_pass=_time(m.row_pass_s), row_elems=m.row_elems, rows_per_sm=m.rows_per_sm)
        entry["overlap"] = float(f"{m.overlap:.6g}")
        if m.small_rows:
            entry.update(small_rows=m.small_rows, small_row=_time(m.small_row_s))
        if m.cached_bandwidth_bytes_per_s:
            entry["cached_bandwidth"] = _bandwidth(m.cached_bandwidth_bytes_per_s)
        memory[name] = entry
    return {
        "sms": kernels.sms,
        "min_kernel": _time(kernels.min_kernel_s),
        "gemm": {"tiles": [list(t) for t in g.tiles], "split_k": list(g.split_k),
                 "split_k_min_depth": g.split_k_min_depth, "efficiency": float(f"{g.efficiency:.6g}"),
                 "tile_exponent": float(f"{g.tile_exponent:.6g}"), "fixed": _time(g.fixed_s),
                 "bandwidth": _bandwidth(g.bandwidth_bytes_per_s), "overlap": float(f"{g.overlap:.6g}")},
        "attention": {"flash_efficiency": float(f"{kernels.attention.flash_efficiency:.6g}"),
                      "decode_bandwidth_fraction": float(f"{kernels.attention.decode_bandwidth_fraction:.6g}")},
        "memory": memory,
        "sources": dict(kernels.sources),
    }


def fitted_names() -> list[str]:
    """Names of the packaged fitted kernel models (``hetsim/spec/presets/kernels/*.yaml``).

    Examples
    --------
    >>> fitted_names()
    ['a100-80gb', 'h100-sxm5']
    """
    from importlib import resources

    files = (resources.files("hetsim.spec.presets") / "kernels").iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".yaml"))


def scale_bandwidth(kernels: GpuKernels, factor: float) -> GpuKernels:
    """``kernels`` with every DRAM bandwidth times ``factor`` (on-chip ``cached_bandwidth`` kept).

    Examples
    --------
    >>> k = fitted_kernels("h100-sxm5", 3.35e12, "k")
    >>> scale_bandwidth(k, 2.0).gemm.bandwidth_bytes_per_s == 2 * k.gemm.bandwidth_bytes_per_s
    True
    """
    from dataclasses import replace

    memory = {name: replace(m, bandwidth_bytes_per_s=m.bandwidth_bytes_per_s * factor)
              for name, m in kernels.memory.items()}
    gemm = replace(kernels.gemm, bandwidth_bytes_per_s=kernels.gemm.bandwidth_bytes_per_s * factor)
    return replace(kernels, gemm=gemm, memory=MappingProxyType(memory))


def fitted_kernels(name: str, memory_bandwidth_bytes_per_s: float, where: str) -> GpuKernels:
    """The packaged fitted model ``name`` for a unit whose memory streams ``memory_bandwidth_bytes_per_s``.

    A preset names one (``kernels: h100-sxm5``) for a GPU of the architecture it was fitted on;
    its DRAM bandwidths are scaled by the unit's memory bandwidth over that of the measured part
    (an H200's 4.8 TB/s HBM3e streams 4.8/3.35 times the H100's rate; an assumption: the same
    fraction of peak), and ``sources`` says so.

    Examples
    --------
    >>> h200, h100 = fitted_kernels("h100-sxm5", 4.8e12, "k"), fitted_kernels("h100-sxm5", 3.35e12, "k")
    >>> h200.sms, round(h200.gemm.bandwidth_bytes_per_s / h100.gemm.bandwidth_bytes_per_s, 4)
    (132, 1.4328)
    >>> fitted_kernels("b200", 8e12, "units.gpu.kernels")
    Traceback (most recent call last):
    ...
    hetsim.errors.SpecError: units.gpu.kernels: got 'b200', expected a kernels mapping or one of a100-80gb, h100-sxm5
    """
    from importlib import resources

    import yaml

    if name not in fitted_names():
        raise SpecError(f"{where}: got {name!r}, expected a kernels mapping or one of {', '.join(fitted_names())}")
    text = (resources.files("hetsim.spec.presets") / "kernels" / f"{name}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    measured = parse_positive(data["measured_on"]["memory_bandwidth"], "bandwidth", f"{name}.measured_on")
    kernels = parse_kernels(data["kernels"], f"{where} ({name})")
    factor = memory_bandwidth_bytes_per_s / measured
    if factor == 1.0:
        return kernels
    sources = dict(kernels.sources, bandwidths=f"assumption: {name}'s fitted DRAM bandwidths x {factor:.4g} (this "
                   f"unit's memory bandwidth over the {measured / 1e12:.4g} TB/s of the part it was measured on)")
    return replace_sources(scale_bandwidth(kernels, factor), sources)


def replace_sources(kernels: GpuKernels, sources: Mapping[str, str]) -> GpuKernels:
    """``kernels`` with ``sources`` instead of its own."""
    from dataclasses import replace

    return replace(kernels, sources=MappingProxyType(dict(sources)))
