"""Online EFT: the earliest-finish rule, decided at run time as ops become ready."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.sched.online import OnlinePolicy, Snapshot
from hetsim.sched.order import by_rank
from hetsim.sched.ranks import upward_ranks
from hetsim.sched.registry import register


@register
@dataclass
class OnlineEFT(OnlinePolicy):
    """Online EFT: each op, once ready, is queued on the unit where it is expected to finish first.

    When several ops become ready at once they are placed by decreasing upward rank (ties: graph
    order). An op's expected finish on a unit is ``max(when the unit's queue drains, when its
    inputs can be there) + its time there``, from the snapshot and the cost model; ties go to the
    unit listed first. Unlike the static ``eft``, it sees only what has happened so far, and its
    estimates ignore inputs already on their way.
    """

    name: ClassVar[str] = "online_eft"
    _rank: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def prepare(self, graph: nx.DiGraph, cost: CostModel) -> None:
        self._rank = upward_ranks(graph, cost)
        self._index = {op: i for i, op in enumerate(graph)}

    def on_ready(self, snapshot: Snapshot, ops: tuple[str, ...]) -> Mapping[str, str]:
        cost = snapshot.cost
        available = {name: view.available_s for name, view in snapshot.units.items()}
        out: dict[str, str] = {}
        for op in by_rank(ops, self._rank, self._index):
            best: tuple[float, str] | None = None
            for unit in cost.capable_units(op):
                finish = max(available[unit], snapshot.input_ready_s(op, unit)) + cost.time(op, unit)
                if best is None or finish < best[0]:
                    best = (finish, unit)
            out[op] = best[1]
            available[best[1]] = best[0]
        return out
