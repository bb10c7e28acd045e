"""DRAM traffic under the reuse model: tile traffic by hand, its bounds, and how op_cost uses it."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsim.cost.roofline import op_cost
from hetsim.cost.traffic import attention_traffic, gemm_traffic, naive_attention_traffic, op_traffic
from hetsim.errors import SpecError
from hetsim.spec.loader import load_platform, platform_from_dict
from hetsim.spec.types import ComputeUnit, Memory, PowerState

P0 = PowerState("p0", 1e9, 1.0, 50.0, 450.0)
GPU = ComputeUnit("gpu", "gpu", "hbm", {"bf16": 1e15}, 1e9, (P0,), compute_efficiency={"default": 0.5},
                  overhead_s=5e-6)
HBM = Memory("hbm", "hbm", 80e9, 2e12, latency_s=1e-7, efficiency=0.5)  # 1 TB/s achievable


def ideal(m: int, n: int, k: int, e: float) -> float:
    return e * (m * k + k * n + m * n)


def linear(m: int, k: int, n: int, e: int = 2, dtype: str = "bf16") -> dict:
    """Attributes of a captured ``x[m,k] @ W[k,n]`` (``aten.linear``), as capture fills them."""
    return {"op": "matmul", "flop": 2 * m * n * k, "dtype": dtype, "shape": (1, m, n), "weight_bytes": e * k * n,
            "bytes_read": e * (m * k + k * n), "bytes_written": e * m * n}


def sdpa(batch: int, heads: int, kv_heads: int, lq: int, s: int, d: int, e: int = 2) -> dict:
    """Attributes of a captured scaled_dot_product_attention with grouped-query heads."""
    rows = batch * heads * lq
    return {"op": "attention", "flop": 2 * rows * s * 2 * d, "dtype": "bf16", "shape": (batch, heads, lq, d),
            "bytes_read": e * (rows * d + 2 * batch * kv_heads * s * d), "bytes_written": e * rows * d}


# ---------------------------------------------------------------------------------------- GEMM


def test_a_gemm_that_fits_on_chip_reads_each_matrix_once():
    assert gemm_traffic(256, 256, 128, capacity_bytes=3 * 256 * 256, elem_bytes=1) == ideal(256, 256, 128, 1)
    assert gemm_traffic(256, 512, 128, capacity_bytes=1e9, elem_bytes=2) == ideal(256, 512, 128, 2)


def test_a_gemm_that_does_not_fit_rereads_by_the_tile_formula():
    # room for three 64x64 blocks (3 * 64^2 = 12288 elements): T = sqrt(S/3) = 64, so A and B are each
    # read 256/64 = 4 times: e * (M*N*K*(1/T + 1/T) + M*N)
    got = gemm_traffic(256, 256, 128, capacity_bytes=12288, elem_bytes=1)
    assert got == 256 * 256 * 128 * (1 / 64 + 1 / 64) + 256 * 256 == 327680
    # bf16 halves the elements that fit: 6144 -> 32x(6144-1024)/64 = 32x80 tiles, A read 4x, B 8x
    assert gemm_traffic(256, 256, 128, capacity_bytes=12288, elem_bytes=2) == 2 * (
        256 * 128 * math.ceil(256 / 80) + 128 * 256 * 8 + 256 * 256)


def test_rectangular_tiles_by_hand():
    # 1024 elements: a 16x24 tile fills them (16*24 + 16*(16 + 24) = 1024); A read 3x, B 4x
    assert gemm_traffic(64, 64, 32, capacity_bytes=1024, elem_bytes=1) == 64 * 32 * 3 + 32 * 64 * 4 + 64 * 64


@pytest.mark.parametrize("room", [3, 100, 2001, 8191, 10**6])
def test_a_gemv_reads_its_weights_once(room):
    k = n = 4096
    tn = min(n, (room - 1) // 2)  # a 1 x tn output tile next to 1-element slivers
    assert gemm_traffic(1, n, k, capacity_bytes=2 * room, elem_bytes=2) == 2 * (k * n + k * math.ceil(n / tn) + n)


def test_with_no_room_every_product_rereads_its_operands():
    assert gemm_traffic(4, 5, 6, capacity_bytes=1, elem_bytes=1) == 4 * 6 * 5 + 6 * 5 * 4 + 4 * 5


dims = st.integers(1, 5000)


@settings(max_examples=300, deadline=None)
@given(m=dims, n=dims, k=dims, capacity=st.floats(1, 1e9), e=st.sampled_from([0.5, 1, 2, 4]))
def test_traffic_never_goes_below_each_matrix_once(m, n, k, capacity, e):
    assert gemm_traffic(m, n, k, capacity, e) >= ideal(m, n, k, e)


@settings(max_examples=300, deadline=None)
@given(m=dims, n=dims, k=dims, small=st.floats(1, 1e8), grow=st.floats(1, 1e3), e=st.sampled_from([1, 2, 4]))
def test_more_onchip_memory_never_adds_traffic(m, n, k, small, grow, e):
    assert gemm_traffic(m, n, k, small * grow, e) <= gemm_traffic(m, n, k, small, e)


@settings(max_examples=100, deadline=None)
@given(m=dims, n=dims, k=dims)
def test_enough_onchip_memory_gives_the_ideal(m, n, k):
    assert gemm_traffic(m, n, k, 2 * (m * n + k * (m + n)) + 8, 2) == ideal(m, n, k, 2)


# ----------------------------------------------------------------------------------- attention


def test_flash_attention_io_by_hand():
    # N = 4096, d = 128, bf16, 256 KiB: query blocks of 262144 / (2 * 2 * 256) = 256 rows -> 16 passes
    n, d = 4096, 128
    assert attention_traffic(n, n, d, 256 * 1024, 2) == 2 * (2 * n * d + 2 * n * d * 16)
    # Theta(N^2 d^2 / M): four times the memory, a quarter of the passes over K and V
    assert attention_traffic(n, n, d, 1024 * 1024, 2) == 2 * (2 * n * d + 2 * n * d * 4)
    # the standard algorithm writes and reads the N x N scores and probabilities: 4Nd + 4N^2
    assert naive_attention_traffic(n, n, d, 2) == 2 * (4 * n * d + 4 * n * n)
    assert attention_traffic(n, n, d, 256 * 1024, 2) < naive_attention_traffic(n, n, d, 2)


def test_attention_that_fits_streams_every_tensor_once():
    assert attention_traffic(2048, 2048, 128, 50e6, 2, heads=32, kv_heads=8) == 2 * (
        32 * 2048 * 256 + 8 * 2048 * 256)


def test_decode_attention_streams_the_kv_cache_once():
    op = sdpa(batch=8, heads=32, kv_heads=8, lq=1, s=4097, d=128)
    assert op_traffic(op, 50e6) == op["bytes_read"] + op["bytes_written"]
    assert op_traffic(op, 64 * 1024) == op["bytes_read"] + op["bytes_written"]  # 4 query rows per KV head fit


def test_grouped_query_heads_share_their_kv_blocks():
    # 4 query heads per KV head, 2048 rows each: 8192 rows per KV head; 2 MiB holds blocks of
    # 2097152 / (2 * 2 * 256) = 2048 rows -> 4 passes over K and V, 3 more than once
    op = sdpa(batch=1, heads=32, kv_heads=8, lq=2048, s=2048, d=128)
    kv = 2 * 2 * 8 * 2048 * 128
    assert op_traffic(op, 2 * 1024 * 1024) == op["bytes_read"] + op["bytes_written"] + 3 * kv


# ------------------------------------------------------------------------ recovering the sizes


def test_sizes_come_from_the_node_attributes():
    op = linear(2048, 4096, 14336)
    assert op_traffic(op, 1e9) == op["bytes_read"] + op["bytes_written"]
    extra = gemm_traffic(2048, 14336, 4096, 4e6, 2) - ideal(2048, 14336, 4096, 2)
    assert op_traffic(op, 4e6) == op["bytes_read"] + op["bytes_written"] + extra > op["bytes_read"]


def test_a_batched_matmul_reads_a_b_matrix_per_batch():
    b, m, k, n = 16, 512, 64, 512
    op = {"op": "matmul", "flop": 2 * b * m * n * k, "dtype": "fp32", "shape": (b, m, n),
          "bytes_read": 4 * b * (m * k + k * n), "bytes_written": 4 * b * m * n}
    extra = b * (gemm_traffic(m, n, k, 64e3, 4) - ideal(m, n, k, 4))
    assert extra > 0
    assert op_traffic(op, 64e3) == op["bytes_read"] + op["bytes_written"] + extra


def test_a_decode_projection_reads_its_weights_once():
    op = linear(8, 4096, 4096) | {"shape": (8, 1, 4096)}
    assert op_traffic(op, 256 * 1024) == op["bytes_read"] + op["bytes_written"]


@pytest.mark.parametrize("change", [
    {"shape": ()},                                     # hand-built: no shape
    {"shape": (4096,)},                                # a vector output
    {"dtype": None},                                   # no element size
    {"flop": 0},
    {"flop": 3},                                       # K would not be a whole number
    {"bytes_read": 1_000},                             # reads that no GEMM layout explains
    {"op": "elementwise"},                             # not a matrix op
])
def test_ops_whose_sizes_cannot_be_recovered_fall_back(change):
    assert op_traffic(linear(2048, 4096, 4096) | change, 1e3) is None


def test_attention_with_an_unexplained_input_falls_back():
    op = sdpa(batch=1, heads=32, kv_heads=8, lq=2048, s=2048, d=128)
    assert op_traffic(op | {"bytes_read": op["bytes_read"] + 3}, 1e3) is None  # e.g. a mask


# -------------------------------------------------------------------------------------- op_cost


def test_a_unit_without_onchip_memory_keeps_the_ideal_traffic():
    op = linear(2048, 4096, 14336)
    moved = op["bytes_read"] + op["bytes_written"]
    c = op_cost(op, GPU, HBM)
    assert c.memory_s == moved / 1e12 + 1e-7
    assert c.compute_s == op["flop"] / 5e14
    assert c.total_s == 5e-6 + max(c.compute_s, c.memory_s)
    assert op_cost(op, replace(GPU, onchip_bytes=1e12), HBM) == c  # everything fits: the same cost


def test_a_unit_with_little_onchip_memory_pays_the_rereads():
    op = linear(2048, 4096, 14336)
    small = replace(GPU, onchip_bytes=4e6)
    c = op_cost(op, small, HBM)
    assert c.memory_s == op_traffic(op, 4e6) / 1e12 + 1e-7
    assert c.memory_s > op_cost(op, GPU, HBM).memory_s
    assert c.compute_s == op_cost(op, GPU, HBM).compute_s


def test_fallback_and_other_kinds_cost_as_before_on_a_unit_with_onchip_memory():
    small = replace(GPU, onchip_bytes=1e3)
    hand_built = {"op": "matmul", "flop": 2e9, "bytes_read": 1e9, "bytes_written": 0, "dtype": "bf16"}
    assert op_cost(hand_built, small, HBM) == op_cost(hand_built, GPU, HBM)
    norm = {"op": "norm", "flop": 1e6, "bytes_read": 1e8, "bytes_written": 1e8, "dtype": "bf16", "shape": (4, 4)}
    assert op_cost(norm, small, HBM) == op_cost(norm, GPU, HBM)
    explicit = linear(2048, 4096, 14336) | {"cost": {"gpu": 3.0}}
    assert op_cost(explicit, small, HBM).total_s == 3.0


# ----------------------------------------------------------------------------------------- spec


def platform(onchip: object) -> dict:
    unit = {"name": "npu", "kind": "npu", "memory": "m", "peak": {"bf16": "100 TFLOP/s"},
            "power_states": [{"name": "p0", "freq": "1 GHz", "voltage": "1 V", "static_power": "1 W",
                              "dynamic_power": "9 W"}]}
    if onchip is not None:
        unit["onchip"] = onchip
    return {"name": "p", "memories": [{"name": "m", "capacity": "8 GB", "bandwidth": "100 GB/s"}], "units": [unit]}


def test_the_onchip_field_is_parsed():
    npu = platform_from_dict(platform({"capacity": "8 MiB", "bandwidth": "2 TB/s"})).unit("npu")
    assert (npu.onchip_bytes, npu.onchip_bandwidth_bytes_per_s) == (8 * 2**20, 2e12)
    assert platform_from_dict(platform({"capacity": "24 MB"})).unit("npu").onchip_bandwidth_bytes_per_s is None
    bare = platform_from_dict(platform(None)).unit("npu")
    assert (bare.onchip_bytes, bare.onchip_bandwidth_bytes_per_s) == (None, None)


@pytest.mark.parametrize(("onchip", "message"), [
    ({"capacity": "-5 MB"}, "units.npu.onchip.capacity: got '-5 MB', expected a positive bytes"),
    ({"capacity": "0 MB"}, "units.npu.onchip.capacity: got '0 MB', expected a positive bytes"),
    ({"capacity": "3 parsecs"}, "units.npu.onchip.capacity: got '3 parsecs'"),
    ({"bandwidth": "1 TB/s"}, "units.npu.onchip.capacity: missing, this field is required"),
    ({"capacity": "8 MB", "bandwidth": "8 MB"}, "units.npu.onchip.bandwidth: got '8 MB'"),
    ({"capacity": "8 MB", "size": 1}, "units.npu.onchip.size: unknown field, expected one of bandwidth, capacity"),
    ("50 MB", "units.npu.onchip: got '50 MB', expected a mapping"),
])
def test_bad_onchip_values_are_one_line_errors(onchip, message):
    with pytest.raises(SpecError) as info:
        platform_from_dict(platform(onchip))
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(message)


ONCHIP_PRESETS = {"h100-sxm": 50e6, "h200": 50e6, "a100-sxm-80gb": 40e6, "mi300x": 256e6, "gh200": 50e6,
                  "dgx-h100": 50e6, "tpu-v4": 128 * 2**20, "tpu-v5e": 128 * 2**20, "tpu-v4-2x2": 128 * 2**20}


@pytest.mark.parametrize("name", sorted(ONCHIP_PRESETS))
def test_gpu_and_tpu_presets_carry_their_onchip_capacity(name):
    p = load_platform(name)
    accelerators = [u for u in p.units if u.kind in ("gpu", "tpu")]
    assert accelerators and all(u.onchip_bytes == ONCHIP_PRESETS[name] for u in accelerators)
    assert all(u.onchip_bytes is None for u in p.units if u.kind == "cpu")


@pytest.mark.parametrize("name", ["cpu-generic", "xeon-8480", "mobile-soc"])
def test_cpu_presets_keep_the_ideal_traffic(name):
    assert all(u.onchip_bytes is None for u in load_platform(name).units)
