"""EDP list scheduling: each op on the (unit, power state) pair of least energy × finish time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.sched.insertion import Timeline
from hetsim.sched.order import by_rank
from hetsim.sched.ranks import RankOptions
from hetsim.sched.registry import register
from hetsim.sched.schedule import Schedule


@register
@dataclass(frozen=True)
class EDP(RankOptions):
    """EDP: HEFT's order, each op on the (unit, power state) pair minimising its energy × finish time.

    A DVFS-aware list scheduler: ops are taken by decreasing upward rank (ties: graph order); for
    every capable unit and every power state of that unit, the op is placed at the earliest gap
    that holds its time at that state (insertion based, inputs' communication included), and the
    pair with the least ``energy × finish`` wins — the op's energy at that state (busy power ×
    time) weighed against how late it ends, the energy-delay product of Gonzalez & Horowitz,
    "Energy dissipation in general purpose microprocessors", IEEE JSSC 31(9), 1996, applied op by
    op. Ties: earlier finish, then platform order, then faster state. Ops with explicit costs, or
    on units without power figures, reduce to HEFT's choice.
    """

    name: ClassVar[str] = "edp"

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule:
        rank = self.upward(graph, cost)
        index = {op: i for i, op in enumerate(graph)}
        position = {u.name: i for i, u in enumerate(cost.platform.units)}
        timeline = Timeline([u.name for u in cost.platform.units])
        states: dict[str, str] = {}
        for op in by_rank(graph, rank, index):
            best: tuple | None = None
            for unit in cost.capable_units(op):
                ready = timeline.ready_time(graph, cost, op, unit)
                spec = cost.platform.unit(unit)
                for state in sorted(spec.power_states, key=lambda s: -s.freq_hz):
                    c = cost.op_cost_at(op, unit, state.name)
                    start = timeline.earliest_start(unit, ready, c.total_s)
                    finish = start + c.total_s
                    energy = state.power_w(c.activity) * c.total_s
                    key = (energy * finish, finish, position[unit], -state.freq_hz)
                    if best is None or key < best[0]:
                        best = (key, unit, state.name, start, finish)
            _, unit, state, start, finish = best
            timeline.place(op, unit, start, finish)
            states[op] = state
        return timeline.schedule(self.name, states)
