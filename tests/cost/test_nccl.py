"""NCCL's cost model: hand-checked latencies and bandwidths, NCCL's choice by size and ranks,
send/recv, the platform-derived shape, the engine's replay of the choice, and the
``collectives:`` section of a platform."""

from __future__ import annotations

import math

import pytest
from hetsim_testing import collective_graph

import hetsim
from hetsim.cost.model import CostModel
from hetsim.cost.nccl import CommShape, NcclModel, candidates, comm_shape, node_of, predict, predict_many
from hetsim.errors import ScenarioError, SpecError
from hetsim.sim.engine import SimOptions
from hetsim.spec.loader import load_platform, platform_from_dict, preset_path, read_yaml
from hetsim.spec.nccl import NcclParams, nccl_to_dict, parse_nccl

US, GB = 1e-6, 1e9
DEFAULT = NcclParams()
DGX8 = [f"gpu{i}" for i in range(8)]
TWO_NODES = [f"n{i}.gpu{j}" for i in range(2) for j in range(8)]


def choice(kind: str, shape: CommShape, algorithm: str, protocol: str, params: NcclParams = DEFAULT):
    return next(c for c in candidates(kind, shape, params) if (c.algorithm, c.protocol) == (algorithm, protocol))


def collective_seconds(result) -> float:
    """How long the collective ran: every member's end - start (the host may launch it late)."""
    spans = {o.end_s - o.start_s for o in result.trace.ops}
    assert max(spans) - min(spans) < 1e-12 * max(spans)
    return max(spans)


# -- NCCL's formulas by hand (tuning.cc, NCCL 2.20.3) -------------------------------------------

@pytest.mark.parametrize("p", [2, 4, 8])
def test_ring_all_reduce_latency_and_bandwidth_on_one_nvlink_node(p):
    shape = CommShape(p, 1, "nvlink", 300 * GB, math.inf)
    steps, ratio = 2 * (p - 1), p / (2 * (p - 1))
    ll, ll128, simple = (choice("all_reduce", shape, "ring", proto) for proto in ("LL", "LL128", "Simple"))
    assert ll.latency_s == pytest.approx((6.6 + steps * 0.6) * US)
    assert ll128.latency_s == pytest.approx((14.0 + steps * 1.9) * US)
    assert simple.latency_s == pytest.approx((8.4 + steps * 3.4) * US)
    assert ll.bandwidth_bytes_per_s == pytest.approx(300 * GB / 4 * ratio)  # LL: a quarter, under the 87.7 GB/s cap
    assert ll128.bandwidth_bytes_per_s == pytest.approx(0.92 * 300 * GB * ratio)
    assert simple.bandwidth_bytes_per_s == pytest.approx(300 * GB * ratio)


def test_ring_all_reduce_across_nodes_pays_the_network_steps():
    # 2 nodes x 4 ranks: 14 steps, 2 of them on the network; intra steps at least the 1 us net overhead
    shape = CommShape(8, 2, "nvlink", 300 * GB, 50 * GB)
    ll = choice("all_reduce", shape, "ring", "LL")
    assert ll.latency_s == pytest.approx((6.6 + 12 * 1.0 + 2 * 2.7) * US)
    simple = choice("all_reduce", shape, "ring", "Simple")
    assert simple.latency_s == pytest.approx((8.4 + 12 * 3.4 + 2 * 14.0) * US)  # 3 x 1 us overhead < 3.4 us
    assert simple.bandwidth_bytes_per_s == pytest.approx(50 * GB * 8 / 14)  # the network is the bottleneck
    # the multi-node ring Simple plateau: latency x 1.4 from 64 KiB per 16 ranks on
    plateau = 1.4 * simple.latency_s + 1e9 / simple.bandwidth_bytes_per_s
    assert predict_many("all_reduce", shape, [1e9], DEFAULT)[0] == pytest.approx(plateau)


def test_ll_at_small_sizes_ll128_in_between_simple_at_large():
    shape = CommShape(8, 1, "nvlink", 300 * GB, math.inf)
    ll, ll128 = choice("all_reduce", shape, "ring", "LL"), choice("all_reduce", shape, "ring", "LL128")
    # hand: 15 us + n / 42.86 GB/s = 40.6 us + n / 157.7 GB/s at n = 1.507 MB
    crossover = (ll128.latency_s - ll.latency_s) / (1 / ll.bandwidth_bytes_per_s - 1 / ll128.bandwidth_bytes_per_s)
    assert crossover == pytest.approx(1.507e6, rel=1e-3)
    picks = {n: predict("all_reduce", shape, n, DEFAULT)[0] for n in (4e3, 1.4e6, 1.6e6, 4e9)}
    assert [(c.algorithm, c.protocol) for c in picks.values()] == [("ring", "LL"), ("ring", "LL"), ("ring", "LL128"),
                                                                  ("ring", "Simple")]
    assert predict("all_reduce", shape, 4e3, DEFAULT)[1] == pytest.approx(15.0 * US + 4e3 / ll.bandwidth_bytes_per_s)


def test_tree_wins_small_all_reduces_over_many_nodes_and_the_ring_large_ones():
    shape = CommShape(16, 16, "nvlink", math.inf, 25 * GB)  # one rank per node
    ring_ll, tree_ll = choice("all_reduce", shape, "ring", "LL"), choice("all_reduce", shape, "tree", "LL")
    assert ring_ll.latency_s == pytest.approx((6.6 + 30 * 2.7) * US)  # 30 steps, all on the network
    assert tree_ll.latency_s == pytest.approx((6.8 + 2 * 4 * 5.0) * US)  # 2 log2(16) network steps
    assert predict("all_reduce", shape, 1e3, DEFAULT)[0].algorithm == "tree"
    big = predict("all_reduce", shape, 1e9, DEFAULT)
    assert (big[0].algorithm, big[0].protocol) == ("ring", "Simple")
    assert big[1] == pytest.approx((8.4 + 30 * 14.0) * 1.4 * US + 1e9 / (25 * GB * 16 / 30))
    # the tree's bandwidth: 0.92 x bus, halved, x NCCL's size correction (1.0 past 256 MiB)
    assert choice("all_reduce", shape, "tree", "Simple").bandwidth_bytes_per_s == pytest.approx(25 * GB * 0.92 / 2)


def test_all_gather_counts_the_whole_buffer_over_p_minus_1_steps():
    shape = CommShape(4, 1, "nvlink", 100 * GB, math.inf)
    simple = choice("all_gather", shape, "ring", "Simple")
    assert simple.latency_s == pytest.approx((8.4 + 3 * 3.4) * US)
    assert simple.bandwidth_bytes_per_s == pytest.approx(100 * GB * 4 / 3)
    assert {c.algorithm for c in candidates("all_gather", shape, DEFAULT)} == {"ring"}


def test_pcie_has_no_ll128_and_pays_pcie_latencies():
    platform = load_platform("pcie-4x-l40s")
    shape = NcclModel(platform).shape(["gpu0", "gpu1", "gpu2", "gpu3"])
    assert (shape.intra, shape.nodes) == ("pcie", 1)
    assert shape.intra_bw == pytest.approx(32 * GB * 0.78)
    assert {c.protocol for c in candidates("all_reduce", shape, DEFAULT)} == {"LL", "Simple"}
    assert choice("all_reduce", shape, "ring", "LL").latency_s == pytest.approx((6.6 + 6 * 1.0) * US)


def test_send_recv_is_one_hop_ll_up_to_16_kib_then_simple():
    model = NcclModel(load_platform("dgx-h100"))
    bw = 450 * GB * 0.83  # the NVLink route's effective bandwidth
    small, large = model.plan("send_recv", ["gpu0", "gpu1"], 8192), model.plan("send_recv", ["gpu0", "gpu1"], 1e6)
    assert small.choice.protocol == "LL" and large.choice.protocol == "Simple"
    assert small.nccl_s == pytest.approx(7.2 * US + 8192 / (bw / 4))
    assert large.nccl_s == pytest.approx(11.8 * US + 1e6 / bw)
    assert large.time_s == pytest.approx(large.nccl_s)  # 11.8 us is above the route's 1.87 us
    inter = NcclModel(load_platform("2x-dgx-h100-ib")).plan("send_recv", ["n0.gpu0", "n1.gpu0"], 1e6)
    assert inter.nccl_s == pytest.approx(22.4 * US + 1e6 / (50 * GB * 0.8))  # net Simple, one NIC path


def test_send_recv_hands_its_buffered_bytes_off_faster():
    """The first p2p_buffer bytes leave at p2p_buffer_efficiency x the route, the rest at p2p_efficiency x it."""
    shape = CommShape(2, 2, "nvlink", math.inf, 2.5 * GB)
    params = parse_nccl({"p2p_buffer": {"net": "1 MB"}, "p2p_buffer_efficiency": {"net": 3.0},
                         "p2p_efficiency": {"net": 0.8}})
    lat = params.p2p_latency_s["net.Simple"]
    choice, seconds = predict("send_recv", shape, 4e6, params)
    assert choice.protocol == "Simple"
    assert seconds == pytest.approx(lat + 1e6 / (3.0 * 2.5 * GB) + 3e6 / (0.8 * 2.5 * GB))
    assert predict("send_recv", shape, 0.5e6, params)[1] == pytest.approx(lat + 0.5e6 / (3.0 * 2.5 * GB))
    # other link classes keep one bandwidth; the buffer changes the time, not NCCL's choice
    intra = CommShape(2, 1, "nvlink", 100 * GB, math.inf)
    nvlink_lat = params.p2p_latency_s["nvlink.Simple"]
    assert predict("send_recv", intra, 4e6, params)[1] == pytest.approx(nvlink_lat + 4e6 / (100 * GB))
    assert parse_nccl(nccl_to_dict(params)) == params


def test_nvls_only_where_the_platform_has_it_on_one_node_of_more_than_two():
    dgx = load_platform("dgx-h100")
    assert all(c.algorithm != "nvls" for c in candidates("all_reduce", NcclModel(dgx).shape(DGX8), DEFAULT))
    data = read_yaml(preset_path("dgx-h100"), "platform")
    nvls = platform_from_dict({**data, "collectives": {"nvls": True}})
    model = NcclModel(nvls)
    plan = model.plan("all_reduce", DGX8, 1e9)
    ring = choice("all_reduce", model.shape(DGX8), "ring", "Simple")
    assert plan.choice.algorithm == "nvls"
    assert plan.nccl_s == pytest.approx(23 * US + 1e9 / (1.29 * ring.bandwidth_bytes_per_s))
    assert model.plan("all_reduce", DGX8[:2], 1e9).choice.algorithm != "nvls"
    # a full mesh (MI300X's xGMI) has no switch to reduce in
    mesh = platform_from_dict({**read_yaml(preset_path("mi300x-8"), "platform"), "collectives": {"nvls": True}})
    assert not NcclModel(mesh).shape(DGX8).one_switch and model.shape(DGX8).one_switch
    assert NcclModel(mesh).plan("all_reduce", DGX8, 1e9).choice.algorithm == "ring"
    # no transfers: the engine waits its time
    r = hetsim.simulate(collective_graph("all_reduce", DGX8, 1e9), nvls, "eft", sim={"collective_algorithm": "nccl"})
    assert collective_seconds(r) == pytest.approx(plan.time_s, rel=1e-9) and not r.trace.transfers


# -- hops from the platform -----------------------------------------------------------------

def test_nodes_link_classes_and_bandwidths_come_from_the_routes():
    assert node_of("n1.hbm3") == "n1" and node_of("hbm3") == ""
    platform = load_platform("2x-dgx-h100-ib")
    memories = [platform.unit(u).memory for u in TWO_NODES]
    shape = comm_shape(platform, memories)
    assert (shape.ranks, shape.nodes, shape.intra) == (16, 2, "nvlink")
    assert shape.intra_bw == pytest.approx(450 * GB * 0.83)
    assert shape.inter_bw == pytest.approx(8 * 50 * GB * 0.8)  # every GPU's NIC, in parallel
    one_per_node = comm_shape(platform, ["n0.hbm0", "n1.hbm0"])
    assert one_per_node.inter_bw == pytest.approx(50 * GB * 0.8) and one_per_node.intra_bw == math.inf


def test_a_network_reached_only_through_host_memory_still_counts():
    ps = [{"name": "p0", "freq": "1 GHz", "voltage": "1 V", "static_power": "1 W", "dynamic_power": "1 W"}]
    memories = [{"name": n, "capacity": "1 GB", "bandwidth": "1 TB/s"} for n in ("a.hbm", "a.ddr", "b.hbm", "b.ddr")]
    units = [{"name": f"{n}.gpu", "kind": "gpu", "memory": f"{n}.hbm", "peak": {"fp16": "1 TFLOP/s"},
              "power_states": ps} for n in "ab"]
    links = [{"name": f"{n}.pcie", "a": f"{n}.hbm", "b": f"{n}.ddr", "bandwidth": "30 GB/s"} for n in "ab"]
    links += [{"name": f"{n}.nic", "a": f"{n}.ddr", "b": "net", "bandwidth": "10 GB/s"} for n in "ab"]
    platform = platform_from_dict({"name": "staged", "switches": ["net"], "memories": memories, "units": units,
                                   "links": links})
    shape = NcclModel(platform).shape(["a.gpu", "b.gpu"])
    assert (shape.nodes, shape.inter_bw) == (2, 10 * GB)


# -- the engine replays NCCL's choice -------------------------------------------------------

@pytest.mark.parametrize("contention", ["none", "fair"])
@pytest.mark.parametrize(("preset", "ranks", "kind"), [
    *[("dgx-h100", DGX8, k) for k in ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all")],
    ("2x-dgx-h100-ib", TWO_NODES, "all_reduce"), ("pcie-4x-l40s", ["gpu0", "gpu1", "gpu2", "gpu3"], "all_reduce")])
@pytest.mark.parametrize("nbytes", [4e3, 3e6, 1e9])
def test_a_lone_collective_takes_the_analytic_time_as_transfers(preset, ranks, kind, nbytes, contention):
    platform = load_platform(preset)
    g = collective_graph(kind, ranks, nbytes)
    runs = {mode: hetsim.simulate(g, platform, "eft", sim={"collective_algorithm": "nccl", "collective_mode": mode,
                                                            "contention": contention})
            for mode in ("transfers", "analytic")}
    expected = NcclModel(platform).time(kind, ranks, nbytes)
    assert collective_seconds(runs["transfers"]) == pytest.approx(expected, rel=1e-9)
    assert collective_seconds(runs["analytic"]) == pytest.approx(expected, rel=1e-9)
    assert runs["transfers"].trace.transfers and not runs["analytic"].trace.transfers


def test_steps_never_beat_the_links_so_tiny_collectives_pay_the_route_latency():
    model = NcclModel(load_platform("dgx-h100"))
    plan = model.plan("all_reduce", DGX8, 4e3)
    assert (plan.choice.algorithm, plan.choice.protocol) == ("ring", "LL")
    # LL: a quarter of 373.5 GB/s is above NCCL's 87.7 GB/s single-node cap
    assert plan.nccl_s == pytest.approx((6.6 + 14 * 0.6) * US + 4e3 / (87.7 * GB * 8 / 14))
    route = model.platform.route("hbm0", "hbm1")  # 1.87 us per step > NCCL's 15 us / 14 steps
    assert plan.time_s == pytest.approx(14 * route.time_s(4e3 / 8))
    assert all(step.wait_s == 0 for step in plan.steps)


def test_a_transfer_between_nodes_is_spread_over_the_nodes_nics():
    plan = NcclModel(load_platform("2x-dgx-h100-ib")).plan("all_reduce", TWO_NODES, 1e9)
    crossing = [t for t in plan.steps[0].transfers if (t[0] < 8) != (t[1] < 8)]
    assert len(crossing) == 16 and len({t[0] for t in crossing}) == 16  # 8 rank pairs each way
    assert plan.time_s == pytest.approx(plan.nccl_s)


def test_the_cost_model_and_the_options_know_nccl():
    platform = load_platform("dgx-h100")
    g = collective_graph("all_reduce", DGX8, 64e6)
    cost = CostModel(g, platform, "nccl")
    assert cost.time("c0@gpu3", "gpu3") == pytest.approx(NcclModel(platform).time("all_reduce", DGX8, 64e6))
    assert SimOptions(collective_algorithm="nccl").collective_algorithm == "nccl"
    with pytest.raises(ScenarioError, match=r"^sim.collective_algorithm: got 'nvls', expected one of ring, tree, nccl"):
        SimOptions(collective_algorithm="nvls")


# -- the platform's collectives: section --------------------------------------------------------

def test_defaults_are_nccl_2_20s_constants_and_round_trip():
    assert DEFAULT.base_latency_s["tree.LL128"] == pytest.approx(14.0 * US)
    assert DEFAULT.hw_latency_s["nvlink.nvls.Simple"] == pytest.approx(23 * US)
    assert DEFAULT.hw_latency_s["net.tree.Simple"] == pytest.approx(28 * US)
    assert DEFAULT.p2p_latency_s["net.LL"] == pytest.approx((6.6 + 2.7) * US)
    assert parse_nccl(nccl_to_dict(DEFAULT)) == DEFAULT
    fitted = parse_nccl({"bus_efficiency": {"nvlink": 0.55}, "ll128_max_bus_bw": "120 GB/s",
                         "sources": {"bus_efficiency": "fitted"}})
    assert parse_nccl(nccl_to_dict(fitted)) == fitted
    assert fitted.sources["bus_efficiency"] == "fitted"
    assert fitted.sources["hw_latency"] == DEFAULT.sources["hw_latency"]


@pytest.mark.parametrize(("data", "message"), [
    ({"latency": 1}, r"^collectives.latency: unknown field, expected one of "),
    ({"hw_latency": {"nvlink.ring.LL256": "1 us"}}, r"^collectives.hw_latency.nvlink.ring.LL256: unknown key, "),
    ({"bus_efficiency": {"net": 0}}, r"^collectives.bus_efficiency.net: got 0, expected a positive number$"),
    ({"bus_efficiency": {"net": True}}, r"^collectives.bus_efficiency.net: got True, expected a positive number$"),
    ({"base_latency": {"ring.LL": "fast"}}, r"^collectives.base_latency.ring.LL: got 'fast', expected a time "),
    ({"ll_max_bus_bw": ["1 GB/s"]}, r"^collectives.ll_max_bus_bw: got \['1 GB/s'\], expected 3 bandwidths"),
    ({"nvls": "yes"}, r"^collectives.nvls: got 'yes', expected true or false$"),
    ([1, 2], r"^collectives: got \[1, 2\], expected a mapping"),
])
def test_bad_collectives_sections_give_one_line(data, message):
    with pytest.raises(SpecError, match=message):
        parse_nccl(data)


def test_the_loader_reads_a_platforms_collectives_section():
    data = read_yaml(preset_path("dgx-h100"), "platform")
    platform = platform_from_dict({**data, "collectives": {"nvls": True, "bus_efficiency": {"nvlink": 0.9}}})
    assert platform.collectives.nvls and platform.collectives.bus_efficiency["nvlink"] == 0.9
    assert load_platform("dgx-h100").collectives is None
    with pytest.raises(SpecError, match=r"^platform.collectives.p2p_efficiency.pcie: got -1, expected a positive"):
        platform_from_dict({**data, "collectives": {"p2p_efficiency": {"pcie": -1}}})
