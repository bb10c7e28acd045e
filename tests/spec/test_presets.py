"""The built-in platform presets: each loads, cites its sources, and matches the hardware reference.

Figures checked here come from the datasheet rows of the project's hardware reference (dense peaks,
decimal units) and the MAMF table; a preset edit that drifts from them fails a test.
"""

from __future__ import annotations

import itertools

import pytest

from hetsim.spec.loader import list_presets, load_platform

PRESETS = ["2x-dgx-h100-ib", "4x-dgx-h100-ib", "a100-sxm-80gb", "cpu-generic", "dgx-h100", "dgx-h100-a100-ib", "gh200",
           "h100-sxm", "h200", "hgx-h200", "mi300x", "mi300x-8", "mobile-soc", "pcie-4x-l40s", "tpu-v4", "tpu-v4-2x2",
           "tpu-v4-4x4x4", "tpu-v5e", "xeon-8480"]
DTYPES = {"bf16", "fp16", "fp32", "tf32", "fp8", "int8"}
#: single-device presets whose board power budget is the device TDP (GPUs: HBM is on the board)
BOARD_TDP_W = {"a100-sxm-80gb": 400.0, "h100-sxm": 700.0, "h200": 700.0, "mi300x": 750.0}


def approx(value: float, rel: float = 1e-3):
    return pytest.approx(value, rel=rel)


@pytest.fixture(scope="module")
def presets():
    return {name: load_platform(name) for name in PRESETS}


def parts(platform):
    return [*platform.units, *platform.memories, *platform.links]


def test_exactly_the_documented_presets_are_packaged():
    assert list_presets() == sorted(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_and_is_named_after_its_file(presets, name):
    p = presets[name]
    assert p.name == name
    assert p.description.strip()
    assert p.units and p.memories


@pytest.mark.parametrize("name", PRESETS)
def test_every_unit_memory_and_link_cites_a_known_source_key(presets, name):
    p = presets[name]
    assert p.source.strip() and p.sources
    assert all(citation.strip() for citation in p.sources.values())
    for part in parts(p):
        assert part.source.strip(), f"{name}: {part.name} has no source"
        assert any(key in part.source for key in p.sources), f"{name}: {part.name} cites no key of sources"


@pytest.mark.parametrize("name", PRESETS)
def test_every_source_key_is_used_somewhere(presets, name):
    p = presets[name]
    text = " ".join([p.source, *p.assumptions, *(part.source for part in parts(p))])
    unused = [key for key in p.sources if key not in text]
    assert not unused, f"{name}: sources never cited: {unused}"


@pytest.mark.parametrize("name", PRESETS)
def test_assumptions_are_listed(presets, name):
    p = presets[name]
    assert len(p.assumptions) >= 2
    assert all(len(a.strip()) > 20 for a in p.assumptions)


@pytest.mark.parametrize("name", PRESETS)
def test_units_carry_complete_sane_figures(presets, name):
    for u in presets[name].units:
        assert set(u.peak_flop_per_s) <= DTYPES, f"{u.name}: unknown dtype key"
        assert all(v > 1e9 for v in u.peak_flop_per_s.values())
        if u.vector_flop_per_s is not None:
            assert 0 < u.vector_flop_per_s <= max(u.peak_flop_per_s.values())
        assert {"default", "matmul", "attention"} <= set(u.compute_efficiency)
        assert all(0 < e <= 1 for e in u.compute_efficiency.values())
        assert 0 < u.overhead_s <= 50e-6
        assert u.ref_freq_hz == u.nominal.freq_hz
        freqs = [s.freq_hz for s in u.power_states]
        powers = [s.power_w(1.0) for s in u.power_states]
        assert freqs == sorted(freqs, reverse=True) and len(set(freqs)) == len(freqs), "states must be fastest first"
        assert powers == sorted(powers, reverse=True)
        assert all(s.static_power_w > 0 and s.dynamic_power_w > 0 and 0 < s.voltage_v <= 1.0 for s in u.power_states)


@pytest.mark.parametrize("name", PRESETS)
def test_lower_power_states_follow_f_v_squared(presets, name):
    """dynamic ∝ f·V², static ∝ V relative to the nominal state, as each preset's assumptions say."""
    for u in presets[name].units:
        p0 = u.nominal
        for s in u.power_states[1:]:
            f, v = s.freq_hz / p0.freq_hz, s.voltage_v / p0.voltage_v
            assert s.dynamic_power_w == approx(p0.dynamic_power_w * f * v * v, rel=0.01), (u.name, s.name)
            assert s.static_power_w == approx(p0.static_power_w * v, rel=0.01), (u.name, s.name)


@pytest.mark.parametrize("name", PRESETS)
def test_memories_and_links_carry_sane_figures(presets, name):
    p = presets[name]
    for m in p.memories:
        assert m.capacity_bytes >= 1e9 and m.bandwidth_bytes_per_s >= 1e10
        assert 0.5 <= m.efficiency <= 1 and 0 < m.energy_per_byte_j < 1e-9
    for link in p.links:
        assert link.bandwidth_bytes_per_s >= 1e10 and 0 < link.latency_s <= 5e-6 and 0.5 <= link.efficiency <= 1


@pytest.mark.parametrize(("name", "unit", "dtype", "flop_per_s"), [
    ("h100-sxm", "gpu", "bf16", 989e12),
    ("h100-sxm", "gpu", "fp8", 1979e12),
    ("h100-sxm", "gpu", "tf32", 494.5e12),
    ("h100-sxm", "gpu", "fp32", 67e12),
    ("h200", "gpu", "bf16", 989e12),
    ("h200", "gpu", "int8", 1979e12),
    ("a100-sxm-80gb", "gpu", "bf16", 312e12),
    ("a100-sxm-80gb", "gpu", "int8", 624e12),
    ("a100-sxm-80gb", "gpu", "fp32", 19.5e12),
    ("mi300x", "gpu", "bf16", 1307.4e12),
    ("mi300x", "gpu", "fp8", 2614.9e12),
    ("mi300x", "gpu", "fp32", 163.4e12),
    ("tpu-v4", "tpu", "bf16", 275e12),
    ("tpu-v4", "tpu", "int8", 275e12),
    ("tpu-v5e", "tpu", "bf16", 197e12),
    ("tpu-v5e", "tpu", "int8", 394e12),
    ("xeon-8480", "cpu", "bf16", 56 * 1024 * 2.0e9),
    ("xeon-8480", "cpu", "int8", 56 * 2048 * 2.0e9),
    ("xeon-8480", "cpu", "fp32", 56 * 64 * 2.0e9),
    ("gh200", "gpu", "bf16", 989e12),
    ("gh200", "cpu", "fp32", 72 * 32 * 3.1e9),
    ("dgx-h100", "gpu7", "bf16", 989e12),
    ("dgx-h100", "cpu1", "bf16", 56 * 1024 * 2.0e9),
    ("tpu-v4-2x2", "tpu3", "bf16", 275e12),
    ("mobile-soc", "npu", "int8", 45e12),
])
def test_peaks_match_the_hardware_reference(presets, name, unit, dtype, flop_per_s):
    assert presets[name].unit(unit).peak_flop_per_s[dtype] == approx(flop_per_s)


@pytest.mark.parametrize(("name", "unit", "vector"), [
    ("h100-sxm", "gpu", 67e12), ("a100-sxm-80gb", "gpu", 19.5e12), ("mi300x", "gpu", 81.7e12),
    ("xeon-8480", "cpu", 7.168e12), ("tpu-v4", "tpu", 2 * 2048 * 1.05e9),
])
def test_vector_peaks_match_the_hardware_reference(presets, name, unit, vector):
    assert presets[name].unit(unit).vector_flop_per_s == approx(vector, rel=0.01)


@pytest.mark.parametrize(("name", "memory", "capacity", "bandwidth"), [
    ("h100-sxm", "hbm", 80e9, 3.35e12),
    ("h200", "hbm", 141e9, 4.8e12),
    ("a100-sxm-80gb", "hbm", 80e9, 2.039e12),
    ("mi300x", "hbm", 192e9, 5.3e12),
    ("tpu-v4", "hbm", 32 * 2**30, 1.2e12),
    ("tpu-v5e", "hbm", 16e9, 819e9),
    ("xeon-8480", "ddr5", 512e9, 307.2e9),
    ("gh200", "hbm3", 96e9, 4e12),
    ("gh200", "lpddr5x", 480e9, 512e9),
    ("dgx-h100", "hbm5", 80e9, 3.35e12),
    ("dgx-h100", "ddr1", 1e12, 307.2e9),
    ("tpu-v4-2x2", "hbm2", 32 * 2**30, 1.2e12),
    ("mobile-soc", "lpddr", 12e9, 76.8e9),
])
def test_memories_match_the_hardware_reference(presets, name, memory, capacity, bandwidth):
    m = presets[name].memory(memory)
    assert m.capacity_bytes == capacity  # exact: GiB must parse as binary, GB as decimal
    assert m.bandwidth_bytes_per_s == approx(bandwidth)


@pytest.mark.parametrize(("name", "unit", "matmul"), [
    ("h100-sxm", "gpu", 794.5 / 989), ("h200", "gpu", 794.5 / 989), ("a100-sxm-80gb", "gpu", 271.2 / 312),
    ("gh200", "gpu", 828.6 / 989), ("mi300x", "gpu", 668.4 / 1300), ("dgx-h100", "gpu0", 794.5 / 989),
])
def test_gemm_efficiency_is_the_measured_mamf(presets, name, unit, matmul):
    assert presets[name].unit(unit).efficiency("matmul") == approx(matmul, rel=0.005)


@pytest.mark.parametrize(("name", "tdp"), sorted(BOARD_TDP_W.items()))
def test_gpu_nominal_power_plus_hbm_share_is_the_tdp(presets, name, tdp):
    p = presets[name]
    gpu, hbm = p.unit("gpu"), p.memory("hbm")
    full = gpu.nominal.power_w(1.0) + hbm.bandwidth_bytes_per_s * hbm.energy_per_byte_j
    assert full == approx(tdp, rel=0.002)
    assert p.power_budget_w == tdp


@pytest.mark.parametrize(("name", "idle"), [("h100-sxm", 75.0), ("h200", 115.0), ("tpu-v4", 90.0)])
def test_static_power_is_the_measured_idle(presets, name, idle):
    assert presets[name].units[0].nominal.static_power_w == idle


def test_tpu_v4_peaks_at_its_measured_max_power(presets):
    p = presets["tpu-v4"]
    hbm = p.memory("hbm")
    assert p.unit("tpu").nominal.power_w(1.0) + hbm.bandwidth_bytes_per_s * hbm.energy_per_byte_j == approx(192.0)


def test_gh200_is_a_grace_cpu_and_a_hopper_gpu_on_nvlink_c2c(presets):
    p = presets["gh200"]
    assert [(u.name, u.kind, u.memory) for u in p.units] == [("cpu", "cpu", "lpddr5x"), ("gpu", "gpu", "hbm3")]
    assert not p.shares_memory("cpu", "gpu")
    route = p.route("lpddr5x", "hbm3")
    assert route.links == ("nvlink-c2c",) == p.route("hbm3", "lpddr5x").links
    c2c = p.link("nvlink-c2c")
    assert c2c.bandwidth_bytes_per_s == 450e9 and c2c.duplex
    assert route.bandwidth_bytes_per_s == approx(375e9, rel=0.01)  # measured host-to-device rate
    assert p.power_budget_w == 1000.0


def test_gh200_unit_power_fits_the_gpu_and_grace_limits(presets):
    p = presets["gh200"]
    hbm, lp = p.memory("hbm3"), p.memory("lpddr5x")
    gpu_full = p.unit("gpu").nominal.power_w(1.0) + hbm.bandwidth_bytes_per_s * hbm.energy_per_byte_j
    cpu_full = p.unit("cpu").nominal.power_w(1.0) + lp.bandwidth_bytes_per_s * lp.energy_per_byte_j
    assert gpu_full == approx(900.0) and cpu_full == approx(250.0)
    assert gpu_full + cpu_full > p.power_budget_w  # the module budget binds when both are busy


def test_mobile_soc_units_share_one_memory(presets):
    p = presets["mobile-soc"]
    assert {u.name for u in p.units} == {"cpu_big", "cpu_little", "gpu", "npu"}
    assert [m.name for m in p.memories] == ["lpddr"] and not p.links
    assert {u.memory for u in p.units} == {"lpddr"}
    for a, b in itertools.combinations([u.name for u in p.units], 2):
        assert p.shares_memory(a, b)
    assert p.route("lpddr", "lpddr").links == ()
    assert p.power_budget_w is not None and p.power_budget_w < sum(u.nominal.power_w(1.0) for u in p.units)


def test_mobile_soc_npu_is_restricted(presets):
    npu = presets["mobile-soc"].unit("npu")
    assert npu.kind == "npu"
    assert npu.op_kinds == frozenset({"matmul", "conv", "attention", "elementwise", "norm", "softmax"})
    assert set(npu.peak_flop_per_s) == {"int8", "fp16"}
    assert npu.can_run("matmul", "fp16") and npu.can_run("softmax", "int8")
    assert not npu.can_run("matmul", "bf16") and not npu.can_run("embedding", "fp16")


def test_mobile_soc_big_cluster_peak_sums_its_cores(presets):
    big = presets["mobile-soc"].unit("cpu_big")
    # 1x X4 (32 FLOP/clk at 3.3 GHz) + 3x A720 at 3.2 GHz + 2x A720 at 3.0 GHz (16 FLOP/clk)
    assert big.peak_flop_per_s["fp32"] == approx(32 * 3.3e9 + 3 * 16 * 3.2e9 + 2 * 16 * 3.0e9)


def test_dgx_h100_gpus_talk_through_nvswitch(presets):
    p = presets["dgx-h100"]
    assert "nvswitch" in p.switches
    assert p.route("hbm0", "hbm7").links == ("nvlink0", "nvlink7")
    for i, j in itertools.permutations(range(8), 2):
        route = p.route(f"hbm{i}", f"hbm{j}")
        assert route.links == (f"nvlink{i}", f"nvlink{j}")
        assert route.latency_s == approx(2 * 0.94e-6)
        assert route.bandwidth_bytes_per_s == approx(450e9 * 0.83)


def test_dgx_h100_host_paths(presets):
    p = presets["dgx-h100"]
    assert {u.name for u in p.units} == {f"gpu{i}" for i in range(8)} | {"cpu0", "cpu1"}
    assert p.route("hbm0", "ddr0").links == ("pcie-gpu0", "pcie-host0")
    assert p.route("hbm7", "ddr1").links == ("pcie-gpu7", "pcie-host1")
    assert p.route("hbm3", "ddr1").links == ("pcie-gpu3", "pcie-host0", "upi")
    assert p.route("ddr0", "ddr1").links == ("upi",)
    assert p.route("hbm0", "ddr0").bandwidth_bytes_per_s == approx(63e9 * 0.88)
    assert p.power_budget_w == 10.2e3


def test_dgx_h100_anchored_copies_match_the_single_gpu_preset(presets):
    p, single = presets["dgx-h100"], presets["h100-sxm"]
    ref = single.unit("gpu")
    for i in range(8):
        gpu = p.unit(f"gpu{i}")
        assert gpu.memory == f"hbm{i}"
        assert dict(gpu.peak_flop_per_s) == dict(ref.peak_flop_per_s)
        assert gpu.power_states == ref.power_states
        assert p.memory(f"hbm{i}").capacity_bytes == single.memory("hbm").capacity_bytes
    assert dict(p.unit("cpu1").peak_flop_per_s) == dict(presets["xeon-8480"].unit("cpu").peak_flop_per_s)


def test_tpu_v4_2x2_is_a_ring_of_four_without_wraparound(presets):
    p = presets["tpu-v4-2x2"]
    assert [u.memory for u in p.units] == ["hbm0", "hbm1", "hbm2", "hbm3"]
    assert len(p.links) == 4 and all(link.bandwidth_bytes_per_s == 45e9 for link in p.links)
    degree = {m.name: 0 for m in p.memories}
    for link in p.links:
        degree[link.a] += 1
        degree[link.b] += 1
    assert set(degree.values()) == {2}
    for a, b in [(0, 1), (0, 2), (1, 3), (2, 3)]:
        assert len(p.route(f"hbm{a}", f"hbm{b}").links) == 1
    for a, b in [(0, 3), (1, 2)]:
        route = p.route(f"hbm{a}", f"hbm{b}")
        assert len(route.links) == 2 and route.latency_s == approx(1e-6)
    assert dict(p.unit("tpu2").peak_flop_per_s) == dict(presets["tpu-v4"].unit("tpu").peak_flop_per_s)


def test_single_device_presets_have_no_host_and_no_links(presets):
    for name in ["a100-sxm-80gb", "h100-sxm", "h200", "mi300x", "tpu-v4", "tpu-v5e", "xeon-8480", "cpu-generic"]:
        p = presets[name]
        assert len(p.units) == 1 and len(p.memories) == 1 and not p.links and not p.switches, name


def test_cpu_generic_says_it_is_a_placeholder_for_calibration(presets):
    p = presets["cpu-generic"]
    assert "placeholder" in p.description and "measurements" in p.description
    assert any("replaced by measurements" in a for a in p.assumptions)
    assert p.unit("cpu").kind == "cpu" and p.unit("cpu").vector_flop_per_s is None
