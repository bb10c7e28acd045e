"""Collectives: the alpha-beta formulas reproduced by the expanded steps, contention by hand,
deadlock detection and the schema's checks."""

from __future__ import annotations

import pytest
from hetsim_testing import collective_graph, power_states

import hetsim
from hetsim.cost.collectives import collective_steps, collective_time
from hetsim.cost.model import CostModel
from hetsim.errors import GraphError, ScheduleError
from hetsim.graph.schema import add_op, new_graph, validate_graph
from hetsim.sched import check_schedule
from hetsim.sched.schedule import Schedule
from hetsim.spec.loader import load_platform, platform_from_dict

GB = 1e9
KINDS = ["all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all"]


def route_figures(platform, a: str, b: str) -> tuple[float, float]:
    route = platform.route(platform.unit(a).memory, platform.unit(b).memory)
    return route.latency_s, route.bandwidth_bytes_per_s


@pytest.mark.parametrize("contention", ["none", "fair"])
@pytest.mark.parametrize("p", [2, 4, 8])
def test_ring_all_reduce_matches_the_alpha_beta_formula(p, contention):
    platform = load_platform("dgx-h100")
    ranks = [f"gpu{i}" for i in range(p)]
    n = 1 * GB
    r = hetsim.simulate(collective_graph("all_reduce", ranks, n), platform, "eft",
                        sim={"contention": contention, "collective_algorithm": "ring"})
    alpha, bandwidth = route_figures(platform, "gpu0", "gpu1")
    expected = 2 * (p - 1) * alpha + 2 * (p - 1) / p * n / bandwidth
    assert r.makespan_s == pytest.approx(expected, rel=0.01)
    assert len(r.trace.transfers) == 2 * (p - 1) * p  # p messages per step
    assert all(len(t.links) == 2 for t in r.trace.transfers)  # GPU -> NVSwitch -> GPU


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("algorithm", ["ring", "tree"])
def test_expanded_steps_take_the_analytic_time_without_contention(kind, algorithm):
    platform = load_platform("dgx-h100")
    ranks = [f"gpu{i}" for i in range(8)]
    g = collective_graph(kind, ranks, 256e6)
    sims = {mode: hetsim.simulate(g, platform, "eft", sim={"collective_algorithm": algorithm,
                                                            "collective_mode": mode})
            for mode in ("transfers", "analytic")}
    alpha, bandwidth = route_figures(platform, "gpu0", "gpu1")
    expected = collective_time(kind, algorithm, 8, 256e6, alpha, bandwidth)
    for mode, r in sims.items():  # every member runs the collective's time (the host may launch it late)
        assert [o.end_s - o.start_s for o in r.trace.ops] == pytest.approx([expected] * 8, rel=1e-9), mode
    assert not sims["analytic"].trace.transfers


def test_the_engine_refuses_options_asking_for_another_algorithm_than_the_cost_models():
    from hetsim.errors import ScenarioError
    from hetsim.sim.engine import SimOptions, run

    platform = load_platform("dgx-h100")
    g = collective_graph("all_reduce", ["gpu0", "gpu1"], 1e6)
    cost = CostModel(g, platform, "ring")
    from hetsim.sched import get_scheduler

    schedule = get_scheduler("eft")(g, cost)
    with pytest.raises(ScenarioError, match=r"^sim.collective_algorithm: got 'tree', expected the cost model's 'ring'"):
        run(g, schedule, cost, SimOptions(collective_algorithm="tree"))


def test_tree_all_reduce_is_rabenseifners():
    # 2 log2(p) latencies + the same 2 (p - 1)/p n/B as the ring
    assert collective_time("all_reduce", "tree", 8, 8e9, 1e-6, 1e9) == pytest.approx(6e-6 + 2 * 7 / 8 * 8)
    assert collective_time("all_reduce", "ring", 8, 8e9, 1e-6, 1e9) == pytest.approx(14e-6 + 2 * 7 / 8 * 8)
    # not a power of two: the ring
    assert collective_steps("all_reduce", "tree", 6, 1.0) == collective_steps("all_reduce", "ring", 6, 1.0)


def two_nodes() -> dict:
    """u0, u1 under switch s0; u2, u3 under s1; one 1 GB/s uplink s0-s1; every link 1 GB/s, no latency."""
    units = [{"name": f"u{i}", "kind": "gpu", "memory": f"m{i}", "peak": {"fp32": "1 TFLOP/s"},
              "power_states": power_states()} for i in range(4)]
    links = [{"name": f"l{i}", "a": f"m{i}", "b": "s0" if i < 2 else "s1", "bandwidth": "1 GB/s"} for i in range(4)]
    links.append({"name": "uplink", "a": "s0", "b": "s1", "bandwidth": "1 GB/s"})
    return {"name": "two-nodes", "switches": ["s0", "s1"], "units": units, "links": links,
            "memories": [{"name": f"m{i}", "capacity": "100 GB", "bandwidth": "100 GB/s"} for i in range(4)]}


def test_two_collectives_sharing_the_uplink_each_take_twice_as_long():
    # A = (u0, u2) and B = (u1, u3) both cross the uplink, both ways. Alone: 2 steps of 0.5 GB at
    # 1 GB/s = 1 s. Together under fair sharing each direction of the uplink carries two flows at
    # 0.5 GB/s: 2 steps of 1 s = 2 s each; without contention they ignore each other: 1 s.
    platform = platform_from_dict(two_nodes())
    both = collective_graph("all_reduce", ["u0", "u2"], GB, group="A")
    collective_graph("all_reduce", ["u1", "u3"], GB, group="B", g=both)
    alone = collective_graph("all_reduce", ["u0", "u2"], GB, group="A")
    ring = {"collective_algorithm": "ring"}  # the alpha-beta ring, whatever the default
    assert hetsim.simulate(alone, platform, "eft", sim={"contention": "fair", **ring}).makespan_s == pytest.approx(1.0)
    assert hetsim.simulate(both, platform, "eft", sim={"contention": "none", **ring}).makespan_s == pytest.approx(1.0)
    fair = hetsim.simulate(both, platform, "eft", sim={"contention": "fair", **ring})
    assert fair.makespan_s == pytest.approx(2.0)
    assert sorted(r.op for r in fair.trace.ops) == sorted(both)
    assert [r.end_s for r in fair.trace.ops] == pytest.approx([2.0] * 4)


def test_members_wait_for_each_other_and_pass_data_on():
    # u0 computes 1 s before its member, u2 3 s: the all-reduce starts at 3; a consumer on u0 follows
    platform = platform_from_dict(two_nodes())
    g = new_graph("wait")
    add_op(g, "work0", cost={"u0": 1.0}, pin="u0")
    add_op(g, "work2", cost={"u2": 3.0}, pin="u2")
    collective_graph("all_reduce", ["u0", "u2"], GB, group="A", g=g)
    add_op(g, "after", cost={"u0": 0.5}, pin="u0")
    g.add_edge("work0", "A@u0", bytes=GB)
    g.add_edge("work2", "A@u2", bytes=GB)
    g.add_edge("A@u0", "after", bytes=GB)
    r = hetsim.simulate(g, platform, "heft", sim={"collective_algorithm": "ring"})
    runs = {o.op: (o.unit, o.start_s, o.end_s) for o in r.trace.ops}
    assert runs["A@u0"] == ("u0", 3.0, pytest.approx(4.0)) and runs["A@u2"][1:] == (3.0, pytest.approx(4.0))
    assert runs["after"] == ("u0", pytest.approx(4.0), pytest.approx(4.5))


def test_opposite_orders_of_two_collectives_are_refused():
    platform = platform_from_dict(two_nodes())
    g = collective_graph("all_reduce", ["u0", "u1"], GB, group="A")
    collective_graph("all_reduce", ["u0", "u1"], GB, group="B", g=g)
    cost = CostModel(g, platform)
    bad = Schedule("x", {"A@u0": "u0", "B@u0": "u0", "A@u1": "u1", "B@u1": "u1"},
                   {"u0": ("A@u0", "B@u0"), "u1": ("B@u1", "A@u1")})
    with pytest.raises(ScheduleError, match=r"unit orders contradict precedence around op 'collective [AB]'"):
        check_schedule(bad, g, cost, check_times=False)


def test_pins_are_obeyed_and_checked():
    platform = platform_from_dict(two_nodes())
    g = new_graph("pinned")
    add_op(g, "x", op="matmul", flop=1e9, dtype="fp32", pin="u3")
    assert CostModel(g, platform).capable_units("x") == ["u3"]
    g.nodes["x"]["pin"] = "u9"
    with pytest.raises(ScheduleError, match=r"^op 'x'.pin: got 'u9', expected a unit of platform 'two-nodes'"):
        CostModel(g, platform)


@pytest.mark.parametrize(("change", "message"), [
    (lambda g: g.remove_node("c0@u1"), r"collective 'c0': members pinned to \['u0'\], expected one member on each"),
    (lambda g: g.nodes["c0@u1"].update(comm_bytes=5), r"op 'c0@u1'.comm_bytes: got 5, expected 1000000000.0"),
    (lambda g: g.nodes["c0@u1"].update(collective="gossip"), r"op 'c0@u1'.collective: got 'gossip', expected one"),
    (lambda g: g.nodes["c0@u1"].update(pin="u7"), r"op 'c0@u1'.pin: got 'u7', expected one of its ranks"),
    (lambda g: g.nodes["c0@u1"].update(ranks=("u0", "u0")), r"op 'c0@u1'.ranks: got \('u0', 'u0'\), expected a list"),
])
def test_malformed_collectives_give_one_line(change, message):
    g = collective_graph("all_reduce", ["u0", "u1"], GB)
    change(g)
    with pytest.raises(GraphError, match=message) as err:
        validate_graph(g)
    assert "\n" not in str(err.value)
