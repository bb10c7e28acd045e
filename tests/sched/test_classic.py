"""Published results reproduced exactly: HEFT and CPOP on Topcuoglu et al. (TPDS 2002), Fig. 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsim.cost.model import CostModel
from hetsim.errors import GraphError
from hetsim.graph.instances import instance_graph, load_instance
from hetsim.sched import check_schedule, get_scheduler
from hetsim.sim.engine import run
from hetsim.spec.abstract import abstract_platform

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "scenarios/instances/topcuoglu2002.json"


@pytest.fixture(scope="module")
def paper():
    graph, units = load_instance(PAPER)
    return graph, CostModel(graph, abstract_platform(units))


@pytest.mark.parametrize(("name", "makespan"), [("heft", 80.0), ("cpop", 86.0)])
def test_the_papers_makespans(paper, name, makespan):
    graph, cost = paper
    schedule = get_scheduler(name)(graph, cost)
    check_schedule(schedule, graph, cost)
    assert schedule.makespan_s == makespan
    assert run(graph, schedule, cost).makespan_s == makespan  # the engine reproduces it exactly


def test_heft_places_every_task_as_in_the_paper(paper):
    graph, cost = paper
    s = get_scheduler("heft")(graph, cost)
    by_unit = {u: sorted(s.order[u], key=int) for u in s.order}
    assert by_unit == {"P1": ["2", "8"], "P2": ["4", "6", "9", "10"], "P3": ["1", "3", "5", "7"]}
    assert (s.start["1"], s.finish["1"], s.start["10"], s.finish["10"]) == (0.0, 9.0, 73.0, 80.0)


def test_cpop_keeps_the_critical_path_on_one_unit(paper):
    graph, cost = paper
    s = get_scheduler("cpop")(graph, cost)
    assert {s.assignment[t] for t in ("1", "2", "9", "10")} == {"P2"}  # the paper's critical path 1-2-9-10


@st.composite
def instances(draw):
    n, units = draw(st.integers(1, 10)), ["A", "B", "C"][: draw(st.integers(1, 3))]
    tasks = {str(i): [draw(st.integers(1, 20)) for _ in units] for i in range(n)}
    edges = [[str(i), str(j), draw(st.integers(0, 15))] for j in range(n) for i in range(j) if draw(st.booleans())]
    return {"units": units, "tasks": tasks, "edges": edges}


@settings(max_examples=60, deadline=None)
@given(instances(), st.sampled_from(["heft", "cpop", "eft", "round_robin", "single"]))
def test_valid_bounded_and_deterministic_on_random_instances(data, name):
    graph, units = instance_graph(data)
    cost = CostModel(graph, abstract_platform(units))
    schedule = get_scheduler(name)(graph, cost)
    check_schedule(schedule, graph, cost)
    # no schedule beats the longest chain of ops at their fastest, communication free
    fastest = {op: min(cost.time(op, u) for u in units) for op in graph}
    chain = max(sum(fastest[op] for op in path) for path in _paths(graph))
    assert schedule.makespan_s >= chain - 1e-9
    assert get_scheduler(name)(graph, cost) == schedule
    assert run(graph, schedule, cost).makespan_s == pytest.approx(schedule.makespan_s)


def _paths(graph):
    sources = [n for n in graph if graph.in_degree(n) == 0]
    sinks = [n for n in graph if graph.out_degree(n) == 0]
    for s in sources:
        for t in sinks:
            if s == t:
                yield [s]
            else:
                yield from nx.all_simple_paths(graph, s, t)


BAD = {
    "cycle": ({"units": ["P"], "tasks": {"a": [1], "b": [1]}, "edges": [["a", "b", 1], ["b", "a", 1]]},
              "got a cycle"),
    "missing cost": ({"units": ["P", "Q"], "tasks": {"a": [1]}, "edges": []},
                     r"instance.tasks.a: got \[1\], expected 2 costs"),
    "negative cost": ({"units": ["P"], "tasks": {"a": [-1]}, "edges": []}, r"instance.tasks.a\[0\]: got -1"),
    "unknown task": ({"units": ["P"], "tasks": {"a": [1]}, "edges": [["a", "z", 1]]}, "got task 'z'"),
    "no units": ({"tasks": {"a": [1]}}, "instance.units: got None"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_instances_give_one_line(case):
    data, message = BAD[case]
    with pytest.raises(GraphError, match=message):
        instance_graph(data)


def test_cli_prints_the_schedule_and_refuses_bad_instances(tmp_path):
    def hetsim(*args):
        return subprocess.run([sys.executable, "-m", "hetsim.cli", *args], capture_output=True, text=True, timeout=120)

    out = json.loads(hetsim("schedule", str(PAPER), "--scheduler", "heft", "--json").stdout)
    assert out["scheduler"] == "heft" and out["makespan"] == 80.0
    assert out["tasks"]["10"] == {"unit": "P2", "start": 73.0, "finish": 80.0}
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = hetsim("schedule", str(bad))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "is not valid JSON" in proc.stderr
    bad.write_text(json.dumps(BAD["cycle"][0]))
    proc = hetsim("schedule", str(bad))
    assert proc.returncode == 2 and "got a cycle" in proc.stderr and "Traceback" not in proc.stderr
