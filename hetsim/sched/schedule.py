"""The Schedule value and its checker.

A Schedule says which unit runs each op, in which order each unit runs its ops, optionally at
which power state, and what the scheduler predicted for start and finish times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from types import MappingProxyType

from hetsim.cost.model import CostModel
from hetsim.errors import ScheduleError

_EPS = 1e-9


@dataclass(frozen=True)
class Schedule:
    """Assignment op → unit, per-unit order, optional power state per op, predicted times.

    Examples
    --------
    >>> s = Schedule("demo", {"a": "u0", "b": "u0"}, {"u0": ("a", "b")}, start={"a": 0.0, "b": 1.0},
    ...              finish={"a": 1.0, "b": 3.0})
    >>> s.makespan_s, s.unit_of("b")
    (3.0, 'u0')
    """

    scheduler: str
    assignment: Mapping[str, str]
    order: Mapping[str, tuple[str, ...]]
    power_state: Mapping[str, str] = field(default_factory=dict)
    start: Mapping[str, float] = field(default_factory=dict)
    finish: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("assignment", "order", "power_state", "start", "finish"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    @property
    def makespan_s(self) -> float:
        """The scheduler's predicted makespan (0 when it predicted nothing)."""
        return max(self.finish.values(), default=0.0)

    def unit_of(self, op: str) -> str:
        """The unit ``op`` is assigned to."""
        return self.assignment[op]


def from_assignment(scheduler: str, graph, cost: CostModel, assignment: Mapping[str, str],
                    order: list[str]) -> Schedule:
    """Build a Schedule from an assignment and a global op order, predicting times.

    Each unit runs its ops in the order they appear in ``order`` (which must be topological);
    an op starts when its unit is free and every input has arrived (producer finish plus the
    transfer time between the two units). This is exactly what the engine does without
    contention.
    """
    unit_free: dict[str, float] = {}
    per_unit: dict[str, list[str]] = {}
    start: dict[str, float] = {}
    finish: dict[str, float] = {}
    for op in order:
        unit = assignment[op]
        ready = unit_free.get(unit, 0.0)
        for pred in graph.predecessors(op):
            ready = max(ready, finish[pred] + cost.comm_time(pred, op, assignment[pred], unit))
        start[op] = ready
        finish[op] = unit_free[unit] = ready + cost.time(op, unit)
        per_unit.setdefault(unit, []).append(op)
    return Schedule(scheduler, assignment, {u: tuple(ops) for u, ops in per_unit.items()}, {}, start, finish)


def check_schedule(schedule: Schedule, graph, cost: CostModel, *, check_times: bool = True) -> None:
    """Raise ScheduleError (one line) unless ``schedule`` is valid for ``graph`` on the platform.

    Checked: every op is assigned exactly once to an existing unit able to run it; each unit's
    order lists exactly its ops; the orders are consistent with precedence (no deadlock); power
    states exist. With ``check_times``, predicted times also respect precedence including
    communication delay, op durations, and no overlap on a unit.
    """
    platform = cost.platform
    units = {u.name for u in platform.units}
    ops = set(graph.nodes)
    if set(schedule.assignment) != ops:
        missing = sorted(ops - set(schedule.assignment)) or sorted(set(schedule.assignment) - ops)
        raise ScheduleError(f"schedule.assignment: op {missing[0]!r} is missing or unknown, expected every op once")
    listed: dict[str, str] = {}
    for unit, seq in schedule.order.items():
        if unit not in units:
            raise ScheduleError(f"schedule.order: got unit {unit!r}, expected one of {', '.join(sorted(units))}")
        for op in seq:
            if op in listed:
                raise ScheduleError(f"schedule.order: op {op!r} listed twice, expected once")
            listed[op] = unit
    for op, unit in schedule.assignment.items():
        if listed.get(op) != unit:
            raise ScheduleError(f"schedule.order: op {op!r} assigned to {unit!r} but not in that unit's order")
        if not cost.can_run(op, unit):
            raise ScheduleError(f"schedule.assignment: op {op!r} on unit {unit!r}, expected a unit able to run it")
        state = schedule.power_state.get(op)
        if state is not None:
            platform.unit(unit).state(state)
    _check_deadlock(schedule, graph)
    if check_times:
        _check_times(schedule, graph, cost)


def _check_deadlock(schedule: Schedule, graph) -> None:
    """Precedence plus per-unit order must still be acyclic, or the engine would wait forever.

    The members of a collective count as one node: two units taking two collectives in opposite
    orders would wait for each other.
    """
    import networkx as nx

    # the members of one collective run together: one node for the check
    node = {op: f"collective {d['group']}" if d["op"] == "collective" and "group" in d else op
            for op, d in graph.nodes(data=True)}
    combined = nx.DiGraph((node[a], node[b]) for a, b in graph.edges)
    combined.add_nodes_from(node.values())
    for seq in schedule.order.values():
        combined.add_edges_from((node[a], node[b]) for a, b in pairwise(seq))
    if not nx.is_directed_acyclic_graph(combined):
        cycle = nx.find_cycle(combined)
        raise ScheduleError(f"schedule.order: unit orders contradict precedence around op {cycle[0][0]!r}")


def _check_times(schedule: Schedule, graph, cost: CostModel) -> None:
    a, start, finish = schedule.assignment, schedule.start, schedule.finish
    if not start:
        return
    for op in graph.nodes:
        if op not in start or op not in finish:
            raise ScheduleError(f"schedule.start: op {op!r} has no predicted time, expected one for every op")
        duration = cost.op_cost_at(op, a[op], schedule.power_state.get(op)).total_s
        if start[op] < -_EPS or abs(finish[op] - start[op] - duration) > _EPS * max(1.0, duration):
            ran = finish[op] - start[op]
            raise ScheduleError(f"schedule.finish: op {op!r} runs {ran!r} s, expected {duration!r} s")
        for pred in graph.predecessors(op):
            arrival = finish[pred] + cost.comm_time(pred, op, a[pred], a[op])
            if start[op] < arrival - _EPS * max(1.0, arrival):
                raise ScheduleError(f"schedule.start: op {op!r} starts at {start[op]!r} s before its input from "
                                    f"{pred!r} arrives at {arrival!r} s")
    for unit, seq in schedule.order.items():
        for prev, nxt in pairwise(seq):
            if start[nxt] < finish[prev] - _EPS * max(1.0, finish[prev]):
                raise ScheduleError(f"schedule.order: ops {prev!r} and {nxt!r} overlap on unit {unit!r}")
