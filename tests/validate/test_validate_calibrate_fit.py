"""Fitting calibration curves on synthetic, hand-computable measurements (no torch timing)."""

from __future__ import annotations

import itertools
import math

import pytest

from hetsim.cost.roofline import op_cost
from hetsim.spec.loader import platform_from_dict
from hetsim.validate._fit import fit_curve, group_sizes, isotonic, robust_overhead
from hetsim.validate.calibrate import MIN_ROWS, fit_profile, rows
from hetsim.validate.microbench import Record, median_iqr

MANIFEST = {"device": "test-cpu", "torch": "0.0", "threads": 1, "date": "2026-01-01T00:00:00Z"}


def rec(target: str, kind: str, *, seconds: float, flop: int = 0, read: int = 0, written: int = 0,
        tiny: bool = False, dtype: str | None = "fp32", shapes=((64, 64),), variant: str = "") -> Record:
    return Record(target=target, variant=variant, kind=kind, dtype=dtype, tensor_dtype="fp32", label="synthetic",
                  shapes=tuple(shapes), flop=flop, bytes_read=read, bytes_written=written, tiny=tiny,
                  median_s=seconds, iqr_s=0.0, reps=10)


def elementwise(overhead=5e-6, rate=10e9, sizes=(1e3, 1e4, 1e5, 1e6, 1e7, 1e8)) -> list[Record]:
    """add.Tensor taking overhead + bytes / rate, read:written = 2:1 (the tiny call: just the overhead)."""
    out = [rec("aten.add.Tensor", "elementwise", seconds=overhead, read=64, written=32, tiny=True)]
    for b in sizes:
        out.append(rec("aten.add.Tensor", "elementwise", seconds=overhead + b / rate,
                       read=int(b * 2 / 3), written=int(b / 3)))
    return out


def copies(rate=12e9) -> list[Record]:
    """copy_ into a preallocated tensor: bytes read counts dst too (as capture counts it)."""
    n = 64 * 2 ** 20
    return [rec("aten.copy_.default", "copy", seconds=3e-6, read=64, written=32, tiny=True, dtype=None),
            rec("aten.copy_.default", "copy", seconds=3e-6 + 2 * n / rate, read=2 * n, written=n, dtype=None)]


def test_overhead_and_bandwidth_are_recovered_from_t_equals_5us_plus_bytes_over_10GBps():
    profile = fit_profile(elementwise() + copies(), manifest=MANIFEST)
    unit = platform_from_dict(profile).unit("cpu")
    assert unit.overhead("elementwise", "aten.add.Tensor") == pytest.approx(5e-6)
    curve = unit.curve("elementwise", "fp32", "aten.add.Tensor")
    assert curve.x == "bytes"
    for size in (1e4, 3e5, 1e7):
        assert curve.rate(size) == pytest.approx(10e9, rel=1e-3)
    op = {"op": "elementwise", "target": "aten.add.Tensor", "dtype": "fp32", "bytes_read": 2e6, "bytes_written": 1e6}
    assert op_cost(op, unit, platform_from_dict(profile).memory("dram")).total_s == pytest.approx(5e-6 + 3e-4, rel=1e-3)
    assert platform_from_dict(profile).memory("dram").bandwidth_bytes_per_s == pytest.approx(12e9, rel=1e-3)


def test_kind_fallback_curves_cover_targets_that_were_not_measured():
    unit = platform_from_dict(fit_profile(elementwise() + copies(), manifest=MANIFEST)).unit("cpu")
    # aten.sub.Tensor was not measured: the elementwise:fp32 curve stands in
    assert unit.curve("elementwise", "fp32", "aten.sub.Tensor").rate(1e6) == pytest.approx(10e9, rel=1e-3)
    assert unit.curve("elementwise", None, "aten.arange.start") is not None  # the bare kind curve
    assert unit.overhead("elementwise", "aten.sub.Tensor") == pytest.approx(5e-6)


def test_gemm_flop_curve_peak_and_thin_matrix_ops_left_out():
    recs = [rec("aten.linear.default", "matmul", seconds=10e-6, flop=128, tiny=True, shapes=((1, 1, 8), (8, 8)))]
    for m in (32, 128, 512):
        flop = 2 * m * 768 * 768
        recs.append(rec("aten.linear.default", "matmul", seconds=10e-6 + flop / 100e9, flop=flop,
                        read=4 * (m * 768 + 768 * 768), written=4 * m * 768, shapes=((1, m, 768), (768, 768))))
    # a GEMV: weight-streaming, 50x slower per FLOP; it must not pull the curve down
    recs.append(rec("aten.linear.default", "matmul", seconds=10e-6 + 2 * 768 * 768 / 2e9, flop=2 * 768 * 768,
                    read=4 * 768 * 769, written=4 * 768, shapes=((1, 1, 768), (768, 768))))
    profile = fit_profile(recs + copies(), manifest=MANIFEST)
    unit = platform_from_dict(profile).unit("cpu")
    assert profile["units"][0]["peak"]["fp32"] == pytest.approx(100e9, rel=1e-3)
    curve = unit.curve("matmul", "fp32", "aten.linear.default")
    assert curve.x == "flop"
    assert min(curve.rates) == pytest.approx(100e9, rel=1e-3)
    assert rows(recs[-1]) == 1 < MIN_ROWS <= rows(recs[1])


def test_variants_get_their_own_keys_and_stay_out_of_the_kind_curves():
    slow = [rec("aten.gelu.default", "elementwise", seconds=5e-6 + b / 1e9, read=b // 2, written=b // 2,
                variant="approximate=tanh") for b in (10_000, 100_000, 1_000_000)]
    curves = fit_profile(elementwise() + copies() + slow, manifest=MANIFEST)["units"][0]["curves"]
    assert "aten.gelu.default[approximate=tanh]:fp32" in curves
    assert curves["elementwise:fp32"] == curves["aten.add.Tensor:fp32"]


def test_profile_carries_manifest_assumptions_and_one_power_state():
    profile = fit_profile(elementwise() + copies(), manifest=MANIFEST, grid="quick", duration_s=1.234)
    platform = platform_from_dict(profile)
    assert platform.manifest["device"] == "test-cpu"
    assert platform.manifest["grid"] == "quick" and platform.manifest["microbenchmarks"] == 9
    assert platform.manifest["duration_s"] == 1.2
    assert any("Power is not measured" in a for a in platform.assumptions)
    assert len(platform.unit("cpu").power_states) == 1
    assert "measured by hetsim calibrate" in platform.source


def test_isotonic_pools_adjacent_violators():
    assert isotonic([1.0, 3.0, 2.0, 4.0]) == [1.0, 2.5, 2.5, 4.0]
    assert isotonic([3.0, 1.0], [3.0, 1.0]) == [2.5, 2.5]
    assert isotonic([]) == []


def test_fit_curve_makes_time_monotone_and_drops_overhead_dominated_sizes():
    # excess times: noise at the small sizes (one negative), then a dip that is noise
    pts = [(10, -1e-7), (100, 1e-9), (1e4, 2e-6), (1e5, 1.5e-6), (1e6, 2e-4)]
    curve = fit_curve(pts)
    sizes = [s for s, _ in curve]
    assert sizes == sorted(sizes) and sizes[0] >= 1e4  # overhead-dominated sizes gave no point
    times = [s / r for s, r in curve]
    assert all(b >= a for a, b in itertools.pairwise(times))
    [(size, rate)] = fit_curve([(10, 0.0)])  # all overhead: one point, whose excess is the floor
    assert size == pytest.approx(10) and size / rate == pytest.approx(5e-8)


def test_fit_curve_groups_equal_sizes_by_their_median_rate():
    groups = group_sizes([(1000, 1e-6), (1100, 1.1e-5), (1050, 1.05e-6)])
    assert len(groups) == 1 and groups[0][2] == 3
    assert groups[0][1] / groups[0][0] == pytest.approx(1e-9)  # median seconds per unit
    rising = fit_curve([(1e6, 1e-4), (2e6, 1e-4), (1e8, 1e-3)], merge=1.1, rising=True)
    rates = [r for _, r in rising]
    assert rates == sorted(rates)


def test_robust_overhead_and_median_iqr():
    assert robust_overhead([5e-6, 6e-6, 40e-6]) == 6e-6
    with pytest.raises(ValueError):
        robust_overhead([])
    med, iqr = median_iqr([1000] * 9 + [10 ** 9])
    assert med == 1e-6 and iqr >= 0 and math.isfinite(iqr)


def test_a_profile_without_copies_has_no_bandwidth_and_is_refused():
    from hetsim.validate.calibrate import CalibrationError

    with pytest.raises(CalibrationError, match=r"no aten\.copy_ or aten\.clone was measured"):
        fit_profile(elementwise(), manifest=MANIFEST)
