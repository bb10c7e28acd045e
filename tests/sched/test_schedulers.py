"""Every built-in scheduler gives a valid schedule; EFT decisions by hand; the registry."""

from __future__ import annotations

import pytest
from hetsim_testing import two_unit_dict

import hetsim
from hetsim.cost.model import CostModel
from hetsim.errors import ScheduleError
from hetsim.graph.schema import add_op, new_graph
from hetsim.sched import REGISTRY, check_schedule, get_scheduler, list_schedulers
from hetsim.sched.online import is_online
from hetsim.sched.registry import Registry
from hetsim.sim.engine import run
from hetsim.spec.loader import platform_from_dict


def fork_join(width: int = 4):
    g = new_graph("fork-join")
    add_op(g, "fork", cost={"u0": 1.0, "u1": 2.0})
    add_op(g, "join", cost={"u0": 1.0, "u1": 2.0})
    for i in range(width):
        add_op(g, f"w{i}", cost={"u0": 2.0 + i, "u1": 3.0})
        g.add_edge("fork", f"w{i}", bytes=1e6)
        g.add_edge(f"w{i}", "join", bytes=1e6)
    return g


def roofline_graph():
    g = new_graph("mixed")
    add_op(g, "mm", op="matmul", flop=1e9, bytes_read=1e6, dtype="fp32")
    add_op(g, "v", op="view")
    add_op(g, "ew", op="elementwise", flop=1e5, bytes_read=1e6, bytes_written=1e6, dtype="fp32")
    g.add_edge("mm", "v", bytes=1e6)
    g.add_edge("v", "ew", bytes=1e6)
    return g


@pytest.mark.parametrize("name", sorted(list_schedulers()))
@pytest.mark.parametrize("make_graph", [fork_join, roofline_graph])
@pytest.mark.parametrize("shared", [False, True])
def test_every_scheduler_passes_the_checker_and_the_engine_agrees(name, make_graph, shared):
    g = make_graph()
    platform = platform_from_dict(two_unit_dict(shared=shared))
    cm = CostModel(g, platform)
    policy = get_scheduler(name)
    if is_online(policy):  # decides during the run: check what it did
        result = hetsim.simulate(g, platform, name)
        check_schedule(result.schedule, g, cm, check_times=False)
        assert result.makespan_s == pytest.approx(max(r.end_s for r in result.trace.ops))
        return
    schedule = policy(g, cm)
    check_schedule(schedule, g, cm)
    assert run(g, schedule, cm).makespan_s == pytest.approx(schedule.makespan_s, rel=1e-12)


def test_eft_by_hand(two_units):
    # fork: u0 finishes at 1. Each worker picks the unit where it finishes first, in order:
    # w0 u0 [1,3]; w1 u1 [1.002,4.002] (u0 would end at 6); w2 u0 [3,7]; w3 u1 [4.002,7.002];
    # join on u0 after w3's tensor crosses the link: 7.002 + 0.002 = 7.004 -> 8.004.
    g = fork_join()
    cm = CostModel(g, two_units)
    s = get_scheduler("eft")(g, cm)
    assert dict(s.assignment) == {"fork": "u0", "w0": "u0", "w1": "u1", "w2": "u0", "w3": "u1", "join": "u0"}
    assert s.makespan_s == pytest.approx(8.004)


def test_single_picks_the_fastest_capable_unit_or_the_one_asked(two_units):
    g = fork_join()
    cm = CostModel(g, two_units)
    assert set(get_scheduler("single")(g, cm).assignment.values()) == {"u0"}  # 2+14 < 4+12? 16 vs 16 -> first
    assert set(get_scheduler("single", {"unit": "u1"})(g, cm).assignment.values()) == {"u1"}
    with pytest.raises(ScheduleError, match=r"scheduler.options.unit: got 'gpu9'"):
        get_scheduler("single", {"unit": "gpu9"})(g, cm)


def test_round_robin_alternates_units(two_units):
    g = fork_join()
    s = get_scheduler("round_robin")(g, CostModel(g, two_units))
    assert [s.assignment[op] for op in ("fork", "w0", "w1", "w2", "w3", "join")] == ["u0", "u1"] * 3


def test_op_no_unit_can_run_is_a_clear_error(two_units):
    g = new_graph("npu-only")
    add_op(g, "x", cost={"npu": 1.0})
    with pytest.raises(ScheduleError, match=r"op 'x': no unit of platform 'two' can run"):
        CostModel(g, two_units)


def test_registry_refuses_duplicates_and_unknown_names():
    assert {"eft", "single", "round_robin"} <= set(list_schedulers())
    with pytest.raises(ValueError, match="already registered"):
        REGISTRY.register(type("Dup", (), {"name": "eft"}))
    with pytest.raises(ScheduleError, match=r"scheduler: got 'nope', expected one of"):
        get_scheduler("nope")
    with pytest.raises(ScheduleError, match=r"scheduler.options.depth: unknown option of 'eft'"):
        get_scheduler("eft", {"depth": 2})
    assert Registry().names() == []
