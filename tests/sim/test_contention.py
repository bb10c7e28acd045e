"""``contention: fair``: max-min fair sharing of links and memories, by hand, and "the makespan can only grow"."""

from __future__ import annotations

import pytest
from hetsim_testing import power_states
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsim.cost.model import CostModel
from hetsim.graph.schema import add_op, new_graph
from hetsim.sched import check_schedule, from_assignment
from hetsim.sched.order import topological_order
from hetsim.sim.engine import SimOptions, run
from hetsim.sim.network import max_min_rates
from hetsim.spec.loader import platform_from_dict

GB = 1e9


def star(duplex: bool = True, share: bool = False) -> dict:
    """u0, u1, u2 in memories m0, m1, m2, each joined to one switch by a 1 GB/s link, no latency.

    With ``share``, u1 works in m0 too (m1 stays, unused).
    """
    units = [{"name": f"u{i}", "kind": "cpu", "memory": "m0" if share and i == 1 else f"m{i}",
              "peak": {"fp32": "1 GFLOP/s"}, "power_states": power_states()} for i in range(3)]
    return {"name": "star", "switches": ["sw"],
            "memories": [{"name": f"m{i}", "capacity": "100 GB", "bandwidth": "100 GB/s"} for i in range(3)],
            "units": units,
            "links": [{"name": f"l{i}", "a": f"m{i}", "b": "sw", "bandwidth": "1 GB/s", "duplex": duplex}
                      for i in range(3)]}


def fan_in(bytes_a: float, bytes_b: float):
    """a on u0 and b on u2 (1 s each) both send to c on u1 (1 s): two flows into link l1."""
    g = new_graph("fan-in")
    for op in "abc":
        add_op(g, op, cost={"u0": 1.0, "u1": 1.0, "u2": 1.0})
    g.add_edge("a", "c", bytes=bytes_a)
    g.add_edge("b", "c", bytes=bytes_b)
    return g, {"a": "u0", "b": "u2", "c": "u1"}


def simulate(g, spec, assignment, contention):
    platform = platform_from_dict(spec)
    cost = CostModel(g, platform)
    schedule = from_assignment("test", g, cost, assignment, topological_order(g))
    check_schedule(schedule, g, cost)
    return schedule, run(g, schedule, cost, SimOptions(contention=contention))


@pytest.mark.parametrize(("bytes_a", "bytes_b", "fair_arrival"), [
    # equal flows share l1 at 0.5 GB/s each: 1 GB takes 2 s instead of 1 s
    (1 * GB, 1 * GB, 3.0),
    # 0.5 GB finishes after 1 s at 0.5 GB/s (t = 2); the other 0.5 GB then gets all 1 GB/s: t = 2.5
    (1 * GB, 0.5 * GB, 2.5),
])
def test_two_flows_into_one_link_by_hand(bytes_a, bytes_b, fair_arrival):
    g, assignment = fan_in(bytes_a, bytes_b)
    schedule, none = simulate(g, star(), assignment, "none")
    _, fair = simulate(g, star(), assignment, "fair")
    assert none.makespan_s == pytest.approx(schedule.makespan_s) == pytest.approx(1 + 1 + 1)  # a, 1 GB at 1 GB/s, c
    assert fair.makespan_s == pytest.approx(fair_arrival + 1.0)
    assert fair.makespan_s - none.makespan_s == pytest.approx(fair_arrival - 2.0)
    assert max(t.end_s for t in fair.transfers) == pytest.approx(fair_arrival)


def test_fifo_serves_one_transfer_at_a_time_on_a_link():
    # the fan-in of two 1 GB tensors into l1: fair shares it (both land at 3), fifo serves the one
    # that asked first from 1 to 2, then the other from 2 to 3 (both ask at 1; the engine's event
    # order decides, the same on every run)
    g, assignment = fan_in(1 * GB, 1 * GB)
    _, fair = simulate(g, star(), assignment, "fair")
    _, fifo = simulate(g, star(), assignment, "fifo")
    assert sorted((t.src_op, t.end_s) for t in fair.transfers) == [("a", pytest.approx(3.0)), ("b", pytest.approx(3.0))]
    assert sorted(t.end_s for t in fifo.transfers) == pytest.approx([2.0, 3.0])
    assert fifo.makespan_s == pytest.approx(4.0)


def test_opposite_directions_of_a_duplex_link_do_not_contend_but_half_duplex_ones_do():
    # a on u0 sends to d on u1 while b on u1 sends to c on u0: l0 and l1 are used both ways
    g = new_graph("swap")
    for op in "abcd":
        add_op(g, op, cost={"u0": 1.0, "u1": 1.0, "u2": 1.0})
    g.add_edge("a", "d", bytes=GB)
    g.add_edge("b", "c", bytes=GB)
    assignment = {"a": "u0", "b": "u1", "c": "u0", "d": "u1"}
    assert simulate(g, star(duplex=True), assignment, "fair")[1].makespan_s == pytest.approx(3.0)
    assert simulate(g, star(duplex=False), assignment, "fair")[1].makespan_s == pytest.approx(4.0)


def test_max_min_rates_by_hand():
    # three flows on link x (cap 9); flow 2 also crosses y (cap 1): 2 gets 1, the others split 8
    cap = {("x", 1): 9.0, ("y", 1): 1.0}
    rates = max_min_rates([(0, (("x", 1),)), (1, (("x", 1),)), (2, (("x", 1), ("y", 1)))], cap)
    assert rates == {2: 1.0, 0: 4.0, 1: 4.0}


@st.composite
def cases(draw):
    n = draw(st.integers(1, 8))
    g = new_graph("random")
    for i in range(n):
        if draw(st.booleans()):
            add_op(g, f"t{i}", cost={f"u{k}": draw(st.floats(0.0, 3.0)) for k in range(3)})
        else:  # roofline ops, memory- or compute-bound, whose traffic may share a memory
            add_op(g, f"t{i}", op="elementwise", flop=draw(st.sampled_from([1e6, 1e9, 3e9])),
                   bytes_read=draw(st.sampled_from([0.0, 1e8, 2e9])), bytes_written=1e8, dtype="fp32")
    for j in range(n):
        for i in range(j):
            if draw(st.booleans()):
                g.add_edge(f"t{i}", f"t{j}", bytes=draw(st.sampled_from([0.0, 1e8, 5e8, 1e9, 3e9])))
    return g, {f"t{i}": draw(st.sampled_from(["u0", "u1", "u2"])) for i in range(n)}, draw(st.booleans())


@settings(max_examples=100, deadline=None)
@given(cases(), st.booleans(), st.sampled_from(["fair", "fifo"]))
def test_contention_can_only_lengthen_the_makespan(case, share, mode):
    g, assignment, duplex = case
    _, none = simulate(g, star(duplex, share), assignment, "none")
    _, fair = simulate(g, star(duplex, share), assignment, mode)
    assert fair.makespan_s >= none.makespan_s * (1 - 1e-12) - 1e-12
    starts = {r.op: r.start_s for r in none.ops}
    for r in fair.ops:  # with fixed unit orders every op can only start later, never earlier
        assert r.start_s >= starts[r.op] * (1 - 1e-12) - 1e-12
    assert simulate(g, star(duplex, share), assignment, mode)[1] == fair  # deterministic


# -- memories shared by co-running ops ----------------------------------------------------------
def shared_memory_pair(kinds: tuple[str, str]):
    """Two independent ops, one on u0 and one on u1, which share memory m0 (1 GB/s).

    ``memory``: 1 GB moved, 1 MFLOP — 1 s alone, memory-bound. ``compute``: 1 GFLOP (1 s on u0 at
    1 GFLOP/s, 0.5 s on u1) moving 0.1 GB — compute-bound, it asks for 0.1 (u0) or 0.2 GB/s (u1).
    """
    from hetsim_testing import two_unit_dict

    g = new_graph("pair")
    for i, kind in enumerate(kinds):
        if kind == "memory":
            add_op(g, f"op{i}", op="elementwise", flop=1e6, bytes_read=0.5e9, bytes_written=0.5e9, dtype="fp32")
        else:
            add_op(g, f"op{i}", op="matmul", flop=1e9, bytes_read=0.1e9, bytes_written=0.0, dtype="fp32")
    return g, {"op0": "u0", "op1": "u1"}, two_unit_dict(shared=True)


def durations(trace):
    return {r.op: r.end_s - r.start_s for r in trace.ops}


def test_two_memory_bound_ops_on_one_memory_each_take_twice_as_long():
    g, assignment, spec = shared_memory_pair(("memory", "memory"))
    _, none = simulate(g, spec, assignment, "none")
    _, fair = simulate(g, spec, assignment, "fair")
    assert durations(none) == pytest.approx({"op0": 1.0, "op1": 1.0})
    assert durations(fair) == pytest.approx({"op0": 2.0, "op1": 2.0})


def test_two_compute_bound_ops_on_one_memory_do_not_slow_each_other():
    g, assignment, spec = shared_memory_pair(("compute", "compute"))
    _, none = simulate(g, spec, assignment, "none")
    _, fair = simulate(g, spec, assignment, "fair")
    assert durations(none) == pytest.approx({"op0": 1.0, "op1": 0.5})
    assert durations(fair) == pytest.approx(durations(none))


def test_a_memory_bound_op_gets_what_a_compute_bound_one_leaves_by_hand():
    # op1 (compute, on u1) asks 0.2 GB/s for 0.5 s; op0 gets 0.8 GB/s meanwhile: 0.4 GB by t = 0.5,
    # then the whole 1 GB/s for the remaining 0.6 GB: done at 1.1 s
    g, assignment, spec = shared_memory_pair(("memory", "compute"))
    _, fair = simulate(g, spec, assignment, "fair")
    assert durations(fair) == pytest.approx({"op0": 1.1, "op1": 0.5})
