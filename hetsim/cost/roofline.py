"""How long one op takes on one unit: fixed overhead + max(compute time, memory time).

Compute time is ``flop / (peak[dtype] · efficiency[op kind] · f / f_ref)``: it scales with the
unit's clock. Memory time is ``(bytes_read + bytes_written) / (bandwidth · efficiency)``: memory
clocks are not scaled, so it does not. On a unit with on-chip memory (``onchip_bytes``), matmul
and attention ops move the DRAM traffic of :func:`hetsim.cost.traffic.op_traffic` instead, which
adds the re-reads forced when their tiles do not fit on chip (and is the same when they do, or
when the op's attributes do not determine its shapes). Explicit costs, views and calibrated
curves are unaffected. Ops carrying an explicit ``cost`` mapping take exactly that
many seconds on the units it names and cannot run elsewhere. View ops alias storage and are free,
unless the unit gives views an overhead (eager dispatch, measured by calibration).

A GPU unit with a kernel-level model (``unit.kernels``, :mod:`hetsim.spec.kernels`) times the ops
that model covers with :func:`hetsim.cost.gpu_kernels.kernel_cost` — GEMM tiles and waves,
FlashAttention, memory-bound kernel families — as pure kernel time (no overhead: launch costs
belong to the execution mode); explicit costs and calibrated curves still win, and ops it does
not model keep the roofline.

A unit calibrated on real measurements carries a :class:`~hetsim.spec.types.Curve` per op kind
(and dtype): the op then takes ``overhead + size / curve.rate(size)``, where size is its FLOPs
(rate scaled with the clock) or its bytes moved — the measured rate already holds whatever
mixture of compute and memory time that kind shows on that unit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from hetsim.cost.traffic import op_traffic
from hetsim.graph.schema import FREE_OPS
from hetsim.spec.types import MATRIX_OPS, ComputeUnit, Curve, Memory, PowerState


@dataclass(frozen=True)
class OpCost:
    """The parts of one op's time on one unit (seconds).

    ``activity`` is the fraction of the op's duration its compute pipes are busy, used by the
    power model (1 for ops with an explicit cost, whose split is unknown).
    """

    total_s: float
    compute_s: float
    memory_s: float
    overhead_s: float

    @property
    def activity(self) -> float:
        if self.total_s <= 0:
            return 0.0
        if self.compute_s == 0 and self.memory_s == 0:
            return 1.0 if self.overhead_s == 0 else 0.0
        return min(1.0, self.compute_s / self.total_s)


FREE = OpCost(0.0, 0.0, 0.0, 0.0)
IMPOSSIBLE = OpCost(math.inf, math.inf, math.inf, 0.0)


def flop_rate(unit: ComputeUnit, op_kind: str, dtype: str | None) -> float | None:
    """Peak FLOP/s ``unit`` offers to an op of ``op_kind`` in ``dtype`` at its reference clock.

    Matrix ops (matmul, attention, conv) need the dtype on the unit's matrix engine; other ops use
    the vector rate when the unit has one, else the dtype's peak, else the unit's best peak.
    ``None`` means the unit cannot run the op.

    Examples
    --------
    >>> from hetsim.spec.types import ComputeUnit, PowerState
    >>> u = ComputeUnit("g", "gpu", "m", {"bf16": 1e15}, 1e9, (PowerState("p0", 1e9, 1.0, 50, 500),),
    ...                 vector_flop_per_s=6e13)
    >>> flop_rate(u, "matmul", "bf16"), flop_rate(u, "softmax", "bf16"), flop_rate(u, "matmul", "fp64")
    (1000000000000000.0, 60000000000000.0, None)
    """
    if op_kind in MATRIX_OPS:
        return unit.peak_flop_per_s.get(dtype) if dtype is not None else max(unit.peak_flop_per_s.values())
    if unit.vector_flop_per_s is not None:
        return unit.vector_flop_per_s
    return unit.peak_flop_per_s.get(dtype) or max(unit.peak_flop_per_s.values())


def op_cost(op: Mapping, unit: ComputeUnit, memory: Memory, state: PowerState | None = None) -> OpCost:
    """Cost of the op whose node attributes are ``op`` on ``unit`` (working in ``memory``).

    Examples
    --------
    A 2 GFLOP bf16 matmul reading 1 MB on a 1 PFLOP/s unit at 50% efficiency, 1 TB/s memory,
    5 µs overhead: compute 4 µs, memory 1 µs, total 9 µs.

    >>> from hetsim.spec.types import ComputeUnit, Memory, PowerState
    >>> u = ComputeUnit("g", "gpu", "m", {"bf16": 1e15}, 1e9, (PowerState("p0", 1e9, 1.0, 50, 500),),
    ...                 compute_efficiency={"default": 0.5}, overhead_s=5e-6)
    >>> m = Memory("m", "hbm", 80e9, 1e12)
    >>> c = op_cost({"op": "matmul", "flop": 2e9, "bytes_read": 1e6, "bytes_written": 0, "dtype": "bf16"}, u, m)
    >>> round(c.total_s * 1e6, 9), round(c.compute_s * 1e6, 9), round(c.memory_s * 1e6, 9)
    (9.0, 4.0, 1.0)
    """
    explicit = op.get("cost")
    if explicit is not None:
        seconds = explicit.get(unit.name)
        return IMPOSSIBLE if seconds is None else OpCost(float(seconds), float(seconds), 0.0, 0.0)
    kind = op["op"]
    if kind in FREE_OPS:
        overheads = unit.overheads
        overhead = overheads.get(op.get("target", ""), overheads.get(kind, 0.0))
        return FREE if not overhead else OpCost(overhead, 0.0, 0.0, overhead)
    if unit.op_kinds is not None and kind not in unit.op_kinds:
        return IMPOSSIBLE
    target = op.get("target", "")
    overhead = unit.overhead(kind, target)
    curve = unit.curve(kind, op.get("dtype"), target)
    if curve is not None:
        return _measured(op, unit, memory, curve, overhead, state)
    if unit.kernels is not None:
        from hetsim.cost.gpu_kernels import kernel_cost  # imports this module's OpCost

        modelled = kernel_cost(op, unit, memory, state)
        if modelled is not None:
            return modelled
    flop = op.get("flop", 0)
    compute_s = 0.0
    if flop:
        rate = flop_rate(unit, kind, op.get("dtype"))
        if rate is None:
            return IMPOSSIBLE
        freq = (state or unit.nominal).freq_hz
        compute_s = flop / (rate * unit.efficiency(kind) * freq / unit.ref_freq_hz)
    moved = op.get("bytes_read", 0) + op.get("bytes_written", 0)
    if unit.onchip_bytes is not None:
        traffic = op_traffic(op, unit.onchip_bytes)
        moved = moved if traffic is None else traffic
    memory_s = moved / memory.effective_bandwidth_bytes_per_s if moved else 0.0
    if moved:
        memory_s += memory.latency_s
    return OpCost(overhead + max(compute_s, memory_s), compute_s, memory_s, overhead)


def _thin_curve(op: Mapping, unit: ComputeUnit) -> Curve | None:
    """The measured streaming curve of a one-row matrix op of the op's target (a decode GEMV, an
    attention of one query: ``"aten.linear.default[rows=1]:fp32"``, written by calibration), if
    the op has one row (one query per head for attention)."""
    shape = tuple(op.get("shape") or ())
    if len(shape) < 2 or (shape[-2] if op.get("op") == "attention" else math.prod(shape[:-1])) != 1:
        return None
    return unit.curves.get(f"{op.get('target', '')}[rows=1]:{op.get('dtype')}")


def _measured(op: Mapping, unit: ComputeUnit, memory: Memory, curve: Curve, overhead: float,
              state: PowerState | None) -> OpCost:
    """Op time from a calibrated curve: overhead + size / rate(size).

    A FLOP curve is measured on calls that reuse their operands (many rows per weight); a thin
    call such as a decode step's matrix-vector product streams its operands instead, so its time
    is bounded below by bytes moved / the memory's achievable bandwidth, or by the measured
    one-row curve of its target when calibration wrote one (:func:`_thin_curve`).
    """
    moved = op.get("bytes_read", 0) + op.get("bytes_written", 0)
    if curve.x == "flop":
        flop = op.get("flop", 0)
        freq = (state or unit.nominal).freq_hz
        compute_s = flop / (curve.rate(flop) * freq / unit.ref_freq_hz) if flop else 0.0
        thin = _thin_curve(op, unit)
        rate = thin.rate(moved) if thin is not None else memory.effective_bandwidth_bytes_per_s
        memory_s = moved / rate if moved else 0.0
        return OpCost(overhead + max(compute_s, memory_s), compute_s, memory_s, overhead)
    memory_s = moved / curve.rate(moved) if moved else 0.0
    return OpCost(overhead + memory_s, 0.0, memory_s, overhead)
