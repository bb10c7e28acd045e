"""PEFT, ETF, DLS and Lookahead-HEFT: validity on Topcuoglu et al. (2002) and decisions by hand."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsim.cost.model import CostModel
from hetsim.graph.instances import instance_graph, load_instance
from hetsim.sched import check_schedule, get_scheduler
from hetsim.sched.peft import optimistic_cost_table
from hetsim.sim.engine import run
from hetsim.spec.abstract import abstract_platform

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "scenarios/instances/topcuoglu2002.json"
NEW = ["dls", "etf", "lookahead", "peft"]


def _instance(data):
    graph, units = instance_graph(data)
    return graph, CostModel(graph, abstract_platform(units))


@pytest.fixture(scope="module")
def paper():
    graph, units = load_instance(PAPER)
    return graph, CostModel(graph, abstract_platform(units))


def _longest_fastest_chain(graph, cost):
    fastest = {op: min(cost.time(op, u) for u in cost.capable_units(op)) for op in graph}
    length: dict[str, float] = {}
    for op in nx.topological_sort(graph):
        length[op] = fastest[op] + max((length[p] for p in graph.predecessors(op)), default=0.0)
    return max(length.values())


@pytest.mark.parametrize("name", NEW)
def test_valid_on_the_paper_instance_and_reproduced_by_the_engine(paper, name):
    graph, cost = paper
    schedule = get_scheduler(name)(graph, cost)
    check_schedule(schedule, graph, cost)
    assert run(graph, schedule, cost).makespan_s == schedule.makespan_s
    assert schedule.makespan_s >= _longest_fastest_chain(graph, cost)
    assert get_scheduler(name)(graph, cost) == schedule


# A chain a -> b -> c on units A, B; each edge costs 10 across units (c̄ = 10: the only pairs are
# (A, B) and (B, A)). a is fastest on A, but b is far faster on B and the transfer is dear.
CHAIN = {"units": ["A", "B"], "tasks": {"a": [1, 2], "b": [5, 1], "c": [1, 1]},
         "edges": [["a", "b", 10], ["b", "c", 10]]}


def test_oct_of_a_chain_by_hand():
    # OCT(c, ·) = 0 (exit). OCT(b, A) = min(0 + 1 + 0 on A, 0 + 1 + 10 on B) = 1; OCT(b, B) =
    # min(0 + 1 + 10, 0 + 1 + 0) = 1. OCT(a, A) = min(1 + 5 + 0, 1 + 1 + 10) = 6;
    # OCT(a, B) = min(1 + 5 + 10, 1 + 1 + 0) = 2.
    graph, cost = _instance(CHAIN)
    assert optimistic_cost_table(graph, cost) == {"c": {"A": 0.0, "B": 0.0}, "b": {"A": 1.0, "B": 1.0},
                                                  "a": {"A": 6.0, "B": 2.0}}


def test_oct_of_exit_ops_is_zero(paper):
    graph, cost = paper
    table = optimistic_cost_table(graph, cost)
    assert table["10"] == {"P1": 0.0, "P2": 0.0, "P3": 0.0}
    # OCT(8, P1) = min(21 + 0 on P1, 7 + 11 on P2, 16 + 11 on P3) = 18 (task 10 is 8's only child)
    assert table["8"]["P1"] == 18.0


def test_peft_on_the_chain_by_hand():
    # a: O_EFT on A = 1 + 6 = 7, on B = 2 + 2 = 4 -> B [0, 2]. b: on A 2 + 10 + 5 = 17 (+1),
    # on B 3 (+1) -> B [2, 3]. c: on A 3 + 10 + 1 = 14, on B 4 -> B [3, 4]. Makespan 4.
    graph, cost = _instance(CHAIN)
    s = get_scheduler("peft")(graph, cost)
    assert dict(s.assignment) == {"a": "B", "b": "B", "c": "B"}
    assert s.makespan_s == 4.0


def test_lookahead_on_the_chain_by_hand():
    # HEFT puts a on A (finish 1) and follows it: b on A [1, 6], c on A [6, 7], makespan 7.
    # Lookahead: a on A lets child b finish at best at 6; a on B [0, 2] lets b finish at 3 -> B.
    # b on A would let c finish at 18, on B [2, 3] at 4 -> B. c on B [3, 4]. Makespan 4.
    graph, cost = _instance(CHAIN)
    assert get_scheduler("heft")(graph, cost).makespan_s == 7.0
    s = get_scheduler("lookahead")(graph, cost)
    assert dict(s.assignment) == {"a": "B", "b": "B", "c": "B"}
    assert (s.start["c"], s.makespan_s) == (3.0, 4.0)


# A fork a -> b (edge 1), a -> c (edge 5) on units A, B. Mean times: a 3, b 3, c 2.5.
FORK = {"units": ["A", "B"], "tasks": {"a": [2, 4], "b": [3, 3], "c": [4, 1]},
        "edges": [["a", "b", 1], ["a", "c", 5]]}


def test_etf_on_the_fork_by_hand():
    # Upward ranks: a 3 + max(1 + 3, 5 + 2.5) = 10.5, b 3, c 2.5.
    # a starts at 0 on A or B: tie, the first unit -> A [0, 2].
    # Ready b, c: b on A 2, b on B 3, c on A 2, c on B 7; b and c tie at 2 on A, b ranks higher
    # -> b on A [2, 5]. c: on A 5, on B 7 -> A [5, 9]. Makespan 9 (starting early is not finishing early).
    graph, cost = _instance(FORK)
    s = get_scheduler("etf")(graph, cost)
    assert dict(s.assignment) == {"a": "A", "b": "A", "c": "A"}
    assert s.makespan_s == 9.0


def test_dls_on_the_fork_by_hand():
    # Static levels: a 3 + 3 = 6, b 3, c 2.5. Δ: a (A 1, B -1), b (0, 0), c (A -1.5, B 1.5).
    # Step 1: DL(a, A) = 6 - 0 + 1 = 7 > DL(a, B) = 5 -> A [0, 2].
    # Step 2: DL(b, A) = 3 - 2 = 1, DL(b, B) = 3 - 3 = 0, DL(c, A) = 2.5 - 2 - 1.5 = -1,
    #         DL(c, B) = 2.5 - 7 + 1.5 = -3 -> b on A [2, 5].
    # Step 3: DL(c, A) = 2.5 - 5 - 1.5 = -4 < DL(c, B) = -3 -> B [7, 8]. Makespan 8.
    graph, cost = _instance(FORK)
    s = get_scheduler("dls")(graph, cost)
    assert dict(s.assignment) == {"a": "A", "b": "A", "c": "B"}
    assert (s.start["c"], s.makespan_s) == (7.0, 8.0)


def test_peft_on_the_fork_by_hand():
    # OCT(a, A) = max(b: min(3, 3 + 1), c: min(4, 1 + 5)) = 4; OCT(a, B) = max(min(3 + 1, 3),
    # min(4 + 5, 1)) = 3. a: O_EFT A 2 + 4 = 6 < B 4 + 3 = 7 -> A [0, 2]. b and c rank 0: graph
    # order. b: A 5, B 6 -> A [2, 5]. c: A [5, 9], B [7, 8] -> B. Makespan 8.
    graph, cost = _instance(FORK)
    assert optimistic_cost_table(graph, cost)["a"] == {"A": 4.0, "B": 3.0}
    s = get_scheduler("peft")(graph, cost)
    assert dict(s.assignment) == {"a": "A", "b": "A", "c": "B"}
    assert s.makespan_s == 8.0


@st.composite
def instances(draw):
    n, units = draw(st.integers(1, 9)), ["A", "B", "C"][: draw(st.integers(1, 3))]
    tasks = {str(i): [draw(st.integers(1, 20)) for _ in units] for i in range(n)}
    edges = [[str(i), str(j), draw(st.integers(0, 15))] for j in range(n) for i in range(j) if draw(st.booleans())]
    return {"units": units, "tasks": tasks, "edges": edges}


@settings(max_examples=40, deadline=None)
@given(instances(), st.sampled_from(NEW))
def test_valid_bounded_and_deterministic_on_random_instances(data, name):
    graph, cost = _instance(data)
    schedule = get_scheduler(name)(graph, cost)
    check_schedule(schedule, graph, cost)
    assert schedule.makespan_s >= _longest_fastest_chain(graph, cost) - 1e-9
    assert get_scheduler(name)(graph, cost) == schedule
    assert run(graph, schedule, cost).makespan_s == pytest.approx(schedule.makespan_s)
