"""Metrics: pure functions of a :class:`~hetsim.sim.trace.Trace` (and its platform or graph).

Every number hetsim reports — makespan, energy, utilization, peak memory, critical path — is
computed here from the Trace alone, so a picture and a table can never disagree.

Examples
--------
>>> from hetsim.spec.loader import platform_from_dict
>>> from hetsim.sim.trace import OpRun, PowerSample, Trace
>>> p = platform_from_dict({"name": "toy",
...     "memories": [{"name": "m", "capacity": "1 GB", "bandwidth": "1 GB/s"}],
...     "units": [{"name": "u", "kind": "cpu", "memory": "m", "peak": {"fp32": "1 GFLOP/s"},
...                "power_states": [{"name": "p0", "freq": "1 GHz", "voltage": "1 V",
...                                  "static_power": "10 W", "dynamic_power": "20 W"}]}]})
>>> t = Trace("toy", "g", 2.0, (OpRun("a", "u", 0.0, 1.0, "p0", 1e9, 0.0),), (),
...           (PowerSample(0.0, "u", 30.0), PowerSample(1.0, "u", 10.0)), ())
>>> utilization(t, p)
{'u': 0.5}
>>> unit_energy_j(t, p)
{'u': 40.0}
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from hetsim.errors import SpecError

if TYPE_CHECKING:
    import networkx as nx

    from hetsim.sim.trace import OpRun, Trace
    from hetsim.spec.types import Platform

__all__ = [
    "busy_s", "critical_path", "data_energy_j", "energy_j", "inputs_ready_s", "peak_memory_bytes",
    "summary", "time_by_op_kind_s", "unit_energy_j", "utilization",
]


def _unit_names(trace: Trace, platform: Platform) -> list[str]:
    names = [u.name for u in platform.units]
    known = set(names)
    for run in trace.ops:
        if run.unit not in known:
            raise SpecError(f"trace.ops: op {run.op!r} ran on unit {run.unit!r}, "
                            f"expected a unit of platform {platform.name!r} ({', '.join(names)})")
    for sample in trace.power:
        if sample.unit not in known:
            raise SpecError(f"trace.power: got unit {sample.unit!r}, "
                            f"expected a unit of platform {platform.name!r} ({', '.join(names)})")
    return names


def busy_s(trace: Trace, platform: Platform) -> dict[str, float]:
    """Seconds each unit spent running ops (every platform unit present, 0.0 when idle)."""
    durations: dict[str, list[float]] = {name: [] for name in _unit_names(trace, platform)}
    for run in trace.ops:
        durations[run.unit].append(run.duration_s)
    return {name: math.fsum(values) for name, values in durations.items()}


def utilization(trace: Trace, platform: Platform) -> dict[str, float]:
    """Busy time over makespan per unit (0.0 for every unit when the makespan is 0)."""
    busy = busy_s(trace, platform)
    if trace.makespan_s <= 0:
        return dict.fromkeys(busy, 0.0)
    return {name: value / trace.makespan_s for name, value in busy.items()}


def unit_energy_j(trace: Trace, platform: Platform) -> dict[str, float]:
    """Energy ∫P dt per unit, in joules.

    Power samples are piecewise constant: each holds from its time until the unit's next sample,
    the last one until the makespan; nothing is counted before a unit's first sample. A unit with
    no samples draws the static power of its nominal power state for the whole makespan.
    """
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in _unit_names(trace, platform)}
    for sample in trace.power:
        samples[sample.unit].append((sample.time_s, sample.power_w))
    end = trace.makespan_s
    energy = {}
    for name, points in samples.items():
        if not points:
            energy[name] = platform.unit(name).nominal.static_power_w * max(end, 0.0)
            continue
        points.sort(key=lambda point: point[0])  # stable: equal times keep trace order
        times = [t for t, _ in points[1:]] + [end]
        spans = zip(points, times, strict=True)
        energy[name] = math.fsum(w * max(0.0, min(t_next, end) - t) for (t, w), t_next in spans)
    return energy


def data_energy_j(trace: Trace, platform: Platform) -> dict[str, float]:
    """Energy of moving bytes, per memory and per link, in joules.

    A memory is charged ``energy_per_byte_j`` for every byte that ops on the units working in it
    read or wrote (``OpRun.bytes``); a link for every byte of every transfer routed over it.
    Keys are the platform's memory names then link names, all present (0.0 when unused).
    """
    _unit_names(trace, platform)
    moved: dict[str, list[float]] = {m.name: [] for m in platform.memories}
    for run in trace.ops:
        memory = platform.memory_of(run.unit)
        moved[memory.name].append(run.bytes * memory.energy_per_byte_j)
    link_moved: dict[str, list[float]] = {link.name: [] for link in platform.links}
    for transfer in trace.transfers:
        for name in transfer.links:
            if name not in link_moved:
                raise SpecError(f"trace.transfers: {transfer.src_op!r} -> {transfer.dst_op!r} crosses link "
                                f"{name!r}, expected a link of platform {platform.name!r}")
            link_moved[name].append(transfer.bytes * platform.link(name).energy_per_byte_j)
    energy = {name: math.fsum(values) for name, values in moved.items()}
    for name, values in link_moved.items():
        energy[name] = energy.get(name, 0.0) + math.fsum(values)  # a link named like a memory adds up
    return energy


def energy_j(trace: Trace, platform: Platform) -> float:
    """Total energy in joules: every unit's ∫P dt plus the energy of moving bytes."""
    return math.fsum(unit_energy_j(trace, platform).values()) + math.fsum(data_energy_j(trace, platform).values())


def peak_memory_bytes(trace: Trace, platform: Platform) -> dict[str, float]:
    """Highest ``used_bytes`` seen per memory (every platform memory present, 0.0 if never sampled)."""
    peak = {m.name: 0.0 for m in platform.memories}
    for sample in trace.memory:
        if sample.memory not in peak:
            raise SpecError(f"trace.memory: got memory {sample.memory!r}, "
                            f"expected a memory of platform {platform.name!r} ({', '.join(peak)})")
        peak[sample.memory] = max(peak[sample.memory], float(sample.used_bytes))
    return peak


def _transfer_ends(trace: Trace) -> dict[tuple[str, str], float]:
    ends: dict[tuple[str, str], float] = {}
    for transfer in trace.transfers:
        for consumer in transfer.consumers or (transfer.dst_op,):
            key = (transfer.src_op, consumer)
            ends[key] = max(ends.get(key, transfer.end_s), transfer.end_s)
    return ends


def _arrivals(op: str, graph: nx.DiGraph, runs: dict[str, OpRun],
              transfer_ends: dict[tuple[str, str], float]) -> dict[str, float]:
    """When each input of ``op`` was available to it: producer end, or the end of its transfer."""
    if op not in graph:
        return {}
    return {pred: max(runs[pred].end_s, transfer_ends.get((pred, op), 0.0))
            for pred in graph.predecessors(op) if pred in runs}


def inputs_ready_s(trace: Trace, graph: nx.DiGraph) -> dict[str, float]:
    """Per executed op, the time its last input arrived (0.0 for ops without inputs)."""
    runs = {run.op: run for run in trace.ops}
    ends = _transfer_ends(trace)
    return {op: max(_arrivals(op, graph, runs, ends).values(), default=0.0) for op in runs}


def critical_path(trace: Trace, graph: nx.DiGraph) -> list[str]:
    """The chain of ops that set the makespan, in execution order.

    Starting from the op that finishes last, step back to whatever the op waited for last: the
    graph predecessor whose output arrived latest (its end, or the end of the transfer that
    carried it here), or the previous op on the same unit if that one ended strictly later.
    Ties go to the smaller op id; a predecessor wins a tie with the unit's previous op.
    Predecessors missing from the trace are ignored.
    """
    runs = {run.op: run for run in trace.ops}
    if not runs:
        return []
    ends = _transfer_ends(trace)
    previous: dict[str, OpRun] = {}
    per_unit: dict[str, list[OpRun]] = defaultdict(list)
    for run in sorted(trace.ops, key=lambda r: (r.start_s, r.end_s, r.op)):
        if per_unit[run.unit]:
            previous[run.op] = per_unit[run.unit][-1]
        per_unit[run.unit].append(run)
    current = min(runs.values(), key=lambda r: (-r.end_s, r.op))
    path, seen = [current.op], {current.op}
    while True:
        best: tuple[float, str] | None = None
        for pred, arrival in sorted(_arrivals(current.op, graph, runs, ends).items()):
            if best is None or arrival > best[0]:
                best = (arrival, pred)
        before = previous.get(current.op)
        if before is not None and (best is None or before.end_s > best[0]):
            best = (before.end_s, before.op)
        if best is None or best[1] in seen:  # the guard only trips on an inconsistent trace
            break
        current = runs[best[1]]
        path.append(current.op)
        seen.add(current.op)
    return path[::-1]


def _op_kind(graph: nx.DiGraph | None, op: str) -> str:
    if graph is None or op not in graph:
        return "other"
    return str(graph.nodes[op].get("op", "other"))


def time_by_op_kind_s(trace: Trace, graph: nx.DiGraph | None) -> dict[str, float]:
    """Busy seconds summed over all units per op kind (graph node attribute ``op``), sorted by kind."""
    times: dict[str, list[float]] = defaultdict(list)
    for run in trace.ops:
        times[_op_kind(graph, run.op)].append(run.duration_s)
    return {kind: math.fsum(times[kind]) for kind in sorted(times)}


def summary(trace: Trace, platform: Platform, graph: nx.DiGraph) -> dict[str, Any]:
    """Every headline metric of one simulation as a JSON-ready dict (see the keys below).

    Keys: ``makespan_s``, ``energy_j``, ``energy_by_unit_j``, ``data_energy_j``,
    ``peak_memory_bytes``, ``memory_capacity_bytes``, ``utilization``, ``busy_s``, ``ops``,
    ``transfers``, ``transfer_bytes``, ``flop``, ``achieved_flop_per_s``, ``critical_path_len``,
    ``platform``, ``graph``, ``phase``, ``batch``, ``seq_len``, ``dtype``, ``time_by_op_kind_s``.
    """
    by_unit = unit_energy_j(trace, platform)
    data = data_energy_j(trace, platform)
    flop = math.fsum(run.flop for run in trace.ops)
    makespan = float(trace.makespan_s)
    attrs = graph.graph
    return {
        "platform": trace.platform,
        "graph": trace.graph,
        "phase": attrs.get("phase", ""),
        "batch": attrs.get("batch"),
        "seq_len": attrs.get("seq_len"),
        "dtype": attrs.get("dtype"),
        "makespan_s": makespan,
        "energy_j": math.fsum(by_unit.values()) + math.fsum(data.values()),
        "energy_by_unit_j": by_unit,
        "data_energy_j": data,
        "peak_memory_bytes": peak_memory_bytes(trace, platform),
        "memory_capacity_bytes": {m.name: float(m.capacity_bytes) for m in platform.memories},
        "utilization": utilization(trace, platform),
        "busy_s": busy_s(trace, platform),
        "ops": len(trace.ops),
        "transfers": len(trace.transfers),
        "transfer_bytes": math.fsum(t.bytes for t in trace.transfers),
        "flop": flop,
        "achieved_flop_per_s": flop / makespan if makespan > 0 else 0.0,
        "critical_path_len": len(critical_path(trace, graph)),
        "time_by_op_kind_s": time_by_op_kind_s(trace, graph),
    }
