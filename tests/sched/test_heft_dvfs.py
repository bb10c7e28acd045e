"""Energy-aware scheduling: HEFT with DVFS slack reclamation, and EDP list scheduling, by hand."""

from __future__ import annotations

import pytest
from hetsim_testing import two_unit_dict

import hetsim
from hetsim.cost.model import CostModel
from hetsim.errors import ScheduleError
from hetsim.graph.schema import add_op, new_graph
from hetsim.sched import check_schedule, get_scheduler
from hetsim.spec.loader import platform_from_dict


def graph(kind: str):
    g = new_graph(kind)
    if kind == "compute":  # 2 GFLOP reading 1 kB: 2 s on u0 at 1 GHz, 4 s at 500 MHz
        add_op(g, "x", op="matmul", flop=2e9, bytes_read=1e3, dtype="fp32")
    else:  # 1 GB moved at 1 GB/s: 1 s at either clock
        add_op(g, "x", op="elementwise", flop=1e6, bytes_read=0.5e9, bytes_written=0.5e9, dtype="fp32")
    return g


@pytest.mark.parametrize(("kind", "stretch", "state"), [
    ("compute", 1.0, "p0"),  # no slack: the nominal state
    ("compute", 2.0, "p1"),  # 35 W x 4 s = 140 J < 100 W x 2 s + 10 W x 2 s idle = 220 J
    ("memory", 1.0, "p1"),   # the memory-bound op takes as long at half the clock, for less power
])
def test_slack_is_spent_on_a_lower_clock_by_hand(kind, stretch, state):
    g, platform = graph(kind), platform_from_dict(two_unit_dict())
    g.nodes["x"]["pin"] = "u0"
    cost = CostModel(g, platform)
    s = get_scheduler("heft_dvfs", {"stretch": stretch})(g, cost)
    check_schedule(s, g, cost)
    assert s.power_state.get("x") == state
    plain = hetsim.simulate(g, platform, "heft")
    r = hetsim.simulate(g, platform, s)
    assert r.makespan_s == pytest.approx(s.makespan_s) and r.makespan_s <= stretch * plain.makespan_s * (1 + 1e-9)
    if state != "p0":
        assert r.energy_j < plain.energy_j


def test_a_real_decode_step_saves_energy_at_the_same_deadline():
    g = hetsim.model_graph("llama-3-8b", phase="decode", batch=1, seq_len=2048)
    plain = hetsim.simulate(g, "h100-sxm", "heft", sim={"execution": "serving"})
    saved = hetsim.simulate(g, "h100-sxm", "heft_dvfs", sim={"execution": "serving"})
    assert saved.makespan_s <= plain.makespan_s * (1 + 1e-9)
    assert saved.energy_j < 0.995 * plain.energy_j  # memory-bound GEMVs run at a lower clock
    # a 5 % looser deadline lets more of them slow down (the kernel model stretches a GEMV's
    # tile-padded compute part a little at a lower clock, so a tight deadline leaves little room)
    looser = hetsim.simulate(g, "h100-sxm", "heft_dvfs", scheduler_options={"stretch": 1.05},
                             sim={"execution": "serving"})
    assert looser.makespan_s <= 1.05 * plain.makespan_s and looser.energy_j < 0.98 * plain.energy_j


def test_a_deadline_before_heft_is_refused():
    g, platform = graph("compute"), platform_from_dict(two_unit_dict())
    with pytest.raises(ScheduleError, match=r"^scheduler.options.deadline_s: got 0.1 s, expected at least HEFT"):
        get_scheduler("heft_dvfs", {"deadline_s": 0.1})(g, CostModel(g, platform))
    with pytest.raises(ScheduleError, match=r"^scheduler.options.stretch: got 0.5, expected a number >= 1$"):
        get_scheduler("heft_dvfs", {"stretch": 0.5})


@pytest.mark.parametrize(("kind", "unit", "state"), [
    # 2 GFLOP: u0 p0 200 J x 2 s, u0 p1 140 J x 4 s, u1 p0 100 J x 1 s (twice as fast) -> u1 at p0
    ("compute", "u1", "p0"),
    # 1 GB moved: 1 s on either unit and clock; the slow clock draws ~6 W instead of ~10 W -> p1,
    # on u1, whose faster pipes are busy a smaller share of that second (6.03 W against 6.06 W)
    ("memory", "u1", "p1"),
])
def test_edp_picks_the_unit_and_state_by_hand(kind, unit, state):
    g, platform = graph(kind), platform_from_dict(two_unit_dict())
    cost = CostModel(g, platform)
    s = get_scheduler("edp")(g, cost)
    check_schedule(s, g, cost)
    assert (s.assignment["x"], s.power_state["x"]) == (unit, state)
    assert hetsim.simulate(g, platform, s).makespan_s == pytest.approx(s.makespan_s)
