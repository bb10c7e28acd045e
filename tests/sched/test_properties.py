"""Hypothesis properties over every registered static scheduler on random classic instances.

(Online policies have theirs in tests/sim/test_online.py.)

Validity (the checker), no makespan below the critical-path lower bound (every op at its fastest,
communication free), determinism (same inputs and seed → same schedule), and the engine
reproducing the predicted makespan when nothing contends.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsim.cost.model import CostModel
from hetsim.graph.instances import instance_graph
from hetsim.sched import check_schedule, get_scheduler, list_schedulers
from hetsim.sched.bounds import cp_min, sequential_time
from hetsim.sched.online import is_online
from hetsim.sim.engine import run
from hetsim.spec.abstract import abstract_platform

STATIC = sorted(n for n in list_schedulers() if n != "exact" and not is_online(get_scheduler(n)))


@st.composite
def instances(draw, max_tasks: int = 10):
    n, units = draw(st.integers(1, max_tasks)), ["A", "B", "C"][: draw(st.integers(1, 3))]
    # zero costs included; names count down so that name order contradicts precedence
    tasks = {f"t{n - i}": [draw(st.integers(0, 20)) for _ in units] for i in range(n)}
    edges = [[f"t{n - i}", f"t{n - j}", draw(st.integers(0, 15))] for j in range(n) for i in range(j)
             if draw(st.booleans())]
    return {"units": units, "tasks": tasks, "edges": edges}


def _check(data, name, options=None):
    graph, units = instance_graph(data)
    cost = CostModel(graph, abstract_platform(units))
    schedule = get_scheduler(name, options)(graph, cost)
    check_schedule(schedule, graph, cost)
    assert schedule.makespan_s >= cp_min(graph, cost) - 1e-9
    assert get_scheduler(name, options)(graph, cost) == schedule
    assert run(graph, schedule, cost).makespan_s == pytest.approx(schedule.makespan_s, rel=1e-12)
    return graph, cost, schedule


@settings(max_examples=60, deadline=None)
@given(instances(), st.sampled_from(STATIC), st.integers(0, 2**32 - 1))
def test_every_scheduler_is_valid_bounded_and_deterministic(data, name, seed):
    _check(data, name, {"seed": seed} if name == "random" else None)


@settings(max_examples=12, deadline=None)
@given(instances(max_tasks=6))
def test_exact_is_valid_and_no_heuristic_beats_it(data):
    graph, cost, best = _check(data, "exact", {"time_limit_s": 20.0})
    assert best.makespan_s <= sequential_time(graph, cost) + 1e-9
    for name in ("heft", "cpop", "peft", "minmin"):
        assert get_scheduler(name)(graph, cost).makespan_s >= best.makespan_s - 1e-9


def test_zero_duration_ops_keep_precedence_on_a_unit():
    # both ops take no time on the one unit: the order must follow the edge, not the names
    data = {"units": ["A"], "tasks": {"z_producer": [0], "a_consumer": [0]}, "edges": [["z_producer", "a_consumer", 0]]}
    for name in STATIC:
        _, _, schedule = _check(data, name)
        assert schedule.order["A"] == ("z_producer", "a_consumer"), name
