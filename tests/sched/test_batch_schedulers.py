"""MET, Min-Min, Max-Min, Sufferage and Random on hand-computable instances."""

from __future__ import annotations

import pytest

from hetsim.cost.model import CostModel
from hetsim.graph.instances import instance_graph
from hetsim.sched import check_schedule, get_scheduler
from hetsim.sim.engine import run
from hetsim.spec.abstract import abstract_platform

# three independent tasks on units A and B
THREE = {"units": ["A", "B"], "tasks": {"t1": [2, 4], "t2": [3, 1], "t3": [5, 6]}, "edges": []}


def schedule(name: str, data: dict = THREE, **options):
    graph, units = instance_graph(data)
    cost = CostModel(graph, abstract_platform(units))
    s = get_scheduler(name, options)(graph, cost)
    check_schedule(s, graph, cost)
    assert run(graph, s, cost).makespan_s == pytest.approx(s.makespan_s)
    return s


def test_minmin():
    # minimum finishes: t1 2 (A), t2 1 (B), t3 5 (A) -> t2 on B [0,1]; then t1 on A [0,2];
    # then t3 finishes at 7 on A (after t1) or on B (after t2): the tie goes to A
    s = schedule("minmin")
    assert dict(s.assignment) == {"t1": "A", "t2": "B", "t3": "A"} and s.makespan_s == 7.0


def test_maxmin():
    # the largest minimum finish is t3's 5 -> A [0,5]; then t1 on B [0,4] (4 < 7); then t2 on B [4,5]
    s = schedule("maxmin")
    assert dict(s.assignment) == {"t1": "B", "t2": "B", "t3": "A"} and s.makespan_s == 5.0


def test_sufferage():
    # sufferages: t1 4-2=2, t2 3-1=2, t3 6-5=1 -> t1 (first of the tie) on A [0,2]; then t2 (suffers 5-1=4)
    # on B [0,1]; then t3 finishes at 7 on either unit: A
    s = schedule("sufferage")
    assert dict(s.assignment) == {"t1": "A", "t2": "B", "t3": "A"} and s.makespan_s == 7.0


def test_met_ignores_load():
    # each task on its fastest unit: t1 A, t2 B, t3 A -> A runs t1 then t3: 2 + 5
    s = schedule("met")
    assert dict(s.assignment) == {"t1": "A", "t2": "B", "t3": "A"} and s.makespan_s == 7.0


def test_random_is_seeded():
    many = {"units": ["A", "B", "C"], "tasks": {str(i): [1, 1, 1] for i in range(30)}, "edges": []}
    a, b = schedule("random", many, seed=1), schedule("random", many, seed=1)
    assert a == b and set(a.assignment.values()) == {"A", "B", "C"}
    assert schedule("random", many, seed=2).assignment != a.assignment
