"""Interconnect topologies: the PCIe-tree, two- and four-node InfiniBand and 3D-torus presets route as drawn
in their headers, and a broken topology is refused with one line naming the field (exit 2 from
``hetsim run``)."""

from __future__ import annotations

import itertools
import time

import pytest
import yaml
from hetsim_testing import two_unit_dict

from hetsim.cli import main
from hetsim.errors import SpecError
from hetsim.graph.schema import add_op, new_graph
from hetsim.sched.schedule import Schedule
from hetsim.spec.loader import load_platform, platform_from_dict, preset_path

NEW_PRESETS = ["pcie-4x-l40s", "2x-dgx-h100-ib", "4x-dgx-h100-ib", "tpu-v4-4x4x4"]


def approx(value: float, rel: float = 1e-9):
    return pytest.approx(value, rel=rel)


@pytest.fixture(scope="module")
def presets():
    return {name: load_platform(name) for name in [*NEW_PRESETS, "dgx-h100", "tpu-v4"]}


def hops(route) -> int:
    return len(route.links)


def nodes_on(platform, route) -> set[str]:
    """Every memory or switch a route touches."""
    return {end for name in route.links for end in (platform.link(name).a, platform.link(name).b)}


def check_route_sums(platform, route) -> None:
    links = [platform.link(name) for name in route.links]
    assert route.latency_s == approx(sum(link.latency_s for link in links))
    assert route.bandwidth_bytes_per_s == min(link.effective_bandwidth_bytes_per_s for link in links)


# ------------------------------------------------------------------------------------ all presets


@pytest.mark.parametrize("name", NEW_PRESETS)
def test_new_preset_loads_quickly_and_is_named_after_its_file(name):
    start = time.perf_counter()
    p = load_platform(name)
    assert time.perf_counter() - start < 1.0
    assert p.name == name and p.description.strip() and len(p.assumptions) >= 2


@pytest.mark.parametrize("name", NEW_PRESETS)
def test_every_unit_memory_reaches_every_other_and_the_route_sums_add_up(presets, name):
    p = presets[name]
    memories = sorted({u.memory for u in p.units})
    for a, b in itertools.combinations(memories[:24], 2):
        check_route_sums(p, p.route(a, b))


def test_the_new_presets_are_listed(capsys):
    assert main(["presets", "--json"]) == 0
    listed = yaml.safe_load(capsys.readouterr().out)
    assert set(NEW_PRESETS) <= set(listed)


# ---------------------------------------------------------------------------------- PCIe tree


def test_pcie_tree_gpus_on_one_switch_talk_through_that_switch_only(presets):
    p = presets["pcie-4x-l40s"]
    assert set(p.switches) == {"plx0", "plx1", "rc"}
    for a, b, switch in [(0, 1, "plx0"), (2, 3, "plx1")]:
        route = p.route(f"gddr{a}", f"gddr{b}")
        assert route.links == (f"pcie-gpu{a}", f"pcie-gpu{b}")
        assert nodes_on(p, route) == {f"gddr{a}", switch, f"gddr{b}"}
        assert route.latency_s == approx(2 * 1.5e-6)
        assert route.bandwidth_bytes_per_s == approx(32e9 * 0.78)


def test_pcie_tree_gpus_on_different_switches_cross_the_root_complex(presets):
    p = presets["pcie-4x-l40s"]
    route = p.route("gddr0", "gddr2")
    assert route.links == ("pcie-gpu0", "pcie-up0", "pcie-up1", "pcie-gpu2")
    assert "rc" in nodes_on(p, route) and "ddr5" not in nodes_on(p, route)
    assert route.latency_s == approx(1.5e-6 + 0.5e-6 + 0.5e-6 + 1.5e-6)
    # the bottleneck is a PCIe Gen4 x16 link: 32 GB/s per direction times its efficiency
    assert route.bandwidth_bytes_per_s == p.link("pcie-gpu0").effective_bandwidth_bytes_per_s == approx(32e9 * 0.78)
    for i, j in itertools.permutations(range(4), 2):
        expected = 2 if i // 2 == j // 2 else 4
        assert hops(p.route(f"gddr{i}", f"gddr{j}")) == expected


def test_pcie_tree_host_paths_and_no_nvlink(presets):
    p = presets["pcie-4x-l40s"]
    assert p.route("gddr3", "ddr5").links == ("pcie-gpu3", "pcie-up1", "rc-ddr")
    assert p.unit("cpu").memory == "ddr5"
    for link in p.links:
        if link.a.startswith("gddr"):
            assert link.name.startswith("pcie-gpu") and link.b in {"plx0", "plx1"}
            assert link.bandwidth_bytes_per_s == 32e9


def test_pcie_tree_gpus_are_l40s_at_their_datasheet_figures(presets):
    p = presets["pcie-4x-l40s"]
    for i in range(4):
        gpu, gddr = p.unit(f"gpu{i}"), p.memory(f"gddr{i}")
        assert gpu.memory == f"gddr{i}"
        assert gpu.peak_flop_per_s["bf16"] == 362.05e12 and gpu.peak_flop_per_s["fp8"] == 733e12
        assert gpu.peak_flop_per_s["fp32"] == 91.6e12
        assert gddr.capacity_bytes == 48e9 and gddr.bandwidth_bytes_per_s == 864e9
        # the 350 W board power = the nominal state at full activity + GDDR6 at full bandwidth
        assert gpu.nominal.power_w(1.0) + gddr.bandwidth_bytes_per_s * gddr.energy_per_byte_j == approx(350.0, 1e-4)


# ------------------------------------------------------------------------- two DGX nodes over IB


def test_two_dgx_nodes_have_unique_prefixed_names(presets):
    p = presets["2x-dgx-h100-ib"]
    gpus = [u.name for u in p.units if u.kind == "gpu"]
    assert gpus == [f"n{n}.gpu{k}" for n in range(2) for k in range(8)]
    assert {u.name for u in p.units if u.kind == "cpu"} == {"n0.cpu0", "n0.cpu1", "n1.cpu0", "n1.cpu1"}
    for n, k in itertools.product(range(2), range(8)):
        assert p.unit(f"n{n}.gpu{k}").memory == f"n{n}.hbm{k}"
    assert "ib" in p.switches and p.power_budget_w == 2 * 10.2e3


def test_a_gpu_reaches_the_other_node_via_nic_ib_switch_nic(presets):
    p = presets["2x-dgx-h100-ib"]
    route = p.route("n0.hbm2", "n1.hbm5")
    assert route.links == ("n0.pcie-nic2", "n0.ib2", "n1.ib5", "n1.pcie-nic5")
    assert nodes_on(p, route) == {"n0.hbm2", "n0.nic2", "ib", "n1.nic5", "n1.hbm5"}
    assert route.latency_s == approx(0.5e-6 + 0.75e-6 + 0.75e-6 + 0.5e-6)  # latencies summed
    ib = p.link("n0.ib2")
    assert ib.bandwidth_bytes_per_s == 50e9  # 400 Gb/s NDR per direction
    assert route.bandwidth_bytes_per_s == ib.effective_bandwidth_bytes_per_s == approx(50e9 * 0.8)
    for i, j in itertools.product(range(8), repeat=2):
        route = p.route(f"n0.hbm{i}", f"n1.hbm{j}")
        assert route.links == (f"n0.pcie-nic{i}", f"n0.ib{i}", f"n1.ib{j}", f"n1.pcie-nic{j}")
        assert route.bandwidth_bytes_per_s == approx(40e9)


def test_a_transfer_between_nodes_is_simulated_over_infiniband(presets):
    from hetsim import simulate

    g = new_graph("pair", dtype="bf16")
    add_op(g, "a", op="matmul", flop=1e12, bytes_read=1e8, bytes_written=1e9, dtype="bf16")
    add_op(g, "b", op="matmul", flop=1e12, bytes_read=1e9, dtype="bf16")
    g.add_edge("a", "b", bytes=1e9)
    schedule = Schedule("manual", {"a": "n0.gpu2", "b": "n1.gpu5"}, {"n0.gpu2": ("a",), "n1.gpu5": ("b",)})
    result = simulate(g, presets["2x-dgx-h100-ib"], schedule)
    (transfer,) = result.trace.transfers
    assert transfer.links == ("n0.pcie-nic2", "n0.ib2", "n1.ib5", "n1.pcie-nic5")
    assert transfer.end_s - transfer.start_s == approx(2.5e-6 + 1e9 / 40e9, rel=1e-6)


# ------------------------------------------------------------------------ four DGX nodes over IB


def test_four_dgx_nodes_have_32_gpus_with_unique_prefixed_names(presets):
    p = presets["4x-dgx-h100-ib"]
    gpus = [u for u in p.units if u.kind == "gpu"]
    assert [u.name for u in gpus] == [f"n{n}.gpu{k}" for n in range(4) for k in range(8)]
    assert len(gpus) == 32
    assert {u.name for u in p.units if u.kind == "cpu"} == {f"n{n}.cpu{s}" for n in range(4) for s in range(2)}
    for n, k in itertools.product(range(4), range(8)):
        assert p.unit(f"n{n}.gpu{k}").memory == f"n{n}.hbm{k}"
        assert f"n{n}.nic{k}" in p.switches
    assert all(u.onchip_bytes == 50e6 and u.onchip_bandwidth_bytes_per_s == 5.5e12 for u in gpus)
    assert "ib" in p.switches and p.power_budget_w == 4 * 10.2e3


def test_n0_gpu0_reaches_n3_gpu7_via_nic_ib_switch_nic(presets):
    p = presets["4x-dgx-h100-ib"]
    route = p.route("n0.hbm0", "n3.hbm7")
    assert route.links == ("n0.pcie-nic0", "n0.ib0", "n3.ib7", "n3.pcie-nic7")
    assert nodes_on(p, route) == {"n0.hbm0", "n0.nic0", "ib", "n3.nic7", "n3.hbm7"}
    assert route.latency_s == approx(0.5e-6 + 0.75e-6 + 0.75e-6 + 0.5e-6)  # latencies summed
    check_route_sums(p, route)
    ib = p.link("n0.ib0")
    assert ib.bandwidth_bytes_per_s == 50e9  # 400 Gb/s NDR per direction
    assert route.bandwidth_bytes_per_s == ib.effective_bandwidth_bytes_per_s == approx(50e9 * 0.8)
    for a, b in itertools.permutations(range(4), 2):
        for i, j in itertools.product(range(8), repeat=2):
            route = p.route(f"n{a}.hbm{i}", f"n{b}.hbm{j}")
            assert route.links == (f"n{a}.pcie-nic{i}", f"n{a}.ib{i}", f"n{b}.ib{j}", f"n{b}.pcie-nic{j}")
            assert route.bandwidth_bytes_per_s == approx(40e9)


NODES = [("2x-dgx-h100-ib", 2), ("4x-dgx-h100-ib", 4)]


@pytest.mark.parametrize(("name", "nodes"), NODES)
def test_inside_each_node_the_gpus_keep_nvlink(presets, name, nodes):
    p = presets[name]
    for n in range(nodes):
        for i, j in itertools.permutations(range(8), 2):
            route = p.route(f"n{n}.hbm{i}", f"n{n}.hbm{j}")
            assert route.links == (f"n{n}.nvlink{i}", f"n{n}.nvlink{j}")
            assert route.latency_s == approx(2 * 0.94e-6)
    last = f"n{nodes - 1}"
    assert p.route(f"{last}.hbm6", f"{last}.ddr1").links == (f"{last}.pcie-gpu6", f"{last}.pcie-host1")


@pytest.mark.parametrize(("name", "nodes"), NODES)
def test_each_node_matches_the_dgx_h100_preset(presets, name, nodes):
    p, dgx = presets[name], presets["dgx-h100"]
    ref_gpu, ref_cpu = dgx.unit("gpu0"), dgx.unit("cpu0")
    for n in range(nodes):
        for k in range(8):
            gpu = p.unit(f"n{n}.gpu{k}")
            assert dict(gpu.peak_flop_per_s) == dict(ref_gpu.peak_flop_per_s)
            assert gpu.power_states == ref_gpu.power_states
            assert p.memory(f"n{n}.hbm{k}").bandwidth_bytes_per_s == dgx.memory(f"hbm{k}").bandwidth_bytes_per_s
        assert p.unit(f"n{n}.cpu1").power_states == ref_cpu.power_states
        assert p.memory(f"n{n}.ddr1").capacity_bytes == dgx.memory("ddr1").capacity_bytes
        assert p.link(f"n{n}.upi").bandwidth_bytes_per_s == dgx.link("upi").bandwidth_bytes_per_s


def test_the_four_node_preset_extends_the_two_node_one(presets):
    """Nodes n0 and n1 are the 2-node preset's, part for part; only the node count and power differ."""
    p4, p2 = presets["4x-dgx-h100-ib"], presets["2x-dgx-h100-ib"]
    assert p4.sources == p2.sources
    assert len(p4.units) == 2 * len(p2.units) and len(p4.memories) == 2 * len(p2.memories)
    assert len(p4.links) == 2 * len(p2.links) and len(p4.switches) == 2 * len(p2.switches) - 1  # one `ib`
    for unit in p2.units:
        assert p4.unit(unit.name) == unit
    for memory in p2.memories:
        assert p4.memory(memory.name) == memory
    for link in p2.links:
        assert p4.link(link.name) == link
    assert p4.power_budget_w == 2 * p2.power_budget_w


def test_a_transfer_across_four_nodes_is_simulated_over_infiniband(presets):
    from hetsim import simulate

    g = new_graph("pair", dtype="bf16")
    add_op(g, "a", op="matmul", flop=1e12, bytes_read=1e8, bytes_written=1e9, dtype="bf16")
    add_op(g, "b", op="matmul", flop=1e12, bytes_read=1e9, dtype="bf16")
    g.add_edge("a", "b", bytes=1e9)
    schedule = Schedule("manual", {"a": "n0.gpu0", "b": "n3.gpu7"}, {"n0.gpu0": ("a",), "n3.gpu7": ("b",)})
    result = simulate(g, presets["4x-dgx-h100-ib"], schedule)
    (transfer,) = result.trace.transfers
    assert transfer.links == ("n0.pcie-nic0", "n0.ib0", "n3.ib7", "n3.pcie-nic7")
    assert transfer.end_s - transfer.start_s == approx(2.5e-6 + 1e9 / 40e9, rel=1e-6)


# ------------------------------------------------------------------------------------ 3D torus


def coords():
    return list(itertools.product(range(4), repeat=3))


def hbm(x: int, y: int, z: int) -> str:
    return f"hbm{x}{y}{z}"


def test_torus_has_64_chips_with_six_links_each(presets):
    p = presets["tpu-v4-4x4x4"]
    assert len(p.units) == len(p.memories) == 64 and len(p.links) == 192 and not p.switches
    degree = {m.name: 0 for m in p.memories}
    neighbours = {m.name: set() for m in p.memories}
    for link in p.links:
        degree[link.a] += 1
        degree[link.b] += 1
        neighbours[link.a].add(link.b)
        neighbours[link.b].add(link.a)
    assert set(degree.values()) == {6}
    for x, y, z in coords():
        expected = {hbm((x + d) % 4, y, z) for d in (1, 3)} | {hbm(x, (y + d) % 4, z) for d in (1, 3)} \
            | {hbm(x, y, (z + d) % 4) for d in (1, 3)}
        assert neighbours[hbm(x, y, z)] == expected
    assert dict(p.unit("tpu321").peak_flop_per_s) == dict(presets["tpu-v4"].unit("tpu").peak_flop_per_s)
    assert p.unit("tpu321").memory == "hbm321"


@pytest.mark.parametrize(("src", "dst", "wraparound"), [
    ("hbm000", "hbm300", "ici-x-300"), ("hbm000", "hbm030", "ici-y-030"), ("hbm000", "hbm003", "ici-z-003"),
    ("hbm312", "hbm012", "ici-x-312"),
])
def test_torus_ends_of_an_axis_are_one_wraparound_hop_apart(presets, src, dst, wraparound):
    p = presets["tpu-v4-4x4x4"]
    route = p.route(src, dst)
    assert route.links == (wraparound,)  # 1 hop, not the 3 of a mesh
    assert route.latency_s == approx(0.5e-6) and route.bandwidth_bytes_per_s == approx(45e9 * 0.9)


def test_torus_hop_counts_follow_ring_distances(presets):
    p = presets["tpu-v4-4x4x4"]

    def ring(a: int, b: int) -> int:
        return min((a - b) % 4, (b - a) % 4)

    src = (1, 3, 0)
    for dst in coords():
        route = p.route(hbm(*src), hbm(*dst))
        expected = sum(ring(a, b) for a, b in zip(src, dst, strict=True))
        assert hops(route) == expected, dst
        assert route.latency_s == approx(0.5e-6 * expected)
    # opposite corners of the cube: 1 hop per axis through the wraparounds (3, not 9); the diameter is 6
    assert hops(p.route("hbm000", "hbm333")) == 3
    assert hops(p.route("hbm000", "hbm222")) == 6
    assert hops(p.route("hbm000", "hbm200")) == 2


# ----------------------------------------------------------------------------- bad topologies


def preset_text(name: str) -> str:
    return preset_path(name).read_text(encoding="utf-8")


def error_of(data) -> str:
    with pytest.raises(SpecError) as info:
        platform_from_dict(data)
    message = str(info.value)
    assert "\n" not in message, "errors must be one line"
    return message


def no_links(d):
    d["links"] = []


def island(d):
    """u2 works in m2, which a link joins to a switch but to nothing else."""
    d["memories"].append({"name": "m2", "capacity": "1 GB", "bandwidth": "1 GB/s"})
    d["units"].append(dict(d["units"][1], name="u2", memory="m2"))
    d["switches"] = ["sw"]
    d["links"].append({"name": "l2", "a": "m2", "b": "sw", "bandwidth": "1 GB/s"})


def link_field(key, value):
    def mutate(d):
        d["links"][0][key] = value
    return mutate


def unused_switch(d):
    d["switches"] = ["sw"]


def unnamed_switch(d):
    d["switches"] = [None]


BAD_TOPOLOGIES = {
    "disconnected unit": (no_links, "units.u1.memory: got 'm1', expected a memory that links connect to 'm0' "
                                    "(the memory of unit u0); no link touches 'm1'"),
    "unit on an island": (island, "units.u2.memory: got 'm2', expected a memory that links connect to 'm0' "
                                  "(the memory of unit u0); its links never lead to 'm0'"),
    "zero bandwidth": (link_field("bandwidth", "0 GB/s"),
                       "links.l01.bandwidth: got '0 GB/s', expected a positive bandwidth"),
    "negative bandwidth": (link_field("bandwidth", "-5 GB/s"),
                           "links.l01.bandwidth: got '-5 GB/s', expected a positive bandwidth"),
    "negative bare bandwidth": (link_field("bandwidth", -5),
                                "links.l01.bandwidth: got -5, expected a positive bandwidth"),
    "route to nowhere": (link_field("b", "mars"), "links.l01.b: got 'mars', expected a memory or switch (m0, m1)"),
    "link to a unit": (link_field("a", "u0"), "links.l01.a: got 'u0', expected a memory or switch, not a unit "
                                              "(unit 'u0' works in memory 'm0')"),
    "link to itself": (link_field("b", "m0"), "links.l01.b: got 'm0', expected an endpoint other than a"),
    "unused switch": (unused_switch, "platform.switches: got 'sw', expected a switch that at least one link joins "
                                     "(no link names it as a or b)"),
    "unnamed switch": (unnamed_switch, "platform.switches[0]: got None, expected a non-empty switch name"),
}


@pytest.mark.parametrize("case", BAD_TOPOLOGIES)
def test_bad_topology_is_one_line_naming_field_value_and_expectation(case):
    mutate, message = BAD_TOPOLOGIES[case]
    data = two_unit_dict()
    mutate(data)
    assert error_of(data) == message


def test_a_route_to_nowhere_on_a_big_platform_still_fits_one_readable_line():
    data = yaml.safe_load(preset_text("tpu-v4-4x4x4"))
    data["links"][5]["b"] = "hbm444"
    message = error_of(data)
    assert message.startswith("links.ici-x-110.b: got 'hbm444', expected a memory or switch (hbm000, hbm001, ")
    assert message.endswith(", ... (64 in all))") and len(message) < 250


def test_cutting_a_switch_uplink_strands_the_gpus_under_it():
    data = yaml.safe_load(preset_text("pcie-4x-l40s"))
    data["links"] = [link for link in data["links"] if link["name"] != "pcie-up1"]
    assert error_of(data) == ("units.gpu2.memory: got 'gddr2', expected a memory that links connect to 'gddr0' "
                              "(the memory of unit gpu0); its links never lead to 'gddr0'")


@pytest.mark.parametrize("case", BAD_TOPOLOGIES)
def test_hetsim_run_on_a_bad_topology_exits_2_with_that_line(tmp_path, capsys, case):
    mutate, message = BAD_TOPOLOGIES[case]
    platform = two_unit_dict()
    mutate(platform)
    out = tmp_path / "out"
    scenario = {"name": "bad-topology", "platform": platform,
                "workload": {"model": "llama-3-8b", "phase": "prefill", "batch": 1, "seq_len": 2048, "dtype": "bf16"},
                "scheduler": "eft", "sim": {"contention": "none"},
                "outputs": {"dir": str(out), "trace": True, "gantt": True, "ops_csv": True}}
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    assert main(["run", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == f"hetsim: error: {message}"
    assert "Traceback" not in captured.err and captured.out == ""
    assert not out.exists()  # nothing half-written


# ---------------------------------------------------------------------------- 8-GPU servers


def test_hgx_h200_gpus_talk_through_nvswitch_at_the_nvlink_bottleneck():
    p = load_platform("hgx-h200")
    assert "nvswitch" in p.switches and p.memory("hbm3").capacity_bytes == 141e9
    for i, j in itertools.permutations(range(8), 2):
        route = p.route(f"hbm{i}", f"hbm{j}")
        assert route.links == (f"nvlink{i}", f"nvlink{j}")
        assert nodes_on(p, route) == {f"hbm{i}", "nvswitch", f"hbm{j}"}
        link = p.link(f"nvlink{i}")
        assert link.bandwidth_bytes_per_s == 450e9 and link.duplex
        assert route.bandwidth_bytes_per_s == approx(450e9 * link.efficiency)
        check_route_sums(p, route)


def test_mi300x_8_is_a_full_mesh_of_direct_infinity_fabric_links():
    p = load_platform("mi300x-8")
    gpu_memories = [f"hbm{i}" for i in range(8)]
    xgmi = [link for link in p.links if link.name.startswith("xgmi")]
    assert len(xgmi) == 28 and "nvswitch" not in p.switches
    assert all(link.bandwidth_bytes_per_s == 64e9 and link.duplex for link in xgmi)
    degree = {m: sum(m in (link.a, link.b) for link in xgmi) for m in gpu_memories}
    assert set(degree.values()) == {7}
    for a, b in itertools.permutations(gpu_memories, 2):
        route = p.route(a, b)
        assert len(route.links) == 1 and nodes_on(p, route) == {a, b}
        assert route.bandwidth_bytes_per_s == approx(64e9 * 0.75)
