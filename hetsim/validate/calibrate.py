"""Measure this machine with microbenchmarks and fit a device profile that loads as a Platform.

:func:`calibrate` times single ATen ops (:mod:`hetsim.validate.microbench`) and
:func:`fit_profile` turns the records into a platform mapping in the loader's schema
(:mod:`hetsim.spec.loader`): one compute unit on one memory, with

- ``peak`` per dtype: the best GEMM rate measured in that dtype;
- the memory's ``bandwidth``: the best large ``copy_`` rate (bytes read + written per second),
  its ``capacity``: ``MemTotal`` of ``/proc/meminfo`` (or the CUDA device's memory);
- ``overhead``: the median fixed cost of the measured ops, ``overheads`` per ATen target and per
  op kind (``view`` included): the median time of each one's tiny calls;
- ``curves`` per ATen target in its dtype (``"aten.linear.default:fp32"``; bare target for ops
  capture gives no dtype: copies, embeddings, creation ops) and per kind as fallback
  (``"matmul:fp32"``, ``"matmul"``): FLOPs for matmul and attention, bytes for the rest (see
  :mod:`hetsim.validate._fit`). Kernels of one target that differ by an argument get a variant
  key, ``"aten.gelu.default[approximate=tanh]:fp32"``;
- one power state at the current clock, with power figures that are labelled assumptions;
- ``manifest``: :func:`hetsim.validate.manifest.current_manifest` plus the grid and counts.

The FLOP curves of matrix ops are fitted on calls with at least :data:`MIN_ROWS` rows (tokens,
query positions), which reuse each weight enough to be compute-bound. Thinner calls (a decode
step's GEMVs, attention over one query) stream their operands and take about ``bytes / bandwidth``:
on a FLOP curve they would drag the rate of every small GEMM down (the same FLOPs in 128 rows run
ten times faster than in one), so they are left to the memory bandwidth, which
:func:`hetsim.cost.roofline.op_cost` uses as a lower bound on every FLOP-curve op. That
bandwidth's ``efficiency`` is what the measured one-row linears stream at
(:func:`streaming_efficiency`), since one core runs a GEMV below its copy bandwidth.

Only microbenchmarks are measured: no model is run.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hetsim.errors import HetsimError
from hetsim.validate._fit import fit_curve, robust_overhead
from hetsim.validate.microbench import Progress, Record

#: op kinds whose curves are over FLOPs; every other kind's is over bytes moved
FLOP_KINDS = frozenset({"matmul", "attention", "conv"})
#: matrix ops with fewer rows than this (GEMV-like: decode steps, a pooler on one token) stream
#: their weights once per few rows; they are left out of the FLOP curves (see the module docstring)
MIN_ROWS = 32
#: the curve-key suffix of one-row matrix products (see :func:`_thin_curves`)
THIN = "[rows=1]"
#: per-core power of a server CPU core, from the xeon-8480 preset (80 W idle, 270 W dynamic, 56 cores)
_CORE_STATIC_W, _CORE_DYNAMIC_W = 80 / 56, 270 / 56


class CalibrationError(HetsimError, ValueError):
    """Calibration cannot run as asked (no such device, bad thread count, bad output path)."""


def check_device(device: str) -> str:
    """``device`` if it can be measured here, else a one-line :class:`CalibrationError`."""
    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        import torch

        if not torch.cuda.is_available():
            raise CalibrationError(f"--device: got {device!r}, but torch sees no CUDA device on this machine "
                                   f"(torch {torch.__version__}); use --device cpu")
        return device
    raise CalibrationError(f"--device: got {device!r}, expected cpu or cuda")


def calibrate(device: str = "cpu", threads: int | None = None, quick: bool = False,
              progress: Progress | None = None, name: str | None = None,
              targets: Iterable[str] | None = None) -> dict:
    """Run the microbenchmarks on ``device`` and fit a platform mapping (see the module docstring).

    Parameters
    ----------
    device
        ``"cpu"`` or ``"cuda"`` (``"cuda:N"``).
    threads
        torch threads to measure with; default all cores but one (at least one).
    quick
        The reduced grid (under a minute on a small CPU) instead of the full one (a few minutes).
    progress
        Called after each microbenchmark with (done, total, label).
    name
        The platform's name; default ``"<device kind>-calibrated"``.
    targets
        Only these ATen targets (for tests); every target by default.
    """
    from hetsim.validate._bench_cases import suite
    from hetsim.validate.manifest import current_manifest
    from hetsim.validate.microbench import GRID_SETTINGS, Context, default_threads, pinned_threads, run_suite

    device = check_device(device)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise CalibrationError(f"--threads: got {threads!r}, expected a positive whole number")
    threads = threads or default_threads()
    grid = "quick" if quick else "full"
    cases = suite(grid, targets)
    if cases and targets is not None:  # the memory bandwidth comes from copies: always measure them
        cases = suite(grid, sorted({*targets, "aten.copy_.default"}))
    if not cases:
        raise CalibrationError(f"targets: got {sorted(targets or [])!r}, expected ATen targets of the suite "
                               "(e.g. aten.add.Tensor)")
    start = time.perf_counter()
    with pinned_threads(threads):
        context = Context.cold(device)
        records = run_suite(cases, device=device, threads=threads, progress=progress, context=context,
                            **GRID_SETTINGS[grid])
    manifest = dict(current_manifest(device, threads), context=context.describe(), **GRID_SETTINGS[grid])
    return fit_profile(records, device=device, threads=threads, grid=grid, name=name,
                       duration_s=time.perf_counter() - start, manifest=manifest)


def _key(target: str, variant: str, dtype: str | None) -> str:
    base = f"{target}[{variant}]" if variant else target
    return f"{base}:{dtype}" if dtype else base


def _size(r: Record) -> int:
    return r.flop if r.kind in FLOP_KINDS else r.bytes


def _overheads(records: Sequence[Record]) -> dict[tuple[str, str], float]:
    """Fixed cost per (target, variant): the median of its tiny calls, but never more than its
    fastest call (a noisy tiny call must not leave a bigger call with a negative excess)."""
    by: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in records:
        by[(r.target, r.variant)].append(r)
    out = {}
    for key, rs in by.items():
        tiny = [r for r in rs if r.tiny and r.kind != "view"] or [r for r in rs if r.tiny]
        fastest = min(r.median_s for r in rs)
        out[key] = min(robust_overhead([r.median_s for r in tiny]), fastest) if tiny else fastest
    return out


def memory_bandwidth(records: Sequence[Record], overheads: Mapping[tuple[str, str], float]) -> float | None:
    """Best large-copy bandwidth (bytes read + written per second), ``None`` without a copy record.

    ``copy_`` into a preallocated tensor is preferred (no page faults on a fresh output); without
    one, the biggest ``clone``.
    """
    for target in ("aten.copy_.default", "aten.clone.default"):
        rs = [r for r in records if r.target == target and not r.tiny]
        if target == "aten.clone.default" and rs:
            rs = [max(rs, key=lambda r: r.bytes)]
        rates = [2 * r.bytes_written / max(r.median_s - overheads[(r.target, r.variant)], 1e-9) for r in rs]
        if rates:
            return max(rates)
    return None


def streaming_efficiency(records: Sequence[Record], overheads: Mapping[tuple[str, str], float],
                         bandwidth: float) -> float | None:
    """The fraction of the copy ``bandwidth`` a one-row matrix product (a decode GEMV) streams its
    operands at: the median over the measured one-row linears (tiny ones left out), at most 1.

    A matrix-vector product reads its weights once with little arithmetic per byte, yet one core
    runs it below its copy bandwidth (on the development machines: about half on an AMD EPYC,
    close to all of it on an Intel Xeon), so this fraction is what the memory bound of every FLOP
    curve op uses. ``None`` without such records.
    """
    rates = [r.bytes / (r.median_s - overheads[(r.target, r.variant)]) for r in records
             if r.kind == "matmul" and rows(r) == 1 and not r.tiny and r.median_s > overheads[(r.target, r.variant)]]
    return min(1.0, statistics.median(rates) / bandwidth) if rates else None


def rows(r: Record) -> int:
    """Rows of a matrix op's first operand: tokens of a linear, query length of attention."""
    first = r.shapes[0] if r.shapes else ()
    return int(first[-2]) if len(first) >= 2 else 1


def _curve_points(rs: Sequence[Record], overheads: Mapping[tuple[str, str], float]) -> list[tuple[float, float]]:
    pts = []
    for r in rs:
        if r.tiny or _size(r) <= 0 or (r.kind in FLOP_KINDS and rows(r) < MIN_ROWS):
            continue
        pts.append((float(_size(r)), r.median_s - overheads[(r.target, r.variant)]))
    return pts


def _curve(points: Sequence[tuple[float, float]], x: str) -> dict:
    fitted = fit_curve(points, merge=2.0, rising=True) if x == "flop" else fit_curve(points)
    pts, last = [], 0.0
    for size, rate in fitted:
        size = float(f"{size:.6g}")
        if size > last:  # rounding may merge two neighbours
            pts.append([size, float(f"{rate:.5g}")])
            last = size
    return {"x": x, "points": pts}


def _fit_curves(records: Sequence[Record], overheads: Mapping[tuple[str, str], float]) -> dict[str, dict]:
    """Curves per target (and variant) in its dtype, then per kind in each dtype and bare per kind."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        if r.kind == "view" or r.target == "aten.copy_.default":
            continue
        groups[_key(r.target, r.variant, r.dtype)].append(r)
        if r.variant:  # a non-default kernel of its target is no sample of the kind
            continue
        groups[_key(r.kind, "", r.dtype)].append(r)
        if r.tensor_dtype == "fp32" and r.dtype:
            groups[r.kind].append(r)
    curves = {}
    for key in sorted(groups):
        rs = groups[key]
        pts = _curve_points(rs, overheads)
        if pts:
            curves[key] = _curve(pts, "flop" if rs[0].kind in FLOP_KINDS else "bytes")
    curves.update(_thin_curves(records, overheads))
    return curves


def _thin_curves(records: Sequence[Record], overheads: Mapping[tuple[str, str], float]) -> dict[str, dict]:
    """Bytes curves of one-row matrix ops (decode GEMVs, attention of one query),
    ``"<target>[rows=1]:<dtype>"``: their measured streaming rate, which
    :func:`hetsim.cost.roofline.op_cost` uses for the memory part of a one-row op of that target
    instead of the memory's bandwidth."""
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in records:
        excess = r.median_s - overheads[(r.target, r.variant)]
        if r.kind in ("matmul", "attention") and rows(r) == 1 and not r.tiny and not r.variant and excess > 0:
            groups[f"{r.target}{THIN}:{r.dtype}" if r.dtype else f"{r.target}{THIN}"].append((float(r.bytes), excess))
    return {key: _curve(pts, "bytes") for key, pts in sorted(groups.items())}


def _kind_overheads(records: Sequence[Record], overheads: Mapping[tuple[str, str], float]) -> dict[str, float]:
    per_kind: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
    for r in records:
        per_kind[r.kind][(r.target, r.variant)] = overheads[(r.target, r.variant)]
    return {kind: statistics.median(v.values()) for kind, v in per_kind.items()}


def _cpu_freq_hz() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1]) * 1e6
    return None


def _memory_capacity(device: str) -> tuple[float, str]:
    if device.startswith("cuda"):
        import torch

        return float(torch.cuda.get_device_properties(torch.device(device)).total_memory), "torch.cuda"
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return float(line.split()[1]) * 1024, "/proc/meminfo MemTotal"
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), "sysconf physical pages"


def fit_profile(records: Sequence[Record], *, device: str = "cpu", threads: int = 1, grid: str = "full",
                name: str | None = None, duration_s: float | None = None,
                manifest: Mapping[str, Any] | None = None) -> dict:
    """The platform mapping fitted on ``records`` (see the module docstring); measures nothing.

    ``manifest`` replaces :func:`~hetsim.validate.manifest.current_manifest` (for tests and for
    records measured elsewhere); ``grid``, the record count and ``duration_s`` are added to it.
    """
    if not records:
        raise CalibrationError("calibrate: no microbenchmark was measured, expected at least one")
    from hetsim.validate.manifest import current_manifest

    gpu = device.startswith("cuda")
    manifest = dict(manifest) if manifest is not None else current_manifest(device, threads)
    manifest.update(grid=grid, microbenchmarks=len(records), targets=len({r.target for r in records}),
                    timing="eager call of the ATen overload, median of repeats")
    if duration_s is not None:
        manifest["duration_s"] = round(duration_s, 1)
    assumptions = [
        "Times are medians of repeated eager calls of single ATen overloads, arguments fetched from a one-node "
        "fx graph outside the clock, as hetsim.validate.measure times graph nodes; overheads are Python + "
        "dispatcher costs, not an Interpreter's.",
        "Each call starts cold, as inside a forward pass: 4x L2 of data is read before it, its inputs rotate "
        "through copies that the last-level cache cannot hold, and its output lands in memory not just freed "
        "(manifest.context). A model small enough to stay in cache runs its ops faster than this.",
        "One curve per ATen target (and variant) over FLOPs or bytes: shapes of equal size share a rate, so a "
        "GEMM whose shape is unusually (in)efficient for its FLOPs is off by its shape's deviation (about 15 %).",
        f"Matrix ops with fewer than {MIN_ROWS} rows (GEMV-like) are left out of the FLOP curves: their time is "
        "their bytes over the memory bandwidth.",
    ]
    overheads = _overheads(records)
    bandwidth = memory_bandwidth(records, overheads)
    if bandwidth is None:
        raise CalibrationError("records: no aten.copy_ or aten.clone was measured, expected copies to give the "
                               "memory bandwidth")
    curves = _fit_curves(records, overheads)
    streaming = streaming_efficiency(records, overheads, bandwidth)
    if streaming is not None:
        assumptions.append(f"Matrix ops too thin for the FLOP curves (fewer than {MIN_ROWS} rows) stream their "
                           f"operands at {streaming:.3f} of the copy bandwidth: the median of the measured one-row "
                           "linears (the memory's efficiency).")
    peak = {}
    for key, curve in curves.items():
        kind, _, dtype = key.partition(":")
        if kind == "matmul" and dtype:
            peak[dtype] = max(rate for _, rate in curve["points"])
    if "fp32" not in peak:
        flop_rates = [r.flop / max(r.median_s - overheads[(r.target, r.variant)], 1e-9) for r in records if r.flop]
        peak["fp32"] = max(flop_rates, default=1e9)
        assumptions.append("No fp32 GEMM was measured: the fp32 peak is the best FLOP rate of any measured op.")
    others = sorted({r.tensor_dtype for r in records} - {"fp32"})
    if others:
        assumptions.append(f"{', '.join(others)}: only GEMMs were measured; other ops in these dtypes fall back to "
                           "the bare per-kind curves, measured in fp32.")
    kind_overheads = _kind_overheads(records, overheads)
    non_view = [o for (t, v), o in overheads.items() if (t, v) not in {(r.target, r.variant) for r in records
                                                                         if r.kind == "view"}]
    target_overheads = {_key(t, v, None): o for (t, v), o in sorted(overheads.items())}
    overheads_out = {k: _seconds(v) for k, v in {**target_overheads, **kind_overheads}.items()}
    freq = _cpu_freq_hz() if not gpu else None
    if freq is None:
        freq = 1e9
        assumptions.append("Clock 1 GHz is a label, not a measurement (the current frequency could not be read).")
    else:
        assumptions.append(f"Clock {freq / 1e6:.0f} MHz is the current frequency from /proc/cpuinfo.")
    static_w, dynamic_w = (60.0, 300.0) if gpu else (_CORE_STATIC_W * threads, _CORE_DYNAMIC_W * threads)
    assumptions.append(
        "Power is not measured here: " + ("static 60 W and dynamic 300 W are generic GPU assumptions"
                                          if gpu else f"static {static_w:.2f} W and dynamic {dynamic_w:.2f} W are "
                                          f"{threads} x the per-core figures of the xeon-8480 preset (80 W idle and "
                                          "270 W dynamic over 56 cores)") + "; voltage 1 V is a normalised reference.")
    capacity, capacity_source = _memory_capacity(device)
    date = str(manifest.get("date", _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
    what = f"{manifest.get('device', device)} ({threads} thread{'s' if threads != 1 else ''})"
    source = f"measured by hetsim calibrate on {what} at {date}"
    kind = "gpu" if gpu else "cpu"
    return {
        "name": name or f"{kind}-calibrated",
        "description": f"Calibrated profile of {what}, {grid} grid",
        "source": source,
        "sources": {"MEASURED": source, "XEON-8480": "hetsim preset xeon-8480 (per-core power figures)"},
        "assumptions": assumptions,
        "memories": [{"name": "dram" if not gpu else "device_memory", "kind": "dram" if not gpu else "hbm",
                      "capacity": capacity, "bandwidth": float(f"{bandwidth:.5g}"),
                      "efficiency": round(streaming, 4) if streaming is not None else 1.0,
                      "source": f"bandwidth: best large copy_ measured; efficiency: one-row linears measured; "
                                f"capacity: {capacity_source or 'assumption'}"}],
        "units": [{
            "name": kind, "kind": kind, "memory": "dram" if not gpu else "device_memory",
            "peak": {k: float(f"{v:.5g}") for k, v in sorted(peak.items())},
            "efficiency": {"default": 1.0},
            "overhead": _seconds(statistics.median(non_view or list(overheads.values()))),
            "overheads": overheads_out,
            "curves": curves,
            "power_states": [{"name": "p0", "freq": float(f"{freq:.6g}"), "voltage": 1.0,
                              "static_power": round(static_w, 3), "dynamic_power": round(dynamic_w, 3)}],
            "source": "MEASURED (peak, overheads, curves); XEON-8480 (power, assumption)",
        }],
        "manifest": _plain(manifest),
    }


def _plain(value: Any) -> Any:
    """``value`` with str/int/float subclasses (torch's version string) made plain, for safe YAML."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    return str(value)


def _seconds(value: float) -> float:
    return float(f"{value:.4g}")


def _profile_dumper() -> Any:
    import yaml

    class Dumper(yaml.SafeDumper):
        """Block style, except [size, rate] points and small flat mappings, which stay on one line."""

    def represent_list(dumper: Any, data: list) -> Any:
        flat = all(isinstance(v, int | float) and not isinstance(v, bool) for v in data)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)

    def represent_dict(dumper: Any, data: dict) -> Any:
        flat = len(data) <= 6 and all(isinstance(v, int | float | str) for v in data.values())
        return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flat)

    Dumper.add_representer(list, represent_list)
    Dumper.add_representer(dict, represent_dict)
    return Dumper


def write_profile(profile: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``profile`` as YAML at ``path`` atomically: readers see the old file or the whole new one.

    The profile is checked by the platform loader first, so an invalid one writes nothing.
    """
    import yaml

    from hetsim.report._atomic import atomic_write
    from hetsim.spec.loader import platform_from_dict

    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        raise CalibrationError(f"--output: got {str(path)!r}, expected a path ending in .yaml or .yml")
    platform_from_dict(profile)
    text = yaml.dump(dict(profile), Dumper=_profile_dumper(), sort_keys=False, width=120, allow_unicode=True)
    try:
        return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except OSError as exc:
        raise CalibrationError(f"--output: cannot write {str(path)!r} ({exc.strerror})") from None
