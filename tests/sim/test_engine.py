"""Hand-computable engine cases, the schedule == simulation identity, memory and determinism."""

from __future__ import annotations

import networkx as nx
import pytest
from hetsim_testing import two_unit_dict
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsim.cost.model import CostModel
from hetsim.errors import OutOfMemoryError, ScheduleError
from hetsim.graph.schema import add_op, new_graph
from hetsim.sched import check_schedule, from_assignment, get_scheduler
from hetsim.sched.order import topological_order
from hetsim.sim.engine import SimOptions, run
from hetsim.spec.loader import platform_from_dict


def chain(costs: list[dict], nbytes: float = 0.0) -> nx.DiGraph:
    g = new_graph("chain")
    for i, c in enumerate(costs):
        add_op(g, f"op{i}", cost=c)
        if i:
            g.add_edge(f"op{i - 1}", f"op{i}", bytes=nbytes)
    return g


def simulate_assigned(g, platform, assignment):
    cm = CostModel(g, platform)
    schedule = from_assignment("test", g, cm, assignment, topological_order(g))
    check_schedule(schedule, g, cm)
    return schedule, run(g, schedule, cm)


def test_chain_on_one_unit_takes_the_sum_of_costs(two_units):
    g = chain([{"u0": 1.5, "u1": 9.0}, {"u0": 2.0, "u1": 9.0}, {"u0": 0.25, "u1": 9.0}])
    trace = run(g, get_scheduler("single", {"unit": "u0"})(g, CostModel(g, two_units)), CostModel(g, two_units))
    assert trace.makespan_s == pytest.approx(3.75)
    assert [(r.op, r.start_s, r.end_s) for r in trace.ops] == [("op0", 0.0, 1.5), ("op1", 1.5, 3.5),
                                                              ("op2", 3.5, 3.75)]


def test_independent_ops_on_two_units_take_the_max(two_units):
    g = new_graph("pair")
    add_op(g, "a", cost={"u0": 3.0, "u1": 3.0})
    add_op(g, "b", cost={"u0": 5.0, "u1": 5.0})
    _, trace = simulate_assigned(g, two_units, {"a": "u0", "b": "u1"})
    assert trace.makespan_s == pytest.approx(5.0)
    assert trace.transfers == ()


def test_one_transfer_costs_latency_plus_bytes_over_bandwidth(two_units):
    g = chain([{"u0": 1.0, "u1": 1.0}, {"u0": 2.0, "u1": 2.0}], nbytes=4e6)
    _, trace = simulate_assigned(g, two_units, {"op0": "u0", "op1": "u1"})
    (transfer,) = trace.transfers
    assert transfer.duration_s == pytest.approx(1e-3 + 4e6 / 1e9)
    assert transfer.links == ("l01",) and (transfer.src_memory, transfer.dst_memory) == ("m0", "m1")
    assert trace.makespan_s == pytest.approx(1.0 + 0.005 + 2.0)


def test_units_sharing_memory_need_no_transfer(shared_units):
    g = chain([{"u0": 1.0, "u1": 1.0}, {"u0": 2.0, "u1": 2.0}], nbytes=4e6)
    _, trace = simulate_assigned(g, shared_units, {"op0": "u0", "op1": "u1"})
    assert trace.transfers == () and trace.makespan_s == pytest.approx(3.0)


def test_one_transfer_serves_every_consumer_in_the_destination_memory(two_units):
    g = new_graph("fan")
    for name in ("src", "x", "y"):
        add_op(g, name, cost={"u0": 1.0, "u1": 1.0})
    g.add_edge("src", "x", bytes=1e6)
    g.add_edge("src", "y", bytes=1e6)
    _, trace = simulate_assigned(g, two_units, {"src": "u0", "x": "u1", "y": "u1"})
    assert len(trace.transfers) == 1
    assert trace.makespan_s == pytest.approx(1.0 + 0.002 + 2.0)


def test_roofline_op_time_on_the_platform(two_units):
    g = new_graph("roofline")
    add_op(g, "mm", op="matmul", flop=4e9, bytes_read=1e9, dtype="fp32")  # u1: compute 2 s, memory 1 s
    trace = run(g, get_scheduler("eft")(g, CostModel(g, two_units)), CostModel(g, two_units))
    assert trace.ops[0].unit == "u1" and trace.makespan_s == pytest.approx(2.0)


def test_power_state_scales_compute_time_only(two_units):
    g = new_graph("dvfs")
    add_op(g, "mm", op="matmul", flop=2e9, dtype="fp32")
    add_op(g, "copy", op="copy", bytes_read=1e9, bytes_written=1e9)
    cm = CostModel(g, two_units)
    assert cm.op_cost_at("mm", "u0", "p1").total_s == pytest.approx(2 * cm.time("mm", "u0"))
    assert cm.op_cost_at("copy", "u0", "p1").total_s == pytest.approx(cm.time("copy", "u0"))


def test_memory_peak_is_weights_plus_live_activations(two_units):
    g = new_graph("mem")
    for i, w in enumerate([{"w0": 1000}, {}, {"w0": 1000, "w2": 500}]):
        add_op(g, f"op{i}", cost={"u0": 1.0, "u1": 1.0}, bytes_written=100, weights=w)
        if i:
            g.add_edge(f"op{i - 1}", f"op{i}", bytes=100)
    _, trace = simulate_assigned(g, two_units, dict.fromkeys(g, "u0"))
    used = [(s.time_s, s.used_bytes) for s in trace.memory if s.memory == "m0"]
    assert max(b for _, b in used) == 1500 + 200  # shared weight w0 counted once
    assert used[-1] == (3.0, 1500 + 100)  # op2's output is a graph output and stays


def test_out_of_memory_names_memory_op_and_bytes():
    platform = platform_from_dict(two_unit_dict(capacity="1 kB"))
    g = chain([{"u0": 1.0, "u1": 1.0}] * 2)
    g.nodes["op1"]["bytes_written"] = 2000
    cm = CostModel(g, platform)
    with pytest.raises(OutOfMemoryError, match=r"memory 'm0': op 'op1' needs 2000 more bytes"):
        run(g, from_assignment("t", g, cm, dict.fromkeys(g, "u0"), ["op0", "op1"]), cm)
    trace = run(g, from_assignment("t", g, cm, dict.fromkeys(g, "u0"), ["op0", "op1"]), cm,
                SimOptions(track_memory=False))
    assert trace.makespan_s == 2.0


def test_contradictory_unit_order_is_refused(two_units):
    g = chain([{"u0": 1.0, "u1": 1.0}] * 2)
    cm = CostModel(g, two_units)
    good = from_assignment("t", g, cm, dict.fromkeys(g, "u0"), ["op0", "op1"])
    from hetsim.sched.schedule import Schedule

    bad = Schedule("t", good.assignment, {"u0": ("op1", "op0")})
    with pytest.raises(ScheduleError, match="contradict precedence"):
        check_schedule(bad, g, cm)


def test_unknown_contention_mode_is_a_clear_error():
    with pytest.raises(ValueError, match=r"sim.contention: got 'psychic'"):
        SimOptions(contention="psychic")


@st.composite
def dags(draw):
    n = draw(st.integers(1, 12))
    g = new_graph("random")
    for i in range(n):
        add_op(g, f"t{i}", cost={"u0": draw(st.floats(0, 5)), "u1": draw(st.floats(0, 5))})
    for j in range(n):
        for i in range(j):
            if draw(st.booleans()):
                g.add_edge(f"t{i}", f"t{j}", bytes=draw(st.floats(0, 1e7)))
    assignment = {f"t{i}": draw(st.sampled_from(["u0", "u1"])) for i in range(n)}
    return g, assignment


@settings(max_examples=60, deadline=None)
@given(dags())
def test_simulation_reproduces_the_predicted_schedule_without_contention(case):
    g, assignment = case
    platform = platform_from_dict(two_unit_dict())
    schedule, trace = simulate_assigned(g, platform, assignment)
    assert trace.makespan_s == pytest.approx(schedule.makespan_s, rel=1e-12, abs=1e-12)
    for r in trace.ops:
        assert r.start_s == pytest.approx(schedule.start[r.op], rel=1e-12, abs=1e-12)
    again = run(g, schedule, CostModel(g, platform))
    assert again == trace  # deterministic


def test_power_steps_with_each_op_and_energy_integrates_it(two_units):
    from hetsim.report.metrics import energy_j, unit_energy_j

    g = new_graph("pair")
    add_op(g, "a1", cost={"u0": 1.0, "u1": 1.0})
    add_op(g, "a2", cost={"u0": 0.5, "u1": 1.0})
    add_op(g, "b", cost={"u0": 2.0, "u1": 2.0})
    g.add_edge("a1", "a2", bytes=0)
    _, trace = simulate_assigned(g, two_units, {"a1": "u0", "a2": "u0", "b": "u1"})
    # explicit costs count as fully busy: 10 W static + 90 W dynamic; back-to-back ops merge
    assert [(s.time_s, s.unit, s.power_w) for s in trace.power] == [
        (0.0, "u0", 100.0), (0.0, "u1", 100.0), (1.5, "u0", 10.0), (2.0, "u1", 10.0)]
    assert unit_energy_j(trace, two_units) == pytest.approx({"u0": 155.0, "u1": 200.0})
    assert energy_j(trace, two_units) == pytest.approx(355.0)
