"""Online policies: decisions taken while the simulation runs, from a read-only snapshot.

The engine (:mod:`hetsim.sim.online`) calls a policy at two moments, as StarPU's runtime does
(push when a task becomes ready, pop when a worker needs one):

``on_ready(snapshot, ops)``
    ``ops`` just became ready (every input produced). Return ``{op: unit}`` for the ops to queue
    on a unit now; ops left out wait in the central pool (``snapshot.pool``).
``on_idle(snapshot, unit)``
    ``unit`` has an empty queue. Return an op for it — one from the pool, or one stolen from
    another unit's queue — or ``None`` to leave it idle until something changes.

A unit runs its queue in order; an op starts once its inputs have reached the unit's memory
(transfers start when the op is queued). Policies see only plain values: the snapshot, the
graph and the cost model, never SimPy objects. A policy instance serves one run at a time:
:meth:`OnlinePolicy.prepare` is called first and may cache per-run data on the instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import networkx as nx

from hetsim.cost.model import CostModel


@dataclass(frozen=True)
class UnitView:
    """One unit as a policy sees it.

    Attributes
    ----------
    queue : tuple of str
        Ops queued on the unit, not started, in the order it will run them.
    running : str or None
        The op running now.
    available_s : float
        When the unit is expected to have finished its running op and its queue, by the cost
        model's estimates (``now_s`` when idle).
    power_state : str
    """

    name: str
    queue: tuple[str, ...]
    running: str | None
    available_s: float
    power_state: str


@dataclass(frozen=True)
class Snapshot:
    """The state of a run at one instant, read-only.

    Attributes
    ----------
    now_s : float
    pool : tuple of str
        Ready ops not queued on any unit yet.
    units : mapping
        Unit name → :class:`UnitView`, in platform order.
    placed : mapping
        Op → unit, for every op queued, running or finished so far.
    finished : mapping
        Finished op → its finish time.
    memory_free_bytes : mapping
        Memory name → bytes free now (capacity when memory is not tracked).
    graph, cost
        The op graph and the cost model (estimates of op and transfer times).
    """

    now_s: float
    pool: tuple[str, ...]
    units: Mapping[str, UnitView]
    placed: Mapping[str, str]
    finished: Mapping[str, float]
    memory_free_bytes: Mapping[str, float]
    graph: nx.DiGraph
    cost: CostModel

    def input_ready_s(self, op: str, unit: str) -> float:
        """When every input of ``op`` could be on ``unit``: producers' finish (or now) plus transfer."""
        cost, placed, finished = self.cost, self.placed, self.finished
        ready = self.now_s
        for pred in self.graph.predecessors(op):
            arrival = max(finished.get(pred, self.now_s), self.now_s) + cost.comm_time(pred, op, placed[pred], unit)
            ready = max(ready, arrival)
        return ready

    def transfer_s(self, op: str, unit: str) -> float:
        """Total transfer time of ``op``'s inputs to ``unit`` (StarPU's data penalty)."""
        return sum(self.cost.comm_time(p, op, self.placed[p], unit) for p in self.graph.predecessors(op))


class OnlinePolicy:
    """Base of online policies: push nothing, pull nothing. Subclasses override the hooks."""

    name: ClassVar[str]
    online: ClassVar[bool] = True

    def prepare(self, graph: nx.DiGraph, cost: CostModel) -> None:
        """Called once before a run starts."""

    def on_ready(self, snapshot: Snapshot, ops: tuple[str, ...]) -> Mapping[str, str]:
        """Queue some of the newly ready ``ops``: ``{op: unit}``."""
        return {}

    def on_idle(self, snapshot: Snapshot, unit: str) -> str | None:
        """An op for the idle ``unit`` (from the pool or another unit's queue), or ``None``."""
        return None


def is_online(policy: object) -> bool:
    """Whether a registered scheduler object is an online policy."""
    return bool(getattr(policy, "online", False))
