"""The Splitwise-HA preset: a DGX H100 (h.) for prefill and a DGX A100 (a.) for decode on one InfiniBand
switch. KV caches cross the IB fabric at the A100's HDR rate, each node keeps NVLink inside, and the two
nodes carry their own GPUs' figures."""

from __future__ import annotations

import itertools

import pytest

from hetsim.graph.schema import add_op, new_graph
from hetsim.sched.schedule import Schedule
from hetsim.spec.loader import load_platform

NAME = "dgx-h100-a100-ib"


def approx(value: float, rel: float = 1e-9):
    return pytest.approx(value, rel=rel)


@pytest.fixture(scope="module")
def p():
    return load_platform(NAME)


def test_units_are_eight_h100s_two_xeons_eight_a100s_two_epycs_in_that_order(p):
    names = [u.name for u in p.units]
    assert names == ([f"h.gpu{k}" for k in range(8)] + ["h.cpu0", "h.cpu1"]
                     + [f"a.gpu{k}" for k in range(8)] + ["a.cpu0", "a.cpu1"])
    for node, k in itertools.product("ha", range(8)):
        assert p.unit(f"{node}.gpu{k}").memory == f"{node}.hbm{k}"
        assert f"{node}.nic{k}" in p.switches
    assert {"ib", "h.nvswitch", "a.nvswitch"} <= set(p.switches)
    assert p.power_budget_w == approx(10.2e3 + 6.5e3)


def test_h100_and_a100_peaks_differ_as_their_datasheets(p):
    h, a = p.unit("h.gpu0"), p.unit("a.gpu0")
    assert h.kind == a.kind == "gpu"
    assert h.peak_flop_per_s["bf16"] == approx(989e12) and a.peak_flop_per_s["bf16"] == approx(312e12)
    assert "fp8" in h.peak_flop_per_s and "fp8" not in a.peak_flop_per_s  # Ampere has no FP8 tensor mode
    assert a.vector_flop_per_s == approx(19.5e12) and h.vector_flop_per_s == approx(67e12)
    assert p.memory("h.hbm0").bandwidth_bytes_per_s == approx(3.35e12)
    assert p.memory("a.hbm7").bandwidth_bytes_per_s == approx(2.039e12)
    # the A100 is cheaper per decode token: less power at full tilt
    assert a.nominal.power_w(1.0) < h.nominal.power_w(1.0)


def test_memory_capacities(p):
    for k in range(8):
        assert p.memory(f"h.hbm{k}").capacity_bytes == 80e9
        assert p.memory(f"a.hbm{k}").capacity_bytes == 80e9
    assert p.memory("h.ddr1").capacity_bytes == 1e12  # 2 TB DDR5 per DGX H100
    assert p.memory("a.ddr1").capacity_bytes == 1e12  # 2 TB DDR4 per DGX A100 with 80 GB GPUs (assumed)
    assert p.memory("a.ddr0").bandwidth_bytes_per_s == approx(8 * 8 * 3.2e9)  # 8 channels DDR4-3200


def test_epyc_hosts_have_avx2_fp32_peak_and_no_int8(p):
    cpu = p.unit("a.cpu1")
    assert cpu.kind == "cpu" and cpu.memory == "a.ddr1"
    assert cpu.peak_flop_per_s["fp32"] == approx(64 * 32 * 2.25e9, rel=1e-3)
    assert not cpu.can_run("matmul", "int8") and cpu.can_run("matmul", "bf16")
    assert cpu.nominal.power_w(1.0) == approx(225.0)  # EPYC 7742 TDP
    assert p.unit("h.cpu1").peak_flop_per_s["bf16"] == approx(56 * 1024 * 2.0e9, rel=1e-3)  # AMX on the Xeon


def test_kv_cache_route_from_h100_to_a100_crosses_ib_at_the_hdr_rate(p):
    route = p.route("h.hbm0", "a.hbm0")
    assert route.links == ("h.pcie-nic0", "h.ib0", "a.ib0", "a.pcie-nic0")
    hdr, ndr = p.link("a.ib0"), p.link("h.ib0")
    assert hdr.bandwidth_bytes_per_s == 25e9 and ndr.bandwidth_bytes_per_s == 50e9
    assert route.bandwidth_bytes_per_s == hdr.effective_bandwidth_bytes_per_s == approx(25e9 * 0.8)
    assert route.latency_s == approx(0.5e-6 + 0.75e-6 + 0.75e-6 + 0.5e-6)
    for i, j in itertools.product(range(8), repeat=2):
        r = p.route(f"h.hbm{i}", f"a.hbm{j}")
        assert r.links == (f"h.pcie-nic{i}", f"h.ib{i}", f"a.ib{j}", f"a.pcie-nic{j}")
        assert r.bandwidth_bytes_per_s == approx(20e9)
        assert p.route(f"a.hbm{j}", f"h.hbm{i}").links == tuple(reversed(r.links))


def test_inside_each_node_gpus_keep_nvlink(p):
    for i, j in itertools.permutations(range(8), 2):
        h = p.route(f"h.hbm{i}", f"h.hbm{j}")
        assert h.links == (f"h.nvlink{i}", f"h.nvlink{j}")
        assert h.bandwidth_bytes_per_s == approx(450e9 * 0.83)
        a = p.route(f"a.hbm{i}", f"a.hbm{j}")
        assert a.links == (f"a.nvlink{i}", f"a.nvlink{j}")
        assert a.bandwidth_bytes_per_s == approx(300e9 * p.link(f"a.nvlink{i}").efficiency)
        assert a.latency_s < p.route(f"h.hbm{i}", f"a.hbm{j}").latency_s
    assert 0.75 <= p.link("a.nvlink0").efficiency <= 0.8  # ~235 of 300 GB/s


def test_a100_host_paths_are_pcie_gen4_and_infinity_fabric(p):
    assert p.route("a.hbm2", "a.ddr0").links == ("a.pcie-gpu2", "a.pcie-host0")
    assert p.route("a.hbm5", "a.ddr1").links == ("a.pcie-gpu5", "a.pcie-host1")
    assert p.route("a.hbm1", "a.ddr1").links == ("a.pcie-gpu1", "a.pcie-host0", "a.xgmi")
    assert p.route("a.hbm0", "a.ddr0").bandwidth_bytes_per_s == approx(32e9 * 0.78)
    assert p.route("h.hbm0", "h.ddr0").bandwidth_bytes_per_s == approx(63e9 * 0.88)


def test_node_h_is_node_n0_of_the_two_node_h100_preset(p):
    ref = load_platform("2x-dgx-h100-ib")
    for name in [f"gpu{k}" for k in range(8)] + ["cpu0", "cpu1"]:
        mine, theirs = p.unit(f"h.{name}"), ref.unit(f"n0.{name}")
        assert dict(mine.peak_flop_per_s) == dict(theirs.peak_flop_per_s)
        assert mine.power_states == theirs.power_states
        assert dict(mine.compute_efficiency) == dict(theirs.compute_efficiency)
    for link in ref.links:
        if link.name.startswith("n0."):
            mine = p.link("h." + link.name[3:])
            assert (mine.bandwidth_bytes_per_s, mine.latency_s, mine.efficiency) == \
                (link.bandwidth_bytes_per_s, link.latency_s, link.efficiency)


def test_node_a_gpus_are_the_a100_preset(p):
    single = load_platform("a100-sxm-80gb")
    ref, hbm = single.unit("gpu"), single.memory("hbm")
    for k in range(8):
        gpu = p.unit(f"a.gpu{k}")
        assert dict(gpu.peak_flop_per_s) == dict(ref.peak_flop_per_s)
        assert gpu.power_states == ref.power_states
        assert dict(gpu.compute_efficiency) == dict(ref.compute_efficiency)
        assert gpu.onchip_bytes == ref.onchip_bytes == 40e6
        assert gpu.onchip_bandwidth_bytes_per_s == ref.onchip_bandwidth_bytes_per_s
        m = p.memory(f"a.hbm{k}")
        assert (m.bandwidth_bytes_per_s, m.efficiency, m.energy_per_byte_j) == \
            (hbm.bandwidth_bytes_per_s, hbm.efficiency, hbm.energy_per_byte_j)


def test_prefill_on_h100_then_decode_on_a100_ships_the_kv_cache_over_infiniband(p):
    from hetsim import simulate

    g = new_graph("splitwise", dtype="bf16")
    add_op(g, "prefill", op="matmul", flop=1e13, bytes_read=1e9, bytes_written=2e9, dtype="bf16")
    add_op(g, "decode", op="matmul", flop=1e10, bytes_read=2e9, dtype="bf16")
    g.add_edge("prefill", "decode", bytes=2e9)  # the KV cache
    schedule = Schedule("manual", {"prefill": "h.gpu3", "decode": "a.gpu6"},
                        {"h.gpu3": ("prefill",), "a.gpu6": ("decode",)})
    result = simulate(g, p, schedule)
    (transfer,) = result.trace.transfers
    assert transfer.links == ("h.pcie-nic3", "h.ib3", "a.ib6", "a.pcie-nic6")
    assert transfer.end_s - transfer.start_s == approx(2.5e-6 + 2e9 / 20e9, rel=1e-6)
