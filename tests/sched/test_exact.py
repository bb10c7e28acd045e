"""The exact scheduler proves the optimum of Topcuoglu et al.'s example, 73, and never loses to HEFT."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsim.cost.model import CostModel
from hetsim.graph.instances import instance_graph, load_instance
from hetsim.sched import check_schedule, get_scheduler
from hetsim.spec.abstract import abstract_platform

pytest.importorskip("ortools")
PAPER = Path(__file__).resolve().parents[2] / "scenarios/instances/topcuoglu2002.json"


def test_proves_the_papers_optimum():
    graph, units = load_instance(PAPER)
    cost = CostModel(graph, abstract_platform(units))
    exact = get_scheduler("exact")
    schedule = exact(graph, cost)
    check_schedule(schedule, graph, cost)
    assert schedule.makespan_s == 73.0 and exact.last_status == "optimal"


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 7), st.integers(1, 3), st.data())
def test_never_worse_than_heft(n, n_units, data):
    units = ["A", "B", "C"][:n_units]
    tasks = {str(i): [data.draw(st.integers(1, 9)) for _ in units] for i in range(n)}
    edges = [[str(i), str(j), data.draw(st.integers(0, 9))] for j in range(n) for i in range(j)
             if data.draw(st.booleans())]
    graph, names = instance_graph({"units": units, "tasks": tasks, "edges": edges})
    cost = CostModel(graph, abstract_platform(names))
    exact = get_scheduler("exact", {"time_limit_s": 10.0})(graph, cost)
    check_schedule(exact, graph, cost)
    assert exact.makespan_s <= get_scheduler("heft")(graph, cost).makespan_s + 1e-9


def test_a_seven_task_instance_hypothesis_found():
    # optional intervals of different sizes sharing one end variable made CP-SAT 9.15 "prove" 5
    units = ["A", "B"]
    tasks = {"0": [1, 1], "1": [1, 1], "2": [1, 1], "3": [1, 1], "4": [1, 2], "5": [3, 1], "6": [3, 1]}
    graph, names = instance_graph({"units": units, "tasks": tasks,
                                   "edges": [["3", "4", 0], ["4", "5", 0], ["4", "6", 0]]})
    cost = CostModel(graph, abstract_platform(names))
    assert get_scheduler("exact")(graph, cost).makespan_s == 4.0 == get_scheduler("heft")(graph, cost).makespan_s
