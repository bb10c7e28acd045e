"""Op time = overhead + max(compute, memory), by hand, on a unit with round numbers."""

from __future__ import annotations

import math

import pytest

from hetsim.cost.roofline import op_cost
from hetsim.spec.types import ComputeUnit, Curve, Memory, PowerState

NOMINAL = PowerState("p0", 2e9, 1.0, 50.0, 450.0)
HALF = PowerState("p1", 1e9, 0.8, 40.0, 180.0)
GPU = ComputeUnit("gpu", "gpu", "hbm", {"bf16": 1e15, "fp32": 5e13}, 2e9, (NOMINAL, HALF), vector_flop_per_s=5e13,
                  compute_efficiency={"default": 0.5, "matmul": 0.8}, overhead_s=5e-6)
NPU = ComputeUnit("npu", "npu", "hbm", {"fp16": 4e13}, 2e9, (NOMINAL,), op_kinds=frozenset({"matmul"}))
HBM = Memory("hbm", "hbm", 80e9, 2e12, efficiency=0.5)  # 1 TB/s achievable


def op(kind: str, flop: float = 0, read: float = 0, written: float = 0, dtype: str | None = "bf16", **extra):
    return {"op": kind, "flop": flop, "bytes_read": read, "bytes_written": written, "dtype": dtype, **extra}


def test_compute_bound_matmul_uses_the_matrix_peak_and_its_efficiency():
    c = op_cost(op("matmul", flop=8e12, read=1e9), GPU, HBM)  # 8e12 / (1e15 * 0.8) = 10 ms; memory 1 ms
    assert (c.compute_s, c.memory_s, c.total_s) == pytest.approx((0.01, 0.001, 0.01 + 5e-6))
    assert c.activity == pytest.approx(0.01 / (0.01 + 5e-6))


def test_memory_bound_elementwise_uses_achievable_bandwidth_and_the_vector_rate():
    c = op_cost(op("elementwise", flop=1e9, read=2e9, written=2e9), GPU, HBM)  # 4 ms of memory
    assert c.compute_s == pytest.approx(1e9 / (5e13 * 0.5))
    assert c.total_s == pytest.approx(4e-3 + 5e-6)


def test_lower_clock_slows_compute_but_not_memory():
    mm = op("matmul", flop=8e12)
    assert op_cost(mm, GPU, HBM, HALF).compute_s == pytest.approx(2 * op_cost(mm, GPU, HBM).compute_s)
    copy = op("copy", read=1e9, written=1e9, dtype=None)
    assert op_cost(copy, GPU, HBM, HALF).total_s == op_cost(copy, GPU, HBM).total_s


def test_views_are_free_and_explicit_costs_win():
    assert op_cost(op("view", read=1e9), GPU, HBM).total_s == 0.0
    assert op_cost(op("matmul", flop=1e15, cost={"gpu": 3.0}), GPU, HBM).total_s == 3.0
    assert math.isinf(op_cost(op("matmul", cost={"cpu": 3.0}), GPU, HBM).total_s)


def test_units_refuse_op_kinds_and_dtypes_they_lack():
    assert math.isinf(op_cost(op("softmax", flop=10, dtype="fp16"), NPU, HBM).total_s)
    assert math.isinf(op_cost(op("matmul", flop=10, dtype="bf16"), NPU, HBM).total_s)
    assert op_cost(op("matmul", flop=4e13, dtype="fp16"), NPU, HBM).total_s == pytest.approx(1.0)


def test_calibrated_curves_and_per_kind_overheads_replace_the_roofline():
    from hetsim.spec.types import Curve

    cpu = ComputeUnit("cpu", "cpu", "hbm", {"fp32": 1e12}, 2e9, (NOMINAL, HALF), overhead_s=4e-6,
                      overheads={"view": 1e-6, "matmul": 10e-6},
                      curves={"matmul:fp32": Curve("flop", (1e6, 1e10), (1e9, 1e11)),
                              "elementwise": Curve("bytes", (1e3, 1e9), (1e9, 1e10))})
    mm = op("matmul", flop=1e8, read=1e9, dtype="fp32")  # rate 1e10 at 1e8 FLOP (log-log midpoint)
    assert op_cost(mm, cpu, HBM).total_s == pytest.approx(10e-6 + 1e8 / 1e10)
    assert op_cost(mm, cpu, HBM, HALF).compute_s == pytest.approx(2 * 1e8 / 1e10)  # FLOP curves follow the clock
    ew = op("elementwise", flop=1, read=5e8, written=5e8)  # 1e9 bytes at 1e10 B/s
    assert op_cost(ew, cpu, HBM).total_s == pytest.approx(4e-6 + 0.1)
    assert op_cost(ew, cpu, HBM, HALF).total_s == op_cost(ew, cpu, HBM).total_s  # bytes curves do not
    assert op_cost(op("view"), cpu, HBM).total_s == 1e-6
    # no curve for bf16 matmul: the roofline with the unit's peak applies
    assert op_cost(op("matmul", flop=1e9, dtype="fp32"), cpu, HBM).total_s > 0
    assert math.isinf(op_cost(op("matmul", flop=1e9, dtype="bf16"), cpu, HBM).total_s)


def test_a_target_curve_wins_over_its_kind():
    from hetsim.spec.types import Curve

    cpu = ComputeUnit("cpu", "cpu", "hbm", {"fp32": 1e12}, 2e9, (NOMINAL,), overheads={"aten.gelu.default": 2e-6},
                      curves={"elementwise": Curve("bytes", (1.0,), (1e10,)),
                              "aten.gelu.default:fp32": Curve("bytes", (1.0,), (2e9,))})
    gelu = op("elementwise", read=1e9, written=1e9, dtype="fp32", target="aten.gelu.default")
    add = op("elementwise", read=1e9, written=1e9, dtype="fp32", target="aten.add.Tensor")
    assert op_cost(gelu, cpu, HBM).total_s == pytest.approx(2e-6 + 1.0)
    assert op_cost(add, cpu, HBM).total_s == pytest.approx(0.2)


def test_view_overheads_by_target():
    cpu = ComputeUnit("cpu", "cpu", "hbm", {"fp32": 1e12}, 2e9, (NOMINAL,),
                      overheads={"view": 10e-6, "aten.split.Tensor": 12e-6})
    assert op_cost(op("view", target="aten.split.Tensor"), cpu, HBM).total_s == 12e-6
    assert op_cost(op("view", target="aten.t.default"), cpu, HBM).total_s == 10e-6
    assert op_cost(op("view", target="aten.t.default"), GPU, HBM).total_s == 0.0


def test_a_one_row_matmul_streams_at_its_measured_thin_curve():
    # FLOP curve 100 GFLOP/s; memory 40 GB/s; one-row linears measured streaming at 10 GB/s
    unit = ComputeUnit("cpu", "cpu", "m", {"fp32": 1e11}, 1e9, (PowerState("p0", 1e9, 1.0, 1.0, 1.0),),
                       curves={"matmul:fp32": Curve("flop", (1e3,), (1e11,)),
                               "aten.linear.default[rows=1]:fp32": Curve("bytes", (1e3,), (1e10,))})
    memory = Memory("m", "dram", 1e9, 4e10)
    gemv = {"op": "matmul", "target": "aten.linear.default", "dtype": "fp32", "shape": (1, 1, 256),
            "flop": 2 * 256 * 256, "bytes_read": 4 * (256 + 256 * 256), "bytes_written": 4 * 256}
    moved = gemv["bytes_read"] + gemv["bytes_written"]
    assert op_cost(gemv, unit, memory).memory_s == pytest.approx(moved / 1e10)
    four_rows = {**gemv, "shape": (1, 4, 256), "flop": 4 * gemv["flop"]}  # not one row: the memory's bandwidth
    assert op_cost(four_rows, unit, memory).memory_s == pytest.approx(moved / 4e10)
