"""The kernel-level GPU model by hand: waves, thin GEMMs, split-K, floors, causal attention, clocks.

Every case runs on a toy GPU with round numbers (4 SMs, 1 PFLOP/s, 2 TB/s) so the times are
hand-computable; the overlap exponent is large, which makes the combination a plain maximum.
``FAST`` streams GEMM operands at 10 PB/s, for the cases about compute alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType

import pytest

from hetsim.cost.gpu_kernels import causal_fraction, gemm_dims, kernel_cost, memory_family, smooth_max
from hetsim.cost.roofline import op_cost
from hetsim.errors import SpecError
from hetsim.spec.kernels import AttentionKernel, GemmKernel, GpuKernels, MemoryKernel, kernels_to_dict, parse_kernels
from hetsim.spec.loader import load_platform
from hetsim.spec.types import ComputeUnit, Curve, Memory, PowerState

ROOT = Path(__file__).resolve().parents[2]
P = 1000.0  # overlap exponent: smooth max = max to 0.07 %
GEMM = GemmKernel(((128, 128),), (1,), 256, 1.0, 0.0, 0.0, 2e12, P)
MEMORY = MappingProxyType({
    "elementwise": MemoryKernel(2e-6, 1e12),
    "activation": MemoryKernel(1e-6, 1e12, row_pass_s=1e-6, row_elems=1024, rows_per_sm=2, overlap=P),
    "embedding": MemoryKernel(2e-6, 1e11, small_rows=16, small_row_s=0.5e-6),
})
KERNELS = GpuKernels(4, 1e-6, GEMM, AttentionKernel(0.5, 1.0), MEMORY)
NOMINAL, HALF = PowerState("p0", 2e9, 1.0, 50, 500), PowerState("p1", 1e9, 0.8, 40, 200)
GPU = ComputeUnit("gpu", "gpu", "hbm", {"fp16": 1e15}, 2e9, (NOMINAL, HALF), overhead_s=4e-6, kernels=KERNELS)
HBM = Memory("hbm", "hbm", 80e9, 2e12)
SM_RATE = 1e15 / 4
FAST = dataclasses.replace(
    GPU, kernels=dataclasses.replace(KERNELS, gemm=dataclasses.replace(GEMM, bandwidth_bytes_per_s=1e16)))


def matmul(m: int, n: int, k: int, batch: int = 1) -> dict:
    shape = (batch, m, n) if batch > 1 else (m, n)
    return {"op": "matmul", "target": "aten.mm.default", "dtype": "fp16", "shape": shape, "flop": 2 * batch * m * n * k,
            "bytes_read": 2 * batch * (m * k + k * n) if batch > 1 else 2 * (m * k + k * n),
            "bytes_written": 2 * batch * m * n}


def cost(op: dict, unit: ComputeUnit = GPU, state: PowerState | None = None):
    c = kernel_cost(op, unit, HBM, state)
    assert c is not None
    return c


def test_gemm_dims_recover_linear_and_batched_shapes():
    assert gemm_dims(matmul(64, 256, 512)) == (1, 64, 256, 512)
    assert gemm_dims(matmul(64, 256, 512, batch=8)) == (8, 64, 256, 512)
    assert gemm_dims({"op": "matmul", "flop": 1e9, "bytes_read": 1e6, "dtype": "fp16"}) is None


def test_tiles_that_fill_exactly_one_wave_and_one_tile_more_take_two():
    k = 8192
    one_wave = cost(matmul(256, 256, k), FAST)  # 4 tiles of 128×128 on 4 SMs
    assert one_wave.compute_s == pytest.approx(2 * 128 * 128 * k / SM_RATE)
    assert one_wave.total_s == pytest.approx(one_wave.compute_s, rel=1e-3)
    two_waves = cost(matmul(256 + 1, 256, k), FAST)  # 6 tiles: a second, mostly idle wave
    assert two_waves.compute_s == pytest.approx(2 * one_wave.compute_s)


def test_thin_gemm_streams_its_weights():
    c = cost(matmul(1, 8192, 8192))  # weights 134 MB at 2 TB/s = 67 µs; 16 waves of padded tiles, 17 µs
    weights = 2 * (8192 + 8192 * 8192 + 8192)
    assert c.memory_s == pytest.approx(weights / 2e12)
    assert c.total_s == pytest.approx(weights / 2e12, rel=1e-3)
    assert c.overhead_s == 0.0


def test_split_k_spreads_a_skinny_deep_gemm_over_the_sms():
    op = matmul(128, 128, 65536)  # one output tile, 65536 deep
    alone = cost(op, FAST).compute_s
    gemm = dataclasses.replace(FAST.kernels.gemm, split_k=(1, 2, 4, 8))
    unit = dataclasses.replace(FAST, kernels=dataclasses.replace(KERNELS, gemm=gemm))
    assert alone == pytest.approx(2 * 128 * 128 * 65536 / SM_RATE)
    assert cost(op, unit).compute_s == pytest.approx(alone / 4)  # 4 ways fill the 4 SMs; 8 would need 2 waves


def test_small_tiles_pay_their_lower_intensity():
    small = dataclasses.replace(GEMM, tiles=((64, 64),), tile_exponent=1.0)
    unit = dataclasses.replace(GPU, kernels=dataclasses.replace(KERNELS, gemm=small))
    # 64×64 has intensity 32, half the 128×128 reference: half the rate
    assert cost(matmul(128, 128, 8192), unit).compute_s == pytest.approx(2 * 2 * 64 * 64 * 8192 / SM_RATE)


def test_clock_scales_compute_only():
    big = matmul(256, 256, 8192)
    assert cost(big, FAST, HALF).total_s == pytest.approx(2 * cost(big, FAST).total_s, rel=1e-3)
    thin = matmul(1, 8192, 8192)  # memory-bound: the same time at half the clock
    assert cost(thin, state=HALF).total_s == pytest.approx(cost(thin).total_s, rel=1e-3)
    add = {"op": "elementwise", "target": "aten.add.Tensor", "shape": (1024, 1024), "bytes_read": 4e6,
           "bytes_written": 2e6}
    assert cost(add, state=HALF).total_s == cost(add).total_s


def attention(lq: int, s: int, heads: int = 8, d: int = 128, **extra) -> dict:
    rows = heads * lq
    return {"op": "attention", "target": "aten.scaled_dot_product_attention.default", "dtype": "fp16",
            "shape": (1, heads, lq, d), "flop": 4 * rows * s * d, "bytes_read": 2 * (rows * d + 2 * heads * s * d),
            "bytes_written": 2 * rows * d, **extra}


def test_causal_prefill_does_half_the_score_work():
    full = cost(attention(4096, 4096))
    causal = cost(attention(4096, 4096, causal=True))
    assert full.compute_s == pytest.approx(4 * 8 * 4096 * 4096 * 128 / (1e15 * 0.5))
    assert causal.compute_s / full.compute_s == pytest.approx(causal_fraction(4096, 4096))
    assert causal.compute_s / full.compute_s == pytest.approx(0.5, rel=1e-3)
    by_target = cost(attention(4096, 4096, target="aten.scaled_dot_product_attention.default[is_causal=True]"))
    assert by_target.compute_s == causal.compute_s


def test_decode_attention_streams_the_kv_cache():
    c = cost(attention(1, 32768))
    kv = 2 * 2 * 8 * 32768 * 128
    assert c.memory_s == pytest.approx((kv + 2 * 2 * 8 * 128) / (2e12 * 1.0))
    assert c.total_s == pytest.approx(c.memory_s, rel=1e-3)


def test_memory_kernel_floor_and_gpu_minimum():
    tiny = {"op": "elementwise", "target": "aten.add.Tensor", "shape": (1, 8), "bytes_read": 32, "bytes_written": 16}
    assert cost(tiny).total_s == pytest.approx(2e-6 + 48 / 1e12)
    no_floor = dataclasses.replace(KERNELS, memory={"elementwise": MemoryKernel(0.0, 1e12)})
    assert cost(tiny, dataclasses.replace(GPU, kernels=no_floor)).total_s == 1e-6  # the GPU-side minimum


def test_row_parallel_kernel_waits_on_its_rows():
    def silu_mul(rows: int, width: int, **fused) -> dict:
        return {"op": "fused", "fused": {"pattern": "silu_mul", "members": ["silu", "mul"], "targets": [], **fused},
                "dtype": "fp16", "shape": (rows, width), "bytes_read": 2 * rows * 2 * width,
                "bytes_written": 2 * rows * width}

    # 8 rows fit one wave (4 SMs × 2); 4096 wide = 4 passes of 1 µs; streaming 196 kB takes 0.2 µs
    assert cost(silu_mul(8, 4096)).total_s == pytest.approx(1e-6 + 4e-6, rel=1e-3)
    assert cost(silu_mul(9, 4096)).total_s == pytest.approx(1e-6 + 8e-6, rel=1e-3)  # a ninth row: a second wave
    # 64 rows of one head: 8 CTAs of 1024 elements, one wave of one pass
    assert cost(silu_mul(64, 128)).total_s == pytest.approx(1e-6 + 1e-6, rel=1e-3)
    # a kernel writing 8 rows into a 9-row tensor (a KV cache) runs 8 rows
    assert cost({**silu_mul(8, 4096), "shape": (9, 4096)}).total_s == pytest.approx(1e-6 + 4e-6, rel=1e-3)
    # an Inductor (compiled) kernel is flat: floor + bytes / bandwidth
    flat = silu_mul(8, 4096, mode="compiled")
    assert cost(flat).total_s == pytest.approx(1e-6 + 6 * 8 * 4096 / 1e12)


def test_embedding_gathers_few_indices_serially():
    def gather(t: int) -> dict:
        return {"op": "embedding", "shape": (t, 4096), "bytes_read": 8 * t + 2 * t * 4096,
                "bytes_written": 2 * t * 4096}

    assert cost(gather(16)).total_s == pytest.approx(2e-6 + 16 * 0.5e-6)
    assert cost(gather(17)).total_s == pytest.approx(2e-6 + (8 * 17 + 4 * 17 * 4096) / 1e11)


def test_bytes_within_l2_stream_at_the_cached_bandwidth():
    fam = MemoryKernel(0.0, 1e12, cached_bandwidth_bytes_per_s=4e12)
    unit = dataclasses.replace(GPU, onchip_bytes=1e6, kernels=dataclasses.replace(KERNELS, memory={"elementwise": fam}))
    add = {"op": "elementwise", "target": "aten.add.Tensor", "shape": (1000, 1000), "bytes_read": 2e6,
           "bytes_written": 1e6}
    assert cost(add, unit).total_s == pytest.approx(1e6 / 4e12 + 2e6 / 1e12)


def test_fused_patterns_map_to_families():
    def fused(pattern: str, *members: str) -> dict:
        return {"op": "fused", "fused": {"pattern": pattern, "members": list(members), "targets": []}}

    assert memory_family(fused("rope")) == ("rotary", True)
    assert memory_family(fused("add_rmsnorm")) == ("norm", True)
    assert memory_family(fused("pointwise", "add", "mul")) == ("elementwise", False)
    assert memory_family(fused("pointwise", "mul", "native_layer_norm")) == ("norm", True)
    assert memory_family(fused("something_new")) is None
    assert memory_family({"op": "collective"}) is None


def test_op_cost_uses_the_kernel_model_only_where_it_applies():
    add = {"op": "elementwise", "target": "aten.add.Tensor", "shape": (1000, 1000), "bytes_read": 4e6,
           "bytes_written": 2e6, "dtype": "fp16", "flop": 1e6}
    assert op_cost(add, GPU, HBM).total_s == cost(add).total_s  # no 4 µs launch overhead
    plain = dataclasses.replace(GPU, kernels=None)
    assert op_cost(add, plain, HBM).overhead_s == 4e-6
    other = {"op": "other", "bytes_read": 1e6, "bytes_written": 0, "flop": 0, "dtype": None}
    assert kernel_cost(other, GPU, HBM) is None
    assert op_cost(other, GPU, HBM) == op_cost(other, plain, HBM)
    assert op_cost({**add, "cost": {"gpu": 0.5}}, GPU, HBM).total_s == 0.5
    curved = dataclasses.replace(GPU, curves={"elementwise": Curve("bytes", (1.0,), (1e9,))})
    assert op_cost(add, curved, HBM).total_s == pytest.approx(4e-6 + 6e6 / 1e9)
    assert kernel_cost(add, plain, HBM) is None


def test_smooth_max_lies_between_max_and_sum():
    assert max(2.0, 3.0) < smooth_max(2.0, 3.0, 3.0) < 5.0
    assert smooth_max(0.0, 0.0, 3.0) == 0.0


def test_kernels_round_trip_through_yaml_form():
    back = parse_kernels(kernels_to_dict(KERNELS), "k")
    assert back.gemm == GEMM and back.memory["embedding"] == MEMORY["embedding"]


@pytest.mark.parametrize(("patch", "message"), [
    ({"sms": 0}, "k.sms: got 0, expected a positive whole number"),
    ({"gemm": {"tiles": [[128, 128]], "efficiency": 1.5, "bandwidth": "2 TB/s"}}, "k.gemm.efficiency: got 1.5"),
    ({"gemm": {"tiles": [[128]], "efficiency": 0.8, "bandwidth": "2 TB/s"}}, "k.gemm.tiles[0]: got [128]"),
    ({"memory": {"norm": {"bandwidth": "-1 TB/s"}}}, "k.memory.norm.bandwidth: got '-1 TB/s'"),
    ({"memory": {"norm": {"bandwidth": "1 TB/s", "floor": float("nan")}}}, "k.memory.norm.floor: got nan"),
    ({"memory": {"norms": {"bandwidth": "1 TB/s"}}}, "k.memory.norms: unknown field"),
    ({"warp_size": 32}, "k.warp_size: unknown field"),
])
def test_bad_kernel_fields_are_one_line_spec_errors(patch, message):
    raw = {**kernels_to_dict(KERNELS), **patch}
    with pytest.raises(SpecError, match="^" + message.replace("[", r"\[").replace("]", r"\]")) as err:
        parse_kernels(raw, "k")
    assert "\n" not in str(err.value)


def test_loader_reads_a_kernels_section_on_a_unit():
    data = {"name": "toy", "memories": [{"name": "hbm", "capacity": "80 GB", "bandwidth": "2 TB/s"}],
            "units": [{"name": "gpu", "kind": "gpu", "memory": "hbm", "peak": {"fp16": "1 PFLOP/s"},
                       "power_states": [{"name": "p0", "freq": "2 GHz", "voltage": "1 V", "static_power": "50 W",
                                         "dynamic_power": "500 W"}], "kernels": kernels_to_dict(KERNELS)}]}
    unit = load_platform(data).unit("gpu")
    assert unit.kernels is not None and unit.kernels.sms == 4
    data["units"][0]["kernels"] = {**kernels_to_dict(KERNELS), "sms": "many"}
    with pytest.raises(SpecError, match=r"^units\.gpu\.kernels\.sms: got 'many'"):
        load_platform(data)


@pytest.mark.parametrize("name", ["h100-sxm-kernels.yaml", "a100-80gb-kernels.yaml"])
def test_shipped_profiles_load_with_their_kernels(name):
    unit = load_platform(ROOT / "profiles" / name).unit("gpu")
    assert unit.kernels is not None
    assert set(unit.kernels.memory) >= {"norm", "activation", "rotary", "elementwise", "embedding"}
    assert all("fitted" in unit.kernels.sources[f"gemm.{k}"] for k in ("efficiency", "fixed", "bandwidth"))
