"""Online policies in the engine: decisions by hand, a generic validity check, misbehaving policies."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar

import pytest
from hetsim_testing import power_states
from hypothesis import given, settings
from hypothesis import strategies as st

import hetsim
from hetsim.cost.model import CostModel
from hetsim.errors import ScheduleError, SimulationError
from hetsim.graph.instances import instance_graph
from hetsim.graph.schema import add_op, new_graph
from hetsim.sched import get_scheduler, list_schedulers
from hetsim.sched.bounds import cp_min
from hetsim.sched.online import OnlinePolicy, is_online
from hetsim.sim.online import run_online
from hetsim.spec.abstract import abstract_platform
from hetsim.spec.loader import platform_from_dict

ONLINE = sorted(n for n in list_schedulers() if is_online(get_scheduler(n)))
WORKERS = ["w0", "w1", "w2", "w3"]
FORK_JOIN = {"units": ["A", "B"],
             "tasks": {"f": [1, 1], **{w: [2, 2] for w in WORKERS}, "j": [1, 1]},
             "edges": [["f", w, 1] for w in WORKERS] + [[w, "j", 1] for w in WORKERS]}


def _run(data, policy, **options):
    graph, units = instance_graph(data)
    return hetsim.simulate(graph, abstract_platform(units), policy, scheduler_options=options or None)


def _timeline(result):
    return [(r.op, r.unit, r.start_s, r.end_s) for r in result.trace.ops]


def test_the_three_policies_are_registered_as_online():
    assert ONLINE == ["dmda", "online_eft", "work_stealing"]


def test_work_stealing_by_hand():
    # f on A (both idle: the first unit). A released w0..w3, so they queue on A. B, idle, steals
    # the last one (w3), whose input crosses in 1: B runs it [2, 4]. At 4 B steals w2 (A is
    # running w1): input at 5, [5, 7]. j is released by B (w2 finished last); three inputs cross.
    r = _run(FORK_JOIN, "work_stealing")
    assert _timeline(r) == [("f", "A", 0.0, 1.0), ("w0", "A", 1.0, 3.0), ("w3", "B", 2.0, 4.0),
                            ("w1", "A", 3.0, 5.0), ("w2", "B", 5.0, 7.0), ("j", "B", 8.0, 9.0)]
    assert r.makespan_s == 9.0


def test_online_eft_by_hand():
    # at 1 the workers go, by rank then graph order, where they finish first with queues counted:
    # w0 A 3, w1 B 1+1+2 = 4, w2 A 5, w3 B 6; j on A: w1 and w3 cross, 6 + 1 -> [7, 8]
    r = _run(FORK_JOIN, "online_eft")
    assert [(op, unit) for op, unit, _, _ in _timeline(r)] == [
        ("f", "A"), ("w0", "A"), ("w1", "B"), ("w2", "A"), ("w3", "B"), ("j", "A")]
    assert r.makespan_s == 8.0
    assert r.schedule.scheduler == "online_eft" and r.scheduler_time_s > 0


def two_power_units() -> dict:
    """u0: 1 GFLOP/s at 100 W busy; u1: 2 GFLOP/s at 1000 W busy; separate memories."""
    hot = [{"name": "p0", "freq": "1 GHz", "voltage": "1 V", "static_power": "100 W", "dynamic_power": "900 W"}]
    return {"name": "hot-cold",
            "memories": [{"name": "m0", "capacity": "1 GB", "bandwidth": "1 GB/s"},
                         {"name": "m1", "capacity": "1 GB", "bandwidth": "1 GB/s"}],
            "units": [{"name": "u0", "kind": "cpu", "memory": "m0", "peak": {"fp32": "1 GFLOP/s"},
                       "power_states": power_states()},
                      {"name": "u1", "kind": "gpu", "memory": "m1", "peak": {"fp32": "2 GFLOP/s"},
                       "power_states": hot}],
            "links": [{"name": "l", "a": "m0", "b": "m1", "bandwidth": "1 GB/s"}]}


@pytest.mark.parametrize(("gamma", "unit"), [
    (0.0, "u1"),    # finish 0.6 s on u1 vs 1 s on u0
    (1e-3, "u0"),   # u0: 0.4 s late + 100 J x 1e-3 = 0.5; u1: 600 J x 1e-3 = 0.6
    (7e-4, "u1"),   # u0: 0.4 + 0.07 = 0.47 > u1: 0.42
])
def test_dmda_trades_finish_time_for_energy_by_hand(gamma, unit):
    g = new_graph("one")
    add_op(g, "x", cost={"u0": 1.0, "u1": 0.6})
    r = hetsim.simulate(g, platform_from_dict(two_power_units()), "dmda", scheduler_options={"gamma_s_per_j": gamma})
    assert r.schedule.assignment["x"] == unit


def test_dmda_options_are_checked():
    with pytest.raises(ScheduleError, match=r"^scheduler.options.beta: got -1, expected a number >= 0$"):
        get_scheduler("dmda", {"beta": -1})


def test_a_chain_runs_as_under_static_eft():
    g = new_graph("chain")
    for i in range(6):
        add_op(g, f"op{i}", op="matmul", flop=1e9 * (i + 1), bytes_read=1e6, bytes_written=4e6, dtype="fp32")
        if i:
            g.add_edge(f"op{i - 1}", f"op{i}", bytes=4e6)
    platform = platform_from_dict(two_power_units())
    static = hetsim.simulate(g, platform, "eft")
    for name, options in (("online_eft", None), ("dmda", {"gamma_s_per_j": 0.0})):
        online = hetsim.simulate(g, platform, name, scheduler_options=options)
        assert online.makespan_s == pytest.approx(static.makespan_s)


def check_trace(result, graph, cost):
    """Every op ran once, on a capable unit, after its inputs arrived, without overlap per unit."""
    runs = {r.op: r for r in result.trace.ops}
    assert set(runs) == set(graph)
    for op, r in runs.items():
        assert r.end_s - r.start_s == pytest.approx(cost.time(op, r.unit))
        for pred in graph.predecessors(op):
            arrival = runs[pred].end_s + cost.comm_time(pred, op, runs[pred].unit, r.unit)
            assert r.start_s >= arrival - 1e-9
    for unit in {r.unit for r in runs.values()}:
        mine = sorted((r.start_s, r.end_s) for r in runs.values() if r.unit == unit)
        assert all(a[1] <= b[0] + 1e-9 for a, b in itertools.pairwise(mine))


@st.composite
def instances(draw):
    n, units = draw(st.integers(1, 10)), ["A", "B", "C"][: draw(st.integers(1, 3))]
    tasks = {f"t{i}": [draw(st.integers(1, 20)) for _ in units] for i in range(n)}
    edges = [[f"t{i}", f"t{j}", draw(st.integers(0, 15))] for j in range(n) for i in range(j) if draw(st.booleans())]
    return {"units": units, "tasks": tasks, "edges": edges}


@settings(max_examples=60, deadline=None)
@given(instances(), st.sampled_from(ONLINE), st.booleans())
def test_online_policies_are_valid_bounded_and_deterministic(data, name, faster):
    graph, units = instance_graph(data)
    platform = abstract_platform(units)
    cost = CostModel(graph, platform)
    options = {"steal_if_faster": faster} if name == "work_stealing" else None
    result = hetsim.simulate(graph, platform, name, scheduler_options=options)
    check_trace(result, graph, cost)
    assert result.makespan_s >= cp_min(graph, cost) - 1e-9
    again = hetsim.simulate(graph, platform, name, scheduler_options=options)
    assert again.trace == result.trace


@dataclass
class Recorder(OnlinePolicy):
    """Queues everything on the last unit; records what it was shown."""

    name: ClassVar[str] = "recorder"
    seen: list = None

    def on_ready(self, snapshot, ops):
        self.seen = (self.seen or []) + [(snapshot.now_s, ops, dict(snapshot.placed), snapshot.pool)]
        return dict.fromkeys(ops, "B")


def test_policies_see_a_read_only_snapshot():
    graph, units = instance_graph(FORK_JOIN)
    policy = Recorder()
    trace, schedule, _ = run_online(graph, policy, CostModel(graph, abstract_platform(units)))
    assert set(schedule.assignment.values()) == {"B"} and trace.makespan_s == 1 + 8 + 1
    assert policy.seen[0] == (0.0, ("f",), {}, ("f",))
    assert policy.seen[1] == (1.0, tuple(WORKERS), {"f": "B"}, tuple(WORKERS))

    @dataclass
    class Meddler(OnlinePolicy):
        name: ClassVar[str] = "meddler"

        def on_ready(self, snapshot, ops):
            snapshot.placed["f"] = "A"

    with pytest.raises(TypeError):
        run_online(graph, Meddler(), CostModel(graph, abstract_platform(units)))


@pytest.mark.parametrize(("policy", "message"), [
    (type("Nowhere", (OnlinePolicy,), {"name": "nowhere", "on_ready": lambda self, s, ops: dict.fromkeys(ops, "Z")}),
     r"^scheduler 'nowhere': placed op 'f' on 'Z', expected a unit able to run it$"),
    (type("Idle", (OnlinePolicy,), {"name": "idle"}),
     r"^scheduler 'idle': op 'f' never ran, expected the policy to place every ready op"),
    (type("Thief", (OnlinePolicy,), {"name": "thief", "on_idle": lambda self, s, unit: "j"}),
     r"^scheduler 'thief': gave op 'j' to idle unit 'A', expected an op of the pool or of a queue$"),
])
def test_misbehaving_policies_get_one_line(policy, message):
    graph, units = instance_graph(FORK_JOIN)
    with pytest.raises(SimulationError, match=message) as err:
        run_online(graph, policy(), CostModel(graph, abstract_platform(units)))
    assert "\n" not in str(err.value)
