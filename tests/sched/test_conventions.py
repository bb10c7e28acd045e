"""Rank conventions by hand; MCT and fastest-unit decisions by hand."""

from __future__ import annotations

import statistics

import pytest
from hetsim_testing import two_unit_dict

from hetsim.cost.model import CostModel
from hetsim.errors import ScheduleError
from hetsim.graph.instances import instance_graph
from hetsim.graph.schema import add_op, new_graph
from hetsim.sched import get_scheduler
from hetsim.sched.ranks import CommWeights, downward_ranks, upward_ranks
from hetsim.spec.abstract import abstract_platform
from hetsim.spec.loader import load_platform, platform_from_dict

# a costs 1, 3, 8 on A, B, C; b costs 2 everywhere; the edge costs 6 across units
CHAIN = {"units": ["A", "B", "C"], "tasks": {"a": [1, 3, 8], "b": [2, 2, 2]}, "edges": [["a", "b", 6]]}


def _instance(data):
    graph, units = instance_graph(data)
    return graph, CostModel(graph, abstract_platform(units))


@pytest.mark.parametrize(("rank_cost", "rank_comm", "expected"), [
    ("mean", "mean", 4 + 6 + 2),      # w̄(a) = 12/3
    ("median", "mean", 3 + 6 + 2),
    ("best", "mean", 1 + 6 + 2),
    ("worst", "mean", 8 + 6 + 2),
    ("mean", "mean_all", 4 + 4 + 2),  # 6 on the 6 distinct of 9 ordered pairs
    ("mean", "best", 4 + 6 + 2),      # an instance's edge costs the same on every pair
    ("mean", "none", 4 + 0 + 2),
])
def test_rank_conventions_by_hand(rank_cost, rank_comm, expected):
    graph, cost = _instance(CHAIN)
    up = upward_ranks(graph, cost, rank_cost, rank_comm)
    assert up["a"] == pytest.approx(expected)
    assert up["b"] == 2.0
    down = downward_ranks(graph, cost, rank_cost, rank_comm)
    assert down["b"] == pytest.approx(expected - 2)


def test_comm_estimate_groups_unit_pairs_exactly():
    # dgx-h100: eight GPUs on NVSwitch plus host CPUs; byte edges see several route classes
    platform = load_platform("dgx-h100")
    g = new_graph("pair")
    add_op(g, "a", op="elementwise", flop=1e6, bytes_read=1e6, bytes_written=4e6, dtype="bf16")
    add_op(g, "b", op="elementwise", flop=1e6, bytes_read=4e6, bytes_written=4e6, dtype="bf16")
    g.add_edge("a", "b", bytes=4e6)
    cost = CostModel(g, platform)
    units = [u.name for u in platform.units]
    times = [cost.comm_time("a", "b", x, y) for x in units for y in units if x != y]
    assert CommWeights(cost, "mean")("a", "b") == pytest.approx(statistics.fmean(times))
    assert CommWeights(cost, "best")("a", "b") == pytest.approx(min(times))
    assert CommWeights(cost, "worst")("a", "b") == pytest.approx(max(times))
    assert CommWeights(cost, "mean_all")("a", "b") == pytest.approx(sum(times) / len(units) ** 2)


def test_conventions_change_heft_decisions():
    # f -> x, y -> j; x and y both run fastest on A and compete for it.
    # mean ranks tie (x: 6+1+1, y: 6+1+1) so x, inserted first, goes first; best ranks put y
    # first (x: 2+1+1 < y: 3+1+1).
    data = {"units": ["A", "B"],
            "tasks": {"f": [1, 1], "x": [2, 10], "y": [3, 9], "j": [1, 1]},
            "edges": [["f", "x", 1], ["f", "y", 1], ["x", "j", 1], ["y", "j", 1]]}
    graph, cost = _instance(data)
    assert get_scheduler("heft")(graph, cost).order["A"] == ("f", "x", "y", "j")
    assert get_scheduler("heft", {"rank_cost": "best"})(graph, cost).order["A"] == ("f", "y", "x", "j")


@pytest.mark.parametrize(("name", "options", "field"), [
    ("heft", {"rank_cost": "avg"}, "rank_cost"),
    ("cpop", {"rank_comm": "median"}, "rank_comm"),
    ("dls", {"rank_cost": 3}, "rank_cost"),
    ("peft", {"rank_comm": "sometimes"}, "rank_comm"),
])
def test_bad_conventions_give_one_line(name, options, field):
    with pytest.raises(ScheduleError, match=rf"^scheduler.options.{field}: got .*, expected one of") as err:
        get_scheduler(name, options)
    assert "\n" not in str(err.value)


def test_mct_takes_the_unit_that_completes_first_in_program_order():
    # both ops are faster on B, but the second completes first on A once B is busy
    graph, cost = _instance({"units": ["A", "B"], "tasks": {"p": [4, 3], "q": [5, 4]}, "edges": []})
    s = get_scheduler("mct")(graph, cost)
    assert dict(s.assignment) == {"p": "B", "q": "A"}  # q: A finishes at 5, B at 3 + 4 = 7
    assert s.makespan_s == 5.0 and s.scheduler == "mct"


def test_fastest_runs_everything_on_the_fastest_unit_and_takes_no_options():
    cm_graph = new_graph("three")
    for name, costs in (("a", (1.0, 3.0)), ("b", (5.0, 1.0)), ("c", (4.0, 1.5))):
        add_op(cm_graph, name, cost={"u0": costs[0], "u1": costs[1]})
    cm_graph.add_edge("a", "b", bytes=1e6)
    cost = CostModel(cm_graph, platform_from_dict(two_unit_dict()))
    s = get_scheduler("fastest")(cm_graph, cost)
    assert set(s.assignment.values()) == {"u1"} and s.makespan_s == 5.5  # u1: 3 + 1 + 1.5 < u0: 10
    with pytest.raises(ScheduleError, match="unknown option of 'fastest'"):
        get_scheduler("fastest", {"unit": "u0"})
