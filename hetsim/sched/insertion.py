"""Insertion-based placement shared by list schedulers: the earliest idle gap that fits an op."""

from __future__ import annotations

import bisect
from collections.abc import Mapping

from hetsim.cost.model import CostModel
from hetsim.sched.schedule import Schedule


class Timeline:
    """Busy intervals per unit, and placement of ops into the earliest gap after their inputs.

    An interval is ``(start, finish, placement number, op)``: ops of zero duration at one instant
    keep the order they were placed in, which respects precedence (a producer is placed before
    its consumers), rather than the order of their names.
    """

    def __init__(self, units: list[str]):
        self.busy: dict[str, list[tuple[float, float, int, str]]] = {u: [] for u in units}
        self.placed: dict[str, int] = {}
        self._count = 0
        self.ends: dict[str, list[float]] = {u: [] for u in units}  # busy's finish times, also sorted
        self.assignment: dict[str, str] = {}
        self.start: dict[str, float] = {}
        self.finish: dict[str, float] = {}

    def ready_time(self, graph, cost: CostModel, op: str, unit: str) -> float:
        """When every input of ``op`` is available on ``unit``."""
        a, f = self.assignment, self.finish
        return max((f[p] + cost.comm_time(p, op, a[p], unit) for p in graph.predecessors(op)), default=0.0)

    def earliest_start(self, unit: str, ready: float, duration: float) -> float:
        """The start of the first gap on ``unit`` at or after ``ready`` that holds ``duration``.

        Busy intervals never overlap, so their finish times are sorted as their starts are; the
        scan begins at the first interval still running at ``ready`` (found by bisection).
        """
        slots = self.busy[unit]
        begin = ready
        for i in range(bisect.bisect_right(self.ends[unit], ready), len(slots)):
            start, end = slots[i][0], slots[i][1]
            if begin + duration <= start:
                return begin
            begin = end
        return begin

    def eft(self, graph, cost: CostModel, op: str, unit: str) -> tuple[float, float]:
        """(start, finish) of ``op`` on ``unit`` with insertion."""
        duration = cost.time(op, unit)
        start = self.earliest_start(unit, self.ready_time(graph, cost, op, unit), duration)
        return start, start + duration

    def place_earliest(self, graph, cost: CostModel, op: str) -> str:
        """Place ``op`` on the capable unit where it finishes first (ties: platform order)."""
        best: tuple[float, float, str] | None = None
        for unit in cost.capable_units(op):
            start, finish = self.eft(graph, cost, op, unit)
            if best is None or finish < best[1]:
                best = (start, finish, unit)
        self.place(op, best[2], best[0], best[1])
        return best[2]

    def place(self, op: str, unit: str, start: float, finish: float) -> None:
        slots = self.busy[unit]
        number = self.placed[op] = self._count = self._count + 1
        i = bisect.bisect_right(slots, (start, finish, number, op))
        slots.insert(i, (start, finish, number, op))
        self.ends[unit].insert(i, finish)
        self.assignment[op], self.start[op], self.finish[op] = unit, start, finish

    def remove(self, op: str) -> None:
        """Undo :meth:`place` of ``op`` (tentative placements, as lookahead schedulers make)."""
        unit = self.assignment.pop(op)
        slots = self.busy[unit]
        i = bisect.bisect_left(slots, (self.start.pop(op), self.finish.pop(op), self.placed.pop(op), op))
        del slots[i]
        del self.ends[unit][i]

    def schedule(self, name: str, power_state: Mapping[str, str] | None = None) -> Schedule:
        order = {u: tuple(slot[3] for slot in slots) for u, slots in self.busy.items() if slots}
        return Schedule(name, self.assignment, order, power_state or {}, self.start, self.finish)
