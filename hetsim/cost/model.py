"""The CostModel: op and transfer times for one graph on one platform, computed once.

Schedulers and the engine both read the same table, so a schedule's predicted times and the
simulated ones agree exactly when nothing contends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import networkx as nx

from hetsim.cost.collectives import ALGORITHMS, collective_steps, collective_time
from hetsim.cost.nccl import NcclModel
from hetsim.cost.roofline import IMPOSSIBLE, OpCost, op_cost
from hetsim.errors import ScheduleError
from hetsim.spec.types import Platform


@dataclass(frozen=True)
class CostModel:
    """Per-(op, unit) costs at the nominal power state and per-unit-pair transfer routes.

    Parameters
    ----------
    graph : networkx.DiGraph
        A validated OpGraph.
    platform : Platform
    collective_algorithm : str
        ``"nccl"`` (NCCL's model and choice, :mod:`hetsim.cost.nccl`, for collectives among GPUs;
        others run ``ring``), ``"ring"`` or ``"tree"`` (alpha-beta, :mod:`hetsim.cost.collectives`).

    Examples
    --------
    >>> from hetsim.graph.schema import new_graph, add_op
    >>> from hetsim.spec.loader import platform_from_dict
    >>> p = platform_from_dict({"name": "two",
    ...     "memories": [{"name": "m0", "capacity": "1 GB", "bandwidth": "1 GB/s"},
    ...                  {"name": "m1", "capacity": "1 GB", "bandwidth": "1 GB/s"}],
    ...     "units": [{"name": "u0", "kind": "cpu", "memory": "m0", "peak": {"fp32": "1 GFLOP/s"},
    ...                "power_states": [{"name": "p0", "freq": "1 GHz", "voltage": "1 V",
    ...                                  "static_power": "1 W", "dynamic_power": "1 W"}]},
    ...               {"name": "u1", "kind": "cpu", "memory": "m1", "peak": {"fp32": "2 GFLOP/s"},
    ...                "power_states": [{"name": "p0", "freq": "1 GHz", "voltage": "1 V",
    ...                                  "static_power": "1 W", "dynamic_power": "1 W"}]}],
    ...     "links": [{"name": "l", "a": "m0", "b": "m1", "bandwidth": "1 GB/s", "latency": "1 ms"}]})
    >>> g = new_graph("g"); add_op(g, "a", op="matmul", flop=2e9, dtype="fp32")
    >>> cm = CostModel(g, p)
    >>> cm.time("a", "u0"), cm.time("a", "u1"), cm.transfer_time(1e6, "u0", "u1")
    (2.0, 1.0, 0.002)
    """

    graph: nx.DiGraph
    platform: Platform
    collective_algorithm: str = "nccl"

    def __post_init__(self) -> None:
        if self.collective_algorithm not in ALGORITHMS:
            raise ScheduleError(f"sim.collective_algorithm: got {self.collective_algorithm!r}, expected one of "
                                f"{', '.join(ALGORITHMS)}")
        costs: dict[str, dict[str, OpCost]] = {}
        units = self.platform.units
        names = {u.name for u in units}
        memories = {u.name: self.platform.memory(u.memory) for u in units}
        collectives: dict[tuple, OpCost] = {}  # a training graph has 10^4 members of a handful of collectives
        for node, data in self.graph.nodes(data=True):
            pin = data.get("pin")
            if pin is not None and pin not in names:
                raise ScheduleError(f"op {node!r}.pin: got {pin!r}, expected a unit of platform "
                                    f"{self.platform.name!r} ({', '.join(sorted(names))})")
            # a pinned op keeps one entry (a 32-GPU training graph has 10^5 pinned ops); absent = impossible
            if data["op"] == "collective" and "collective" in data:
                row = {pin: self._collective_cost(node, data, names, collectives)}
            elif pin is not None:
                row = {pin: op_cost(data, self.platform.unit(pin), memories[pin])}
            else:
                row = {u.name: op_cost(data, u, memories[u.name]) for u in units}
            if all(math.isinf(c.total_s) for c in row.values()):
                raise ScheduleError(f"op {node!r}: no unit of platform {self.platform.name!r} can run "
                                    f"op kind {data['op']!r} in dtype {data.get('dtype')!r}")
            costs[node] = row
        object.__setattr__(self, "_costs", costs)
        object.__setattr__(self, "_unit_memory", {u.name: u.memory for u in units})

    def _collective_cost(self, node: str, data, names: set[str], memo: dict[tuple, OpCost]) -> OpCost:
        """Alpha-beta time of one collective member, on the slowest route its algorithm uses
        (``nccl``: NCCL's choice alone on idle links, :meth:`hetsim.cost.nccl.NcclModel.time`).

        It is all data movement: the unit waits and draws its static power (memory time, no
        compute). The engine replays the steps as transfers instead (unless told to use this).
        Members of the same collective (kind, ranks, bytes) share one entry of ``memo``.
        """
        ranks = list(data["ranks"])
        key = (data["collective"], tuple(ranks), data["comm_bytes"])
        if key in memo:
            return memo[key]
        for rank in ranks:
            if rank not in names:
                raise ScheduleError(f"op {node!r}.ranks: got unit {rank!r}, expected units of platform "
                                    f"{self.platform.name!r}")
        algorithm = self.algorithm_for(ranks)
        if algorithm == "nccl":  # NCCL's choice, as the engine replays it (hetsim.cost.nccl)
            seconds = self.nccl.time(data["collective"], ranks, data["comm_bytes"])
            memo[key] = OpCost(seconds, 0.0, seconds, 0.0)
            return memo[key]
        steps = collective_steps(data["collective"], algorithm, len(ranks), data["comm_bytes"])
        memory = {u.name: u.memory for u in self.platform.units}
        routes = [self.platform.route(memory[ranks[a]], memory[ranks[b]]) for a, b in
                  {(a, b) for step in steps for a, b, _ in step}]
        latency = max((r.latency_s for r in routes if r.links), default=0.0)
        bandwidth = min((r.bandwidth_bytes_per_s for r in routes if r.links), default=math.inf)
        seconds = collective_time(data["collective"], algorithm, len(ranks), data["comm_bytes"],
                                  latency, bandwidth)
        memo[key] = OpCost(seconds, 0.0, seconds, 0.0)
        return memo[key]

    @cached_property
    def nccl(self) -> NcclModel:
        """NCCL's model of this platform, shared by the cost table and the engine's transfer replay."""
        return NcclModel(self.platform)

    def algorithm_for(self, ranks) -> str:
        """The algorithm a collective over ``ranks`` runs: NCCL's model only among GPUs.

        ``nccl`` is NVIDIA's library; a collective with a CPU, TPU or NPU rank runs ``ring``.
        """
        if self.collective_algorithm == "nccl" and any(self.platform.unit(r).kind != "gpu" for r in ranks):
            return "ring"
        return self.collective_algorithm

    def cost(self, op: str, unit: str) -> OpCost:
        """The full :class:`OpCost` of ``op`` on ``unit`` at the nominal power state."""
        return self._costs[op].get(unit, IMPOSSIBLE)  # type: ignore[attr-defined]

    def time(self, op: str, unit: str) -> float:
        """Seconds ``op`` takes on ``unit`` (``inf`` when the unit cannot run it)."""
        return self._costs[op].get(unit, IMPOSSIBLE).total_s  # type: ignore[attr-defined]

    def can_run(self, op: str, unit: str) -> bool:
        """Whether ``unit`` can run ``op``."""
        return not math.isinf(self.time(op, unit))

    def capable_units(self, op: str) -> list[str]:
        """Units able to run ``op``, in platform order."""
        row = self._costs[op]  # type: ignore[attr-defined]
        if len(row) == 1:  # pinned
            return [unit for unit, c in row.items() if not math.isinf(c.total_s)]
        return [u.name for u in self.platform.units if self.can_run(op, u.name)]

    def op_cost_at(self, op: str, unit: str, state: str | None) -> OpCost:
        """Cost of ``op`` on ``unit`` at power state ``state`` (the nominal one for ``None``)."""
        if state is None:
            return self.cost(op, unit)
        u = self.platform.unit(unit)
        return op_cost(self.graph.nodes[op], u, self.platform.memory(u.memory), u.state(state))

    def transfer_time(self, nbytes: float, src_unit: str, dst_unit: str) -> float:
        """Seconds to move ``nbytes`` from ``src_unit``'s memory to ``dst_unit``'s (0 if shared)."""
        memory = self._unit_memory  # type: ignore[attr-defined]
        return self.platform.route(memory[src_unit], memory[dst_unit]).time_s(nbytes)

    def comm_time(self, src_op: str, dst_op: str, src_unit: str, dst_unit: str) -> float:
        """Seconds the tensor on edge ``src_op -> dst_op`` takes between two units.

        Classic instances carry an explicit ``cost`` on the edge: paid only across units.
        """
        if src_unit == dst_unit:
            return 0.0
        data = self.graph._adj[src_op][dst_op]  # the plain dict: schedulers call this per edge
        if "cost" in data:
            return float(data["cost"])
        return self.transfer_time(data["bytes"], src_unit, dst_unit)
