"""The online engine: an :class:`~hetsim.sched.online.OnlinePolicy` decides while the run goes on.

Each unit is a SimPy process with a queue. When an op becomes ready (its last input produced),
the policy may queue it on a unit (``on_ready``); when a unit's queue is empty, the policy may
hand it an op from the central pool or steal one from another queue (``on_idle``). Queuing an op
starts the transfers of its inputs to the unit's memory (once per tensor and memory, as in the
static engine; explicit edge costs of classic instances per edge), so data moves while the unit
is still busy, as StarPU prefetches. A unit runs its queue in order; an op starts once its
inputs are there.

Memory, when tracked: weights become resident in a memory when the first op using them is queued
on a unit there (their loading is not timed: they are assumed staged, as in the static engine,
which places them at time 0); an op's output is allocated at its start; a copy is allocated when
its transfer starts. A tensor's copies are all freed when its last consumer has finished — later
than the static engine frees a copy that its own readers are done with, because an online run
cannot know in advance who will read which copy. Peaks are therefore upper bounds.
"""

from __future__ import annotations

import gc
import time
from collections import Counter, deque
from types import MappingProxyType

import networkx as nx
import simpy

from hetsim.cost.model import CostModel
from hetsim.errors import ScenarioError, SimulationError
from hetsim.sched.online import OnlinePolicy, Snapshot, UnitView
from hetsim.sched.schedule import Schedule
from hetsim.sim.collectives import Collectives
from hetsim.sim.engine import SimOptions, check_algorithm
from hetsim.sim.memory import MemoryTracker, storage_roots
from hetsim.sim.network import FairNetwork, make_network, move, op_body
from hetsim.sim.records import build_trace, op_power
from hetsim.sim.trace import OpRun, Trace, TransferRun


class _OnlineRun:
    def __init__(self, graph: nx.DiGraph, cost: CostModel, policy: OnlinePolicy, options: SimOptions):
        if options.power.active:
            raise ScenarioError(f"sim.power: got power management with online policy {policy.name!r}, expected "
                                "a static scheduler (online policies run at each op's nominal state)")
        if options.memory_policy != "error":
            raise ScenarioError(f"sim.memory_policy: got {options.memory_policy!r} with online policy "
                                f"{policy.name!r}, expected 'error' (offloading needs a static schedule)")
        self.env = simpy.Environment(initial_time=0.0)
        self.graph, self.cost, self.policy, self.options = graph, cost, policy, options
        check_algorithm(cost, options)
        self.platform = cost.platform
        self.units = [u.name for u in self.platform.units]
        self.mem_of_unit = {u.name: u.memory for u in self.platform.units}
        self.succ, self.pred, self.nodes = graph._adj, graph._pred, graph._node
        self.pending = {op: len(preds) for op, preds in self.pred.items()}
        self.queue: dict[str, deque[str]] = {u: deque() for u in self.units}
        self.running: dict[str, str | None] = dict.fromkeys(self.units)
        self.running_end: dict[str, float] = dict.fromkeys(self.units, 0.0)
        self.wake = {u: self.env.event() for u in self.units}
        self.pool: dict[str, None] = {}  # an ordered set
        self.placed: dict[str, str] = {}
        self.finished: dict[str, float] = {}
        self.copies: dict[tuple, simpy.Event] = {}  # (op, memory) or ("edge", op, consumer) → data there
        self.op_records: list[tuple] = []
        self.transfer_records: list[TransferRun] = []
        self.busy: dict[str, list[tuple[float, float, float]]] = {u: [] for u in self.units}
        self.order: dict[str, list[str]] = {u: [] for u in self.units}
        self.policy_s = 0.0
        self.network = make_network(options.contention, self.env, self.platform)
        self.collectives = Collectives(self.env, graph, cost, self.network, self.transfer_records,
                                       options.collective_mode == "analytic")
        self.memory = MemoryTracker(self.platform) if options.track_memory else None
        self.root = storage_roots(graph)
        is_view = {op: d["op"] == "view" for op, d in self.nodes.items()}
        # per storage root: consumer reads still to finish; the root's copies are freed at zero
        self.readers = Counter(self.root[op] for op, succs in self.succ.items() for s, d in succs.items()
                               if not is_view[s] and d["bytes"] > 0)  # a 0-byte edge only orders
        self.held: dict[str, list[str]] = {}  # root → memories holding a copy
        self.resident: set[tuple[str, str]] = set()

    # -- what the policy sees --------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        now, cost = self.env.now, self.cost
        views = {}
        for u in self.units:
            queued = tuple(self.queue[u])
            available = max(now, self.running_end[u]) if self.running[u] else now
            available += sum(cost.time(op, u) for op in queued)
            views[u] = UnitView(u, queued, self.running[u], available, self.platform.unit(u).nominal.name)
        free = ({m: self.memory.capacity[m] - self.memory.used[m] for m in self.memory.capacity} if self.memory
                else {m.name: m.capacity_bytes for m in self.platform.memories})
        # live read-only views: a snapshot is valid for the call it is passed to
        return Snapshot(now, tuple(self.pool), views, MappingProxyType(self.placed),
                        MappingProxyType(self.finished), free, self.graph, cost)

    def _ask(self, hook, *args):
        began = time.perf_counter()
        try:
            return hook(self.snapshot(), *args)
        finally:
            self.policy_s += time.perf_counter() - began

    def _refuse(self, what: str) -> SimulationError:
        return SimulationError(f"scheduler {self.policy.name!r}: {what}")

    def ready(self, ops: list[str]) -> None:
        """``ops`` became ready: they join the pool, and the policy may queue them."""
        for op in ops:
            self.pool[op] = None
        decisions = self._ask(self.policy.on_ready, tuple(ops))
        for op, unit in decisions.items():
            if op not in self.pool:
                raise self._refuse(f"queued op {op!r}, expected one of the ops it was offered")
            self.enqueue(op, unit)
        for u in self.units:  # idle units may now run what was queued, take from the pool or steal
            if self.running[u] is None and not self.wake[u].triggered:
                self.wake[u].succeed()

    def enqueue(self, op: str, unit: str, front: bool = False) -> None:
        if unit not in self.queue or not self.cost.can_run(op, unit):
            raise self._refuse(f"placed op {op!r} on {unit!r}, expected a unit able to run it")
        self.pool.pop(op, None)
        self.placed[op] = unit
        (self.queue[unit].appendleft if front else self.queue[unit].append)(op)
        self._fetch_inputs(op, unit)

    def take_for_idle(self, unit: str) -> bool:
        """Ask the policy for an op for idle ``unit``; True when it got one."""
        op = self._ask(self.policy.on_idle, unit)
        if op is None:
            return False
        if op in self.pool:
            self.enqueue(op, unit)
            return True
        owner = self.placed.get(op)
        if owner is None or op not in self.queue[owner]:
            raise self._refuse(f"gave op {op!r} to idle unit {unit!r}, expected an op of the pool or of a queue")
        self.queue[owner].remove(op)
        self.enqueue(op, unit, front=True)
        return True

    # -- data ------------------------------------------------------------------------------
    def _fetch_inputs(self, op: str, unit: str) -> None:
        mem = self.mem_of_unit[unit]
        if self.memory is not None:
            for name, nbytes in self.nodes[op]["weights"].items():
                if (name, mem) not in self.resident:
                    self.resident.add((name, mem))
                    self.memory.allocate(self.env.now, mem, (f"weight:{name}", mem), nbytes, op)
        for pred in self.pred[op]:
            data = self.succ[pred][op]
            src_unit = self.placed[pred]
            if "cost" in data:
                key = ("edge", pred, op)
                if src_unit == unit or key in self.copies:
                    continue
                self._transfer(key, pred, op, mem, data["bytes"], float(data["cost"]))
            else:
                src_mem = self.mem_of_unit[src_unit]
                key = (pred, mem)
                if src_mem == mem or key in self.copies:
                    continue
                self._hold(pred, op, mem, data["bytes"])
                self.copies[key] = move(self.env, self.network, self.platform, data["bytes"], src_mem, mem,
                                        self.transfer_records, pred, op)

    def _hold(self, pred: str, op: str, dst_mem: str, nbytes: float) -> None:
        """Allocate ``pred``'s tensor in ``dst_mem`` (once per memory) as its copy starts."""
        root = self.root[pred]
        if self.memory is not None and dst_mem not in self.held.setdefault(root, []):
            self.held[root].append(dst_mem)
            self.memory.allocate(self.env.now, dst_mem, (root, dst_mem), nbytes, op)

    def _transfer(self, key: tuple, pred: str, op: str, dst_mem: str, nbytes: float, duration: float) -> None:
        """An edge with an explicit cost: a fixed delay, recorded on the route's links."""
        env, start = self.env, self.env.now
        src_mem = self.mem_of_unit[self.placed[pred]]
        event = self.copies[key] = env.event()
        self._hold(pred, op, dst_mem, nbytes)
        links = self.platform.route(src_mem, dst_mem).links

        def arrived(_event: simpy.Event | None = None) -> None:
            self.transfer_records.append(TransferRun(pred, op, src_mem, dst_mem, links, start, env.now, nbytes,
                                                     (op,)))
            event.succeed()

        env.timeout(duration).callbacks.append(arrived)

    def _inputs_there(self, op: str, unit: str) -> list[simpy.Event]:
        """The transfers ``op`` still waits for on ``unit``."""
        mem, out = self.mem_of_unit[unit], []
        for pred in self.pred[op]:
            src_unit = self.placed[pred]
            if "cost" in self.succ[pred][op]:
                event = None if src_unit == unit else self.copies[("edge", pred, op)]
            else:
                event = None if self.mem_of_unit[src_unit] == mem else self.copies[(pred, mem)]
            if event is not None and not event.processed:
                out.append(event)
        return out

    # -- execution -------------------------------------------------------------------------
    def unit_process(self, unit: str):
        env, spec, total = self.env, self.platform.unit(unit), len(self.nodes)
        while len(self.finished) < total:
            if not self.queue[unit] and not self.take_for_idle(unit):
                self.wake[unit] = env.event()
                yield self.wake[unit]
                continue
            op = self.queue[unit].popleft()
            c, watts, state = op_power(self.cost, spec, op, None)
            self.running[unit] = op
            self.running_end[unit] = env.now + c.total_s
            waiting = self._inputs_there(op, unit)
            if waiting:
                yield env.all_of(waiting)
                self.running_end[unit] = env.now + c.total_s
            start = env.now
            data = self.nodes[op]
            moved = data["bytes_read"] + data["bytes_written"]
            if self.memory is not None and self.root[op] == op:
                self.held.setdefault(op, []).append(self.mem_of_unit[unit])
                self.memory.allocate(start, self.mem_of_unit[unit], (op, self.mem_of_unit[unit]),
                                     data["bytes_written"] - data.get("inplace_bytes", 0), op)
            collective = self.collectives.of.get(op)
            if collective is not None:  # every member, then the last step
                yield collective.join()
                start = collective.start_s
                if env.now > start:
                    self.busy[unit].append((start, env.now, watts))
            elif isinstance(self.network, FairNetwork) and c.memory_s > 0 and "cost" not in data and moved:
                yield from op_body(env, self.network, c.overhead_s, c.compute_s, c.memory_s, moved,
                                   self.mem_of_unit[unit])
                active = min(1.0, c.compute_s / (env.now - start))
                self.busy[unit].append((start, env.now, spec.state(None).power_w(active)))
            elif c.total_s > 0:
                yield env.timeout(c.total_s)
                self.busy[unit].append((start, env.now, watts))
            self.op_records.append(OpRun(op, unit, start, env.now, state, data["flop"], moved))
            self.order[unit].append(op)
            self.running[unit] = None
            self.finished[op] = env.now
            self._release(op)
            newly = []
            for succ in self.succ[op]:
                self.pending[succ] -= 1
                if not self.pending[succ]:
                    newly.append(succ)
            if newly:
                self.ready(newly)
        for u in self.units:  # the last op is done: let every waiting unit end
            if not self.wake[u].triggered:
                self.wake[u].succeed()

    def _release(self, op: str) -> None:
        if self.memory is None or self.nodes[op]["op"] == "view":
            return
        for pred, data in self.pred[op].items():
            if data["bytes"] <= 0:
                continue
            root = self.root[pred]
            self.readers[root] -= 1
            if not self.readers[root]:
                for mem in self.held.pop(root, []):
                    self.memory.free(self.env.now, mem, (root, mem))

    def run(self) -> tuple[Trace, Schedule]:
        self.policy.prepare(self.graph, self.cost)
        processes = [self.env.process(self.unit_process(u)) for u in self.units]
        entries = [op for op, n in self.pending.items() if not n]
        self.env.process(self._start(entries))
        self.env.run()
        if len(self.finished) < len(self.nodes) or not all(p.processed for p in processes):
            stuck = next(op for op in self.nodes if op not in self.finished)
            raise self._refuse(f"op {stuck!r} never ran, expected the policy to place every ready op "
                               "(it left ops in the pool while every unit was idle)")
        trace = build_trace(self.platform, self.graph, self.env.now, self.op_records, self.transfer_records,
                            self.busy, self.memory)
        return trace, self._schedule()

    def _start(self, entries: list[str]):
        self.ready(entries)
        yield self.env.timeout(0)

    def _schedule(self) -> Schedule:
        """What happened, as a Schedule: the assignment, each unit's order and the times."""
        start = {r[0]: r[2] for r in self.op_records}
        return Schedule(self.policy.name, self.placed, {u: tuple(ops) for u, ops in self.order.items() if ops}, {},
                        start, dict(self.finished))


def run_online(graph: nx.DiGraph, policy: OnlinePolicy, cost: CostModel,
               options: SimOptions | None = None) -> tuple[Trace, Schedule, float]:
    """Simulate ``graph`` under online ``policy``: (trace, the schedule it made, policy seconds).

    Examples
    --------
    >>> from hetsim.graph.instances import instance_graph
    >>> from hetsim.spec.abstract import abstract_platform
    >>> from hetsim.sched import get_scheduler
    >>> g, units = instance_graph({"units": ["A", "B"], "tasks": {"a": [1, 2], "b": [3, 1]},
    ...                            "edges": [["a", "b", 5]]})
    >>> trace, schedule, _ = run_online(g, get_scheduler("online_eft"), CostModel(g, abstract_platform(units)))
    >>> trace.makespan_s, dict(schedule.assignment)
    (4.0, {'a': 'A', 'b': 'A'})
    """
    paused = gc.isenabled()
    gc.disable()  # as in the static engine: many small long-lived objects, no cycles to collect mid-run
    try:
        state = _OnlineRun(graph, cost, policy, options or SimOptions())
        trace, schedule = state.run()
        return trace, schedule, state.policy_s
    finally:
        if paused:
            gc.enable()
