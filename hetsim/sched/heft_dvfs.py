"""Energy-aware HEFT: HEFT's placement, then slack reclamation with DVFS under a deadline."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import ClassVar

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.errors import ScheduleError
from hetsim.sched.heft import HEFT
from hetsim.sched.registry import register
from hetsim.sched.schedule import Schedule


@register
@dataclass(frozen=True)
class HEFTDVFS:
    """Energy-aware HEFT: HEFT's schedule, each op then slowed to the state that saves most energy in its slack.

    Slack reclamation after Rizvandi, Taheri & Zomaya, "Some observations on optimal frequency
    selection in DVFS-based energy consumption minimization", JPDC 71(8), 2011, and Wang, von
    Laszewski et al., "Towards energy aware scheduling for precedence constrained parallel tasks
    in a cluster with DVFS", CCGrid 2010: ops keep HEFT's units, order and start times; walking
    back from the end, each op may finish as late as its successors' starts (less the transfer),
    the next op on its unit, or the deadline allow. Among the unit's power states whose time
    fits that window it takes the one that minimises the unit's energy over the window: busy
    power × time at that state plus the nominal idle power for the rest. Compute-bound ops slow
    down and save; memory-bound ops barely slow down and save the most.

    Parameters
    ----------
    deadline_s : float, optional
        The latest finish allowed; by default ``stretch`` × HEFT's makespan.
    stretch : float
        Deadline as a multiple of HEFT's makespan when ``deadline_s`` is not given (>= 1).
    """

    name: ClassVar[str] = "heft_dvfs"
    deadline_s: float | None = None
    stretch: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.stretch, bool) or not isinstance(self.stretch, int | float) or not self.stretch >= 1:
            raise ScheduleError(f"scheduler.options.stretch: got {self.stretch!r}, expected a number >= 1")
        if self.deadline_s is not None and (isinstance(self.deadline_s, bool) or
                                            not isinstance(self.deadline_s, int | float) or self.deadline_s <= 0):
            raise ScheduleError(f"scheduler.options.deadline_s: got {self.deadline_s!r}, expected seconds > 0")

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule:
        base = HEFT()(graph, cost)
        deadline = self.deadline_s if self.deadline_s is not None else self.stretch * base.makespan_s
        if deadline < base.makespan_s * (1 - 1e-12):
            raise ScheduleError(f"scheduler.options.deadline_s: got {deadline!r} s, expected at least HEFT's "
                                f"makespan {base.makespan_s!r} s")
        a, start = base.assignment, dict(base.start)
        finish = dict(base.finish)
        after: dict[str, str | None] = dict.fromkeys(graph)
        for seq in base.order.values():
            for prev, nxt in pairwise(seq):
                after[prev] = nxt
        states: dict[str, str] = {}
        for op in sorted(graph, key=lambda o: -base.finish[o]):  # the latest-finishing first
            unit = a[op]
            latest = deadline
            for succ in graph.successors(op):
                latest = min(latest, start[succ] - cost.comm_time(op, succ, unit, a[succ]))
            if after[op] is not None:
                latest = min(latest, start[after[op]])
            spec = cost.platform.unit(unit)
            idle_w = spec.nominal.static_power_w
            window = latest - start[op]
            best: tuple[float, float, str] | None = None
            for state in spec.power_states:
                c = cost.op_cost_at(op, unit, state.name)
                if c.total_s > window * (1 + 1e-12) + 1e-15:
                    continue
                energy = state.power_w(c.activity) * c.total_s + idle_w * max(0.0, window - c.total_s)
                key = (energy, c.total_s, state.name)
                if best is None or key < best:
                    best = key
            if best is None or math.isinf(best[1]):
                continue  # the nominal state always fits its HEFT slot; keep it
            states[op] = best[2]
            finish[op] = start[op] + best[1]
        return Schedule(self.name, a, base.order, states, start, finish)
