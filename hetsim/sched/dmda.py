"""DMDA: StarPU's deque-model data-aware policy, with its energy term."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.errors import ScheduleError
from hetsim.sched.online import OnlinePolicy, Snapshot
from hetsim.sched.registry import register


@register
@dataclass
class DMDA(OnlinePolicy):
    """DMDA: each ready op to the unit minimising α·(finish − best finish) + β·transfer + γ·energy.

    After StarPU's ``dmda`` family (Augonnet, Thibault, Namyst & Wacrenier, "StarPU: a unified
    platform for task scheduling on heterogeneous multicore architectures", CCPE 23(2), 2011;
    StarPU Handbook, "Task Scheduling Policies" and the STARPU_SCHED_ALPHA/BETA/GAMMA variables).
    For each capable unit: the expected finish ``max(now, when its queue drains) + time`` (data is
    prefetched, so transfers do not delay it), the data penalty (the time to move the op's inputs
    there) and the op's energy there (busy power at the nominal state × time). The op goes to the
    unit of least fitness (ties: earlier finish, then platform order). Ops released together are
    placed in graph order, as a runtime receives them.

    Parameters
    ----------
    alpha, beta : float
        Weights of the finish-time and data terms (StarPU's defaults: 1 and 1).
    gamma_s_per_j : float
        Seconds of finish time one joule is worth. StarPU's default ``STARPU_SCHED_GAMMA`` is 1000
        in its units (µs per J), i.e. 1e-3 s/J here; 0 ignores energy.
    """

    name: ClassVar[str] = "dmda"
    alpha: float = 1.0
    beta: float = 1.0
    gamma_s_per_j: float = 1e-3
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for key in ("alpha", "beta", "gamma_s_per_j"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ScheduleError(f"scheduler.options.{key}: got {value!r}, expected a number >= 0")

    def prepare(self, graph: nx.DiGraph, cost: CostModel) -> None:
        self._index = {op: i for i, op in enumerate(graph)}

    def on_ready(self, snapshot: Snapshot, ops: tuple[str, ...]) -> Mapping[str, str]:
        cost, now = snapshot.cost, snapshot.now_s
        available = {name: view.available_s for name, view in snapshot.units.items()}
        out: dict[str, str] = {}
        for op in sorted(ops, key=self._index.__getitem__):
            rows = []
            for i, unit in enumerate(cost.capable_units(op)):
                duration = cost.time(op, unit)
                state = cost.platform.unit(unit).nominal
                energy = (state.static_power_w + state.dynamic_power_w * cost.cost(op, unit).activity) * duration
                rows.append((max(now, available[unit]) + duration, snapshot.transfer_s(op, unit), energy, i, unit))
            best_finish = min(r[0] for r in rows)
            finish, _, _, _, unit = min(rows, key=lambda r: (self.alpha * (r[0] - best_finish) + self.beta * r[1]
                                                            + self.gamma_s_per_j * r[2], r[0], r[3]))
            out[op] = unit
            available[unit] = finish
        return out
