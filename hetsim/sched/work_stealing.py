"""Work stealing, as StarPU's ``ws`` policy does it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from hetsim.sched.online import OnlinePolicy, Snapshot
from hetsim.sched.registry import register


@register
@dataclass
class WorkStealing(OnlinePolicy):
    """Work stealing: a ready op goes to the unit that released it; idle units steal from the most loaded.

    After StarPU's ``ws`` scheduler (StarPU Handbook, "Task Scheduling Policies"; Blumofe &
    Leiserson, "Scheduling multithreaded computations by work stealing", JACM 46(5), 1999): an op
    that becomes ready is queued on the unit that ran the input finishing last (the one that
    "released" it) when that unit can run it, else on the capable unit whose queue drains first
    (entry ops too). A unit with an empty queue steals from the unit whose queue holds the most
    expected work (ties: platform order): the op queued last that the thief can run, i.e. the
    one its owner would reach last. Stealing ignores speed, as in StarPU's ``ws``; with
    ``steal_if_faster`` a unit steals only an op it expects to finish before the owner would.
    """

    name: ClassVar[str] = "work_stealing"
    steal_if_faster: bool = False

    def on_ready(self, snapshot: Snapshot, ops: tuple[str, ...]) -> Mapping[str, str]:
        cost, graph = snapshot.cost, snapshot.graph
        available = {name: view.available_s for name, view in snapshot.units.items()}
        out: dict[str, str] = {}
        for op in ops:
            preds = list(graph.predecessors(op))
            releaser = snapshot.placed[max(preds, key=snapshot.finished.__getitem__)] if preds else None
            if releaser is None or not cost.can_run(op, releaser):
                releaser = min(cost.capable_units(op), key=available.__getitem__)
            out[op] = releaser
            available[releaser] += cost.time(op, releaser)
        return out

    def on_idle(self, snapshot: Snapshot, unit: str) -> str | None:
        cost, now = snapshot.cost, snapshot.now_s
        victims = sorted((view for name, view in snapshot.units.items() if name != unit and view.queue),
                         key=lambda view: -(view.available_s - now))  # stable: ties keep platform order
        for view in victims:
            for position in range(len(view.queue) - 1, -1, -1):
                op = view.queue[position]
                if not cost.can_run(op, unit):
                    continue
                if self.steal_if_faster:
                    owner_finish = view.available_s - sum(cost.time(o, view.name) for o in view.queue[position + 1:])
                    if snapshot.input_ready_s(op, unit) + cost.time(op, unit) >= owner_finish:
                        continue
                return op
        return None
