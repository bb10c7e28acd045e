"""The SimPy engine: execute a Schedule on a Platform and record a Trace.

Each unit is one SimPy process that runs its ops in the schedule's order. An op starts when its
unit is free and all its inputs have arrived; an input produced in another memory arrives after a
transfer over the route between the two memories (one transfer per producer and destination
memory, shared by every consumer there). Without contention a transfer takes exactly
``latency + bytes / bottleneck bandwidth``, so the simulated times equal the schedule's predicted
ones. Memory use and per-unit power are recorded as they change.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import networkx as nx
import simpy

from hetsim.cost.model import CostModel
from hetsim.errors import ScenarioError, SimulationError
from hetsim.sched.schedule import Schedule
from hetsim.sim.memory import MemoryTracker, storage_roots
from hetsim.sim.trace import MemorySample, OpRun, PowerSample, Trace, TransferRun

CONTENTION_MODES = ("none",)


@dataclass(frozen=True)
class SimOptions:
    """Engine options.

    Parameters
    ----------
    contention : str
        ``"none"``: every transfer gets its route's full bandwidth (the classic scheduling model).
    track_memory : bool
        Track capacity over time and raise :class:`~hetsim.errors.OutOfMemoryError` on overflow.
    """

    contention: str = "none"
    track_memory: bool = True

    def __post_init__(self) -> None:
        if self.contention not in CONTENTION_MODES:
            raise ScenarioError(f"sim.contention: got {self.contention!r}, expected one of "
                                f"{', '.join(CONTENTION_MODES)}")


class _Run:
    """State of one simulation; built fresh by :func:`run`."""

    def __init__(self, graph: nx.DiGraph, schedule: Schedule, cost: CostModel, options: SimOptions):
        self.env = simpy.Environment()
        self.graph, self.schedule, self.cost, self.options = graph, schedule, cost, options
        platform = self.platform = cost.platform
        unit_mem = {u.name: u.memory for u in platform.units}
        self.unit_of = schedule.assignment
        self.mem_of = {op: unit_mem[u] for op, u in schedule.assignment.items()}
        self.pending = {op: graph.in_degree(op) for op in graph.nodes}
        self.waiting: dict[str, simpy.Event] = {}
        self.op_records: list[tuple] = []
        self.transfer_records: list[TransferRun] = []
        self.power: dict[str, list[tuple[float, float]]] = {}
        for unit in platform.units:
            self.power[unit.name] = [(0.0, unit.nominal.static_power_w)]
        self._plan_transfers()
        self.memory = MemoryTracker(platform) if options.track_memory else None
        if self.memory is not None:
            self._plan_memory()

    # -- planning --------------------------------------------------------------------------
    def _plan_transfers(self) -> None:
        """Per producer: local consumers, and remote consumers grouped by destination memory."""
        graph, mem_of = self.graph, self.mem_of
        self.local: dict[str, list[str]] = {}
        self.remote: dict[str, dict[tuple, list[str]]] = {}
        for op in graph.nodes:
            local, remote = [], defaultdict(list)
            for succ, data in graph.adj[op].items():
                same_unit = self.unit_of[succ] == self.unit_of[op]
                if same_unit or (mem_of[succ] == mem_of[op] and "cost" not in data):
                    local.append(succ)
                elif "cost" in data:  # explicit communication cost: one transfer per edge
                    remote[(mem_of[succ], succ)].append(succ)
                else:
                    remote[(mem_of[succ], None)].append(succ)
            self.local[op], self.remote[op] = local, dict(remote)

    def _plan_memory(self) -> None:
        graph, mem_of = self.graph, self.mem_of
        self.root = storage_roots(graph)
        readers: dict[tuple[str, str], int] = defaultdict(int)
        for op in graph.nodes:
            key_home = (self.root[op], mem_of[op])
            for succ in graph.adj[op]:
                if graph.nodes[succ]["op"] != "view":
                    readers[(self.root[op], mem_of[succ])] += 1
            readers[key_home] += len(self.remote[op])
        self.readers = readers
        resident: dict[tuple[str, str], float] = {}
        for op, data in graph.nodes(data=True):
            for name, nbytes in data["weights"].items():
                resident[(f"weight:{name}", mem_of[op])] = nbytes
        for (name, memory), nbytes in sorted(resident.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            self.memory.allocate(0.0, memory, (name, memory), nbytes, name.removeprefix("weight:"))

    # -- execution -------------------------------------------------------------------------
    def unit_process(self, unit: str, ops: tuple[str, ...]):
        env, pending, waiting = self.env, self.pending, self.waiting
        unit_spec = self.platform.unit(unit)
        states = self.schedule.power_state
        cost = self.cost
        power = self.power[unit]
        static_idle = unit_spec.nominal.static_power_w
        for op in ops:
            if pending[op]:
                event = waiting[op] = env.event()
                yield event
            state_name = states.get(op)
            c = cost.op_cost_at(op, unit, state_name)
            start = env.now
            if self.memory is not None:
                self._allocate_output(op, start)
            if c.total_s > 0:
                state = unit_spec.state(state_name)
                self._set_power(power, start, state.static_power_w + state.dynamic_power_w * c.activity)
                yield env.timeout(c.total_s)
                self._set_power(power, env.now, static_idle)
            else:
                state = unit_spec.nominal
            self.op_records.append((start, unit, op, env.now, state.name))
            self._complete(op)

    @staticmethod
    def _set_power(samples: list[tuple[float, float]], now: float, watts: float) -> None:
        last_t, last_w = samples[-1]
        if last_w == watts:
            return
        if last_t == now:
            samples[-1] = (now, watts)
            if len(samples) > 1 and samples[-2][1] == watts:
                samples.pop()
        else:
            samples.append((now, watts))

    def _allocate_output(self, op: str, now: float) -> None:
        if self.root[op] == op:
            nbytes = self.graph.nodes[op]["bytes_written"]
            self.memory.allocate(now, self.mem_of[op], (op, self.mem_of[op]), nbytes, op)

    def _arrive(self, op: str) -> None:
        self.pending[op] -= 1
        if not self.pending[op]:
            event = self.waiting.pop(op, None)
            if event is not None:
                event.succeed()

    def _release(self, key: tuple[str, str]) -> None:
        readers = self.readers
        readers[key] -= 1
        if readers[key] == 0:
            self.memory.free(self.env.now, key[1], key)

    def _complete(self, op: str) -> None:
        graph = self.graph
        if self.memory is not None and graph.nodes[op]["op"] != "view":
            root = self.root
            for pred in graph.predecessors(op):
                self._release((root[pred], self.mem_of[op]))
        for succ in self.local[op]:
            self._arrive(succ)
        for (dst_mem, _), consumers in self.remote[op].items():
            self._start_transfer(op, dst_mem, consumers)

    def _start_transfer(self, op: str, dst_mem: str, consumers: list[str]) -> None:
        env, graph = self.env, self.graph
        first = consumers[0]
        nbytes = max(graph.edges[op, c]["bytes"] for c in consumers)
        src_mem = self.mem_of[op]
        duration = self.cost.comm_time(op, first, self.unit_of[op], self.unit_of[first])
        route = self.platform.route(src_mem, dst_mem)
        start = env.now
        if self.memory is not None:
            self.memory.allocate(start, dst_mem, (self.root[op], dst_mem), nbytes, first)

        def arrived(_event: simpy.Event) -> None:
            self.transfer_records.append(TransferRun(op, first, src_mem, dst_mem, route.links, start, env.now,
                                                     nbytes))
            if self.memory is not None:
                self._release((self.root[op], src_mem))
            for consumer in consumers:
                self._arrive(consumer)

        env.timeout(duration).callbacks.append(arrived)

    def run(self) -> Trace:
        done = [self.env.process(self.unit_process(unit, ops)) for unit, ops in self.schedule.order.items()]
        self.env.run()
        if not all(p.processed for p in done):
            stuck = sorted(self.waiting)
            raise SimulationError(f"schedule.order: deadlock, op {stuck[0]!r} never got its inputs "
                                  "(unit orders contradict precedence)")
        return self._trace()

    def _trace(self) -> Trace:
        graph = self.graph
        makespan = self.env.now
        ops = []
        for start, unit, op, end, state in sorted(self.op_records):
            data = graph.nodes[op]
            ops.append(OpRun(op, unit, start, end, state, data["flop"], data["bytes_read"] + data["bytes_written"]))
        power = [PowerSample(t, u, w) for t, u, w in sorted((t, u, w) for u, s in self.power.items() for t, w in s)]
        memory = [MemorySample(t, m, b) for t, m, b in (self.memory.samples if self.memory else [])]
        transfers = sorted(self.transfer_records, key=lambda r: (r.start_s, r.src_op, r.dst_op))
        return Trace(self.platform.name, graph.graph.get("name", ""), makespan, tuple(ops), tuple(transfers),
                     tuple(power), tuple(sorted(memory, key=lambda s: (s.time_s, s.memory))))


def run(graph: nx.DiGraph, schedule: Schedule, cost: CostModel, options: SimOptions | None = None) -> Trace:
    """Simulate ``schedule`` of ``graph`` on ``cost.platform`` and return the Trace.

    Examples
    --------
    >>> from hetsim.graph.schema import new_graph, add_op
    >>> from hetsim.spec.loader import platform_from_dict
    >>> from hetsim.sched import get_scheduler
    >>> ps = [{"name": "p0", "freq": "1 GHz", "voltage": "1 V", "static_power": "1 W", "dynamic_power": "1 W"}]
    >>> p = platform_from_dict({"name": "one", "memories": [{"name": "m", "capacity": "1 GB", "bandwidth": "1 GB/s"}],
    ...     "units": [{"name": "u", "kind": "cpu", "memory": "m", "peak": {"fp32": "1 GFLOP/s"}, "power_states": ps}]})
    >>> g = new_graph("chain")
    >>> for i, t in enumerate([1.0, 2.0, 3.0]): add_op(g, f"op{i}", cost={"u": t})
    >>> g.add_edge("op0", "op1", bytes=0); g.add_edge("op1", "op2", bytes=0)
    >>> cm = CostModel(g, p)
    >>> run(g, get_scheduler("eft")(g, cm), cm).makespan_s
    6.0
    """
    return _Run(graph, schedule, cost, options or SimOptions()).run()
