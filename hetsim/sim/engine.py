"""The SimPy engine: execute a Schedule on a Platform and record a Trace.

Each unit is one SimPy process that runs its ops in the schedule's order. An op starts when its
unit is free and all its inputs have arrived; an input produced in another memory arrives after a
transfer over the route between the two memories (one transfer per tensor and destination
memory, shared by every consumer there). Without contention a transfer takes exactly
``latency + bytes / bottleneck bandwidth``, so the simulated times equal the schedule's predicted
ones. Memory use and per-unit power are recorded as they change.
"""

from __future__ import annotations

import contextlib
import gc
from collections import Counter
from dataclasses import dataclass

import networkx as nx
import simpy

from hetsim.cost.collectives import ALGORITHMS
from hetsim.cost.model import CostModel
from hetsim.errors import OutOfMemoryError, ScenarioError, SimulationError
from hetsim.sched.schedule import Schedule
from hetsim.sim.collectives import Collectives
from hetsim.sim.launch import EXECUTION_MODES, host_of, issue_times, launch_records
from hetsim.sim.memory import MemoryTracker, storage_roots
from hetsim.sim.network import FairNetwork, contends, make_network, op_body
from hetsim.sim.offload import Offload
from hetsim.sim.power import PowerManager, PowerOptions
from hetsim.sim.records import build_trace, op_power
from hetsim.sim.trace import OpRun, Trace, TransferRun

CONTENTION_MODES = ("none", "fair", "fifo")
COLLECTIVE_MODES = ("transfers", "analytic")
MEMORY_POLICIES = ("error", "offload")


@dataclass(frozen=True)
class SimOptions:
    """Engine options.

    Parameters
    ----------
    contention : str
        ``"none"``: every transfer gets its route's full bandwidth (the classic scheduling model).
        ``"fair"``: concurrent transfers share each link's bandwidth max-min fairly, and
        co-running ops each memory's (:mod:`hetsim.sim.network`); ``"fifo"``: each link direction
        carries one transfer at a time, in arrival order. Explicit edge costs of classic instances
        stay fixed delays.
    track_memory : bool
        Track capacity over time and raise :class:`~hetsim.errors.OutOfMemoryError` on overflow.
    collective_algorithm : str
        ``"ring"`` or ``"tree"`` (recursive halving/doubling, binomial broadcast), see
        :mod:`hetsim.cost.collectives`, or ``"nccl"``: NCCL's cost model and its choice of
        algorithm (ring, tree, NVLS) and protocol (LL, LL128, Simple) by size and rank count, with
        the platform's ``collectives:`` constants (:mod:`hetsim.cost.nccl`), the default. The
        :class:`~hetsim.cost.model.CostModel` carries the algorithm the engine runs (schedulers
        must estimate the same one), so a cost model built with another algorithm is refused;
        :func:`hetsim.simulate` builds it from this option.
    collective_mode : str
        ``"transfers"``: collectives run their steps as transfers on the links (they contend);
        ``"analytic"``: each takes its alpha-beta (or NCCL) time, no transfers (faster,
        contention-blind).
    memory_policy : str
        When weights do not fit a memory: ``"error"`` (an OutOfMemoryError naming it) or
        ``"offload"`` (keep the overflow in the next memory and stream it in before each use,
        :mod:`hetsim.sim.offload`; static schedules only).
    execution : str
        How kernels are formed and launched (:mod:`hetsim.sim.launch`): ``"eager"`` (one kernel
        per ATen op, launched asynchronously by the host), ``"compiled"`` (torch.compile fusion
        and CUDA-graph replay) or ``"serving"`` (serving-engine kernels: fused projections, RoPE,
        SiLU-and-mul, residual+RMSNorm, FlashAttention and paged attention, CUDA graphs).
        :func:`hetsim.simulate` fuses the graph for the mode (:func:`hetsim.graph.fusion.fuse`);
        the engine runs the launch queue of GPUs that have a kernel-level cost model (online
        policies, :mod:`hetsim.sim.online`, run the fused kernels without it).
    power : PowerOptions or mapping, optional
        Governor, package power cap, gating and thermal model (:mod:`hetsim.sim.power`); all
        off by default (each op at its schedule's state). While they are on, ops do not share
        memory bandwidth (``contention: fair`` then applies to links only).
    """

    contention: str = "none"
    track_memory: bool = True
    collective_algorithm: str = "nccl"
    collective_mode: str = "transfers"
    memory_policy: str = "error"
    power: PowerOptions | None = None
    execution: str = "eager"

    def __post_init__(self) -> None:
        object.__setattr__(self, "power", PowerOptions.parse(self.power))
        for key, allowed in (("contention", CONTENTION_MODES), ("collective_algorithm", ALGORITHMS),
                             ("collective_mode", COLLECTIVE_MODES), ("memory_policy", MEMORY_POLICIES),
                             ("execution", EXECUTION_MODES)):
            if getattr(self, key) not in allowed:
                raise ScenarioError(f"sim.{key}: got {getattr(self, key)!r}, expected one of {', '.join(allowed)}")


def check_algorithm(cost: CostModel, options: SimOptions) -> None:
    """The engine runs the cost model's collective algorithm: refuse options that ask for another."""
    if options.collective_algorithm != cost.collective_algorithm:
        raise ScenarioError(f"sim.collective_algorithm: got {options.collective_algorithm!r}, expected the cost "
                            f"model's {cost.collective_algorithm!r} (build the CostModel with the same algorithm)")


class _Run:
    """State of one simulation; built fresh by :func:`run`.

    Everything an op needs at run time (duration, power, what to release, whom to notify) is
    computed once before the clock starts, so the SimPy loop does little more than wait.
    """

    def __init__(self, graph: nx.DiGraph, schedule: Schedule, cost: CostModel, options: SimOptions):
        self.env = simpy.Environment()
        self.graph, self.schedule, self.cost, self.options = graph, schedule, cost, options
        check_algorithm(cost, options)
        self.platform = cost.platform
        unit_mem = {u.name: u.memory for u in self.platform.units}
        self.unit_of = dict(schedule.assignment)  # a plain dict reads faster than the mapping proxy
        self.mem_of = {op: unit_mem[u] for op, u in schedule.assignment.items()}
        # networkx's public views cost a Python call per access; the hot paths read the plain dicts
        self.succ, self.pred, self.nodes = graph._adj, graph._pred, graph._node
        self.pending = {op: len(preds) for op, preds in self.pred.items()}
        self.waiting: dict[str, simpy.Event] = {}
        self.op_records: list[tuple] = []
        self.transfer_records: list[TransferRun] = []
        self.busy: dict[str, list[tuple[float, float, float]]] = {u.name: [] for u in self.platform.units}
        self.memory = MemoryTracker(self.platform) if options.track_memory else None
        self.network = make_network(options.contention, self.env, self.platform)
        self.collectives = Collectives(self.env, graph, cost, self.network, self.transfer_records,
                                       options.collective_mode == "analytic")
        self.power = PowerManager(self.env, self.platform, cost, options.power) if options.power.active else None
        self.offload = (Offload(self.env, self.platform, self.memory, self.network, self.transfer_records)
                        if self.memory is not None and options.memory_policy == "offload" else None)
        self.fetches: dict[str, list] = {}
        self.launch_records: list[tuple] = []
        self._plan_edges()
        if self.memory is not None:
            self._place_weights()

    # -- planning --------------------------------------------------------------------------
    def _plan_edges(self) -> None:
        """One pass over the edges: whom each op notifies, what it sends, what it frees.

        ``local[op]``: consumers that read ``op``'s output where it is. ``remote[op]``: transfers,
        as (destination memory, consumers): a tensor crosses once per destination memory, except
        edges with an explicit communication cost, which are paid per edge. With memory tracking,
        ``readers[(storage root, memory)]`` counts who must finish before that copy is freed (the
        non-view consumers there, and the transfers out of it), and ``releases[op]`` lists the
        copies ``op`` stops reading when it finishes.
        """
        unit_of, mem_of, nodes = self.unit_of, self.mem_of, self.nodes
        track = self.memory is not None
        root = self.root = storage_roots(self.graph) if track else {}
        local: dict[str, list[str]] = {}
        remote: dict[str, list[tuple]] = {}
        reads: list[tuple[str, str]] = []  # one entry per reader, counted at the end (in C)
        releases: dict[str, list[tuple[str, str]]] = {op: [] for op in nodes}
        is_view = {op: data["op"] == "view" for op, data in nodes.items()}
        for op, succs in self.succ.items():
            unit, mem = unit_of[op], mem_of[op]
            mine: list[str] = []
            groups: dict[tuple, list[str]] | None = None
            op_root = root.get(op)
            for succ, data in succs.items():
                succ_mem = mem_of[succ]
                if (succ_mem == mem and "cost" not in data) or unit_of[succ] == unit:
                    mine.append(succ)
                else:
                    if groups is None:
                        groups = {}
                    group = (succ_mem, succ if "cost" in data else data["bytes"])
                    groups.setdefault(group, []).append(succ)
                if track and not is_view[succ] and data["bytes"] > 0:  # a 0-byte edge only orders
                    key = (op_root, succ_mem)
                    reads.append(key)
                    releases[succ].append(key)
            local[op] = mine
            if groups:
                remote[op] = [self._transfer_plan(op, dst, consumers) for (dst, _), consumers in groups.items()]
                if track:
                    reads.extend([(op_root, mem)] * len(groups))
            else:
                remote[op] = []
        self.local, self.remote, self.readers, self.releases = local, remote, Counter(reads), releases

    def _transfer_plan(self, op: str, dst_mem: str, consumers: list[str]) -> tuple:
        """(destination memory, consumers, bytes, duration, links, shares links) of one transfer
        out of ``op``; the duration is the uncontended one."""
        first = consumers[0]
        nbytes = max(self.succ[op][c]["bytes"] for c in consumers)
        duration = self.cost.comm_time(op, first, self.unit_of[op], self.unit_of[first])
        route = self.platform.route(self.mem_of[op], dst_mem)
        shared = (self.network is not None and "cost" not in self.succ[op][first]
                  and contends(nbytes, route.links, route.bandwidth_bytes_per_s))
        return dst_mem, consumers, nbytes, duration, route.links, shared

    def _place_weights(self) -> None:
        """Weights and other persistent inputs: resident from the start, once per memory."""
        resident: dict[tuple[str, str], float] = {}
        mem_of = self.mem_of
        for op, data in self.nodes.items():
            for name, nbytes in data["weights"].items():
                resident[(f"weight:{name}", mem_of[op])] = nbytes
        if self.offload is not None:
            first_use: dict[str, int] = {}
            for i, data in enumerate(self.nodes.values()):
                for name in data["weights"]:
                    first_use.setdefault(f"weight:{name}", i)
            resident = self.offload.place(resident, first_use)
            for op, data in self.nodes.items():
                wanted = self.offload.offloaded({f"weight:{k}": v for k, v in data["weights"].items()}, mem_of[op])
                if wanted:
                    self.fetches[op] = wanted
        need: Counter[str] = Counter()
        for (_, memory), nbytes in resident.items():
            need[memory] += nbytes
        for memory, nbytes in sorted(need.items()):
            capacity = self.memory.capacity[memory]
            if nbytes > capacity:
                raise OutOfMemoryError(
                    f"memory {memory!r}: weights and other resident inputs need {nbytes:.0f} bytes "
                    f"({nbytes / 1e9:.2f} GB), expected at most its capacity {capacity:.0f} bytes "
                    f"({capacity / 1e9:.2f} GB)")
        for (name, memory), nbytes in sorted(resident.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            self.memory.allocate(0.0, memory, (name, memory), nbytes, name.removeprefix("weight:"))

    def _plan_unit(self, unit: str, ops: tuple[str, ...]) -> list[tuple]:
        """Per op, in order: (op, duration, busy power, state name, output bytes to allocate, flop,
        bytes moved, local consumers, transfers, copies released, the collective it belongs to,
        under fair sharing (cost, busy power at full activity and idle) to stream its traffic, and
        when the host has issued its kernel, or 0)."""
        spec = self.platform.unit(unit)
        issued = issue_times(spec, ops, self.nodes, self.options.execution)
        if issued:
            self.launch_records.extend(launch_records(host_of(self.platform, unit), spec, issued,
                                                      self.options.execution))
        states, cost, nodes = self.schedule.power_state, self.cost, self.nodes
        root = getattr(self, "root", {})
        local, remote, releases = self.local, self.remote, self.releases
        collective_of = self.collectives.of
        plan = []
        for op in ops:
            name = states.get(op) if states else None
            c, watts, state = op_power(cost, spec, op, name)
            data = nodes[op]
            alloc = data["bytes_written"] - data.get("inplace_bytes", 0) if root.get(op) == op else 0
            moved = data["bytes_read"] + data["bytes_written"]
            shared = None
            if isinstance(self.network, FairNetwork) and c.memory_s > 0 and moved > 0 and "cost" not in data:
                shared = (c, spec.state(name))
            plan.append((op, c.total_s, watts, state, alloc, data["flop"], moved, local[op], remote[op],
                         releases[op], collective_of.get(op), shared, issued.get(op, 0.0)))
        return plan

    # -- execution -------------------------------------------------------------------------
    def unit_process(self, unit: str, plan: list[tuple]):
        """Run ``unit``'s ops in order; on each finish, notify consumers and start transfers."""
        env, pending, waiting, records = self.env, self.pending, self.waiting, self.op_records
        memory, mem = self.memory, self.platform.unit(unit).memory
        readers = self.readers
        busy = self.busy[unit]
        start_transfer = self._start_transfer
        new_record = tuple.__new__
        network, fetches, offload, power = self.network, self.fetches, self.offload, self.power
        for i, (op, duration, watts, state, alloc, flop, moved, local, remote, releases, collective,
                shared, issued) in enumerate(plan):
            if pending[op]:
                event = waiting[op] = env.event()
                yield event
            if fetches:  # offloaded weights: this op's must be here; the next op's start coming
                yield from self._fetch(op, plan[i + 1][0] if i + 1 < len(plan) else None, mem)
            if issued > env.now:  # the GPU outran its host: wait for the kernel's launch
                yield env.timeout(issued - env.now)
            start = env.now
            if alloc and memory is not None:
                memory.allocate(start, mem, (op, mem), alloc, op)
            if collective is not None:  # wait for every member, then for the collective's last step
                yield collective.join()
                start, now = collective.start_s, env.now
                if now > start:
                    busy.append((start, now, watts))
            elif power is not None:  # the state, its power and the op's time follow the power manager
                start, now, state = yield from power.run_op(unit, op, self.schedule.power_state.get(op))
            elif shared is not None:  # its memory traffic competes with the ops co-running on its memory
                c, power_state = shared
                yield from op_body(env, network, c.overhead_s, c.compute_s, c.memory_s, moved, mem)
                now = env.now
                busy.append((start, now, power_state.power_w(min(1.0, c.compute_s / (now - start)))))
            elif duration > 0:
                yield env.timeout(duration)
                now = env.now
                busy.append((start, now, watts))
            else:
                now = start
            records.append(new_record(OpRun, (op, unit, start, now, state, flop, moved)))
            if op in fetches:
                offload.release(op, fetches[op], mem)
            if memory is not None:
                for key in releases:
                    readers[key] -= 1
                    if not readers[key]:
                        memory.free(now, key[1], key)
            for succ in local:
                pending[succ] -= 1
                if not pending[succ]:
                    event = waiting.pop(succ, None)
                    if event is not None:
                        event.succeed()
            for transfer in remote:
                start_transfer(op, now, *transfer)

    def _fetch(self, op: str, following: str | None, mem: str):
        """Wait for ``op``'s offloaded weights; start fetching those of the op that follows it."""
        offload, fetches = self.offload, self.fetches
        events = offload.fetch(op, fetches[op], mem) if op in fetches else []
        pending = [e for e in events if not e.processed]
        if pending:
            yield self.env.all_of(pending)
        if following in fetches:
            offload.fetch(following, fetches[following], mem)

    def _arrive(self, op: str) -> None:
        self.pending[op] -= 1
        if not self.pending[op]:
            event = self.waiting.pop(op, None)
            if event is not None:
                event.succeed()

    def _start_transfer(self, op: str, start: float, dst_mem: str, consumers: list[str], nbytes: float,
                        duration: float, links: tuple[str, ...], shared: bool) -> None:
        memory, src_mem = self.memory, self.mem_of[op]
        if memory is not None:
            memory.allocate(start, dst_mem, (self.root[op], dst_mem), nbytes, consumers[0])

        def arrived(_event: simpy.Event | None = None) -> None:
            now = self.env.now
            self.transfer_records.append(TransferRun(op, consumers[0], src_mem, dst_mem, links, start, now, nbytes,
                                                     tuple(consumers)))
            if memory is not None:
                key = (self.root[op], src_mem)
                self.readers[key] -= 1
                if not self.readers[key]:
                    memory.free(now, src_mem, key)
            for consumer in consumers:
                self._arrive(consumer)

        if shared:
            self.network.send(nbytes, src_mem, dst_mem, arrived)
        else:
            self.env.timeout(duration).callbacks.append(arrived)

    def run(self) -> Trace:
        order = self.schedule.order
        done = [self.env.process(self.unit_process(u, self._plan_unit(u, ops))) for u, ops in order.items()]
        if self.power is None:
            self.env.run()
        else:  # the control loops tick forever: run until the units are done
            self.power.start()
            every = self.env.all_of(done)
            # no events left before every unit finished is a deadlock, reported below
            with contextlib.suppress(RuntimeError):
                self.env.run(until=every)
            self.power.finished = True
        if not all(p.processed for p in done):
            stuck = sorted(self.waiting)
            raise SimulationError(f"schedule.order: deadlock, op {stuck[0]!r} never got its inputs "
                                  "(unit orders contradict precedence)")
        return self._trace()

    def _trace(self) -> Trace:
        return build_trace(self.platform, self.graph, self.env.now, self.op_records, self.transfer_records,
                           self.busy, self.memory, self.power, self.launch_records)


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
    # The run allocates hundreds of thousands of small tuples and events that live until it ends;
    # the cyclic garbage collector would rescan them over and over (a third of the run time on a
    # 100k-op graph). Nothing here needs it mid-run, so it is paused and restored after.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _Run(graph, schedule, cost, options or SimOptions()).run()
    finally:
        if paused:
            gc.enable()
