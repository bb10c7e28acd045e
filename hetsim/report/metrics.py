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

import heapq
import math
from collections import defaultdict
from collections.abc import Mapping
from itertools import pairwise
from typing import TYPE_CHECKING, Any, NamedTuple

from hetsim.errors import SpecError

if TYPE_CHECKING:
    import networkx as nx

    from hetsim.sim.trace import OpRun, Trace
    from hetsim.spec.types import Platform

__all__ = [
    "OpEnergy", "busy_energy_j", "busy_s", "critical_path", "data_energy_j", "energy_j", "inputs_ready_s",
    "op_energy_j", "package_power_steps", "peak_memory_bytes", "power_steps", "summary", "time_by_op_kind_s",
    "tokens", "unit_energy_j", "utilization",
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


def power_steps(trace: Trace, platform: Platform) -> dict[str, list[tuple[float, float]]]:
    """Each unit's power as steps ``[(time_s, W), ...]``, the last one at the makespan.

    The same reading of the samples as :func:`unit_energy_j`: sorted by time, the last of equal
    times kept, none past the makespan; a unit without samples holds its nominal static power
    from 0. Each value holds until the next step's time; the final step repeats the value before
    it, so the list can be drawn as it is.

    Examples
    --------
    >>> from hetsim.spec.loader import platform_from_dict
    >>> from hetsim.sim.trace import PowerSample, Trace
    >>> ps = [{"name": "p0", "freq": "1 GHz", "voltage": "1 V", "static_power": "1 W", "dynamic_power": "9 W"}]
    >>> p = platform_from_dict({"name": "toy", "memories": [{"name": "m", "capacity": "1 GB", "bandwidth": "1 GB/s"}],
    ...     "units": [{"name": "u", "kind": "cpu", "memory": "m", "peak": {"fp32": "1 GFLOP/s"}, "power_states": ps}]})
    >>> power_steps(Trace("toy", "g", 3.0, (), (), (PowerSample(0.0, "u", 10.0), PowerSample(2.0, "u", 1.0)), ()), p)
    {'u': [(0.0, 10.0), (2.0, 1.0), (3.0, 1.0)]}
    """
    points: dict[str, list[tuple[float, float]]] = {name: [] for name in _unit_names(trace, platform)}
    for sample in trace.power:
        points[sample.unit].append((float(sample.time_s), float(sample.power_w)))
    end = float(trace.makespan_s)
    steps = {}
    for name, unit_points in points.items():
        kept: dict[float, float] = {}
        for t, watts in sorted(unit_points, key=lambda point: point[0]):  # stable: the last of a time wins
            if t <= end:
                kept[t] = watts
        if not unit_points:
            kept = {0.0: platform.unit(name).nominal.static_power_w}
        series = sorted(kept.items())
        if series and series[-1][0] < end:
            series.append((end, series[-1][1]))
        steps[name] = series
    return steps


def package_power_steps(trace: Trace, platform: Platform,
                        steps: Mapping[str, list[tuple[float, float]]] | None = None) -> list[tuple[float, float]]:
    """The package's power (every unit's summed) as steps, like :func:`power_steps`.

    A unit adds nothing before its first step. Moving bytes is not in it: memories and links
    are charged per byte (:func:`data_energy_j`), not as power over time. ``steps``: the
    :func:`power_steps` of ``trace`` when the caller already has them.
    """
    per_unit = list((power_steps(trace, platform) if steps is None else steps).values())
    changes = sorted({t for series in per_unit for t, _ in series})
    level = [0.0] * len(per_unit)
    cursor = [0] * len(per_unit)
    steps = []
    for t in changes:
        for i, series in enumerate(per_unit):
            while cursor[i] < len(series) and series[cursor[i]][0] <= t:
                level[i] = series[cursor[i]][1]
                cursor[i] += 1
        steps.append((t, math.fsum(level)))
    return steps


class OpEnergy(NamedTuple):
    """The energy one op run is charged, in joules (see :func:`op_energy_j`)."""

    unit_j: float
    memory_j: float

    @property
    def total_j(self) -> float:
        return self.unit_j + self.memory_j


def _share_unit_energy(series: list[tuple[float, float]], runs: list[OpRun]) -> dict[str, list[float]]:
    """Split one unit's ∫P dt over its ops' runs among the ops running: per op, its pieces."""
    pieces: dict[str, list[float]] = {run.op: [] for run in runs}
    end = series[-1][0] if series else 0.0
    times = sorted({t for t, _ in series} | {min(max(r.start_s, 0.0), end) for r in runs}
                   | {min(max(r.end_s, 0.0), end) for r in runs})
    by_start = sorted(runs, key=lambda r: (r.start_s, r.end_s, r.op))
    active: list[tuple[float, str]] = []  # (end, op) of the ops running, a heap
    watts, step, nxt = 0.0, 0, 0
    for t, t_next in pairwise(times):
        while step < len(series) and series[step][0] <= t:
            watts = series[step][1]
            step += 1
        while active and active[0][0] <= t:
            heapq.heappop(active)
        while nxt < len(by_start) and by_start[nxt].start_s <= t:
            run = by_start[nxt]
            if run.end_s > t:
                heapq.heappush(active, (run.end_s, run.op))
            nxt += 1
        for _, op in active:
            pieces[op].append(watts * (t_next - t) / len(active))
    return pieces


def op_energy_j(trace: Trace, platform: Platform) -> dict[str, OpEnergy]:
    """Per op run, the energy it is charged: its unit's power over its run, and its memory bytes.

    ``unit_j`` is the integral of the unit's power steps (:func:`power_steps`) over the op's
    ``[start_s, end_s]``: the busy power the op draws, at whatever state and activity the trace
    recorded (a power-state change during the op included). Were several ops to overlap on one
    unit, each stretch is split equally among the ops running in it. So the ``unit_j`` of a
    unit's ops add up to its :func:`busy_energy_j`, and with its idle energy to
    :func:`unit_energy_j`.

    ``memory_j`` is ``OpRun.bytes × energy_per_byte_j`` of the memory its unit works in, exactly
    the memory term of :func:`data_energy_j`. Link energy is not attributed to ops: a transfer
    serves an edge (often several consumers) and stays on its links in :func:`data_energy_j`.
    Hence ``Σ total_j + Σ idle energy + Σ link energy == energy_j``.
    """
    runs: dict[str, list[OpRun]] = defaultdict(list)
    for run in trace.ops:
        runs[run.unit].append(run)
    unit_j: dict[str, float] = {}
    for name, series in power_steps(trace, platform).items():
        pieces = _share_unit_energy(series, runs.get(name, []))
        unit_j.update({op: math.fsum(values) for op, values in pieces.items()})
    out = {}
    for run in trace.ops:
        memory = platform.memory_of(run.unit)
        out[run.op] = OpEnergy(unit_j[run.op], run.bytes * memory.energy_per_byte_j)
    return out


def busy_energy_j(trace: Trace, platform: Platform) -> dict[str, float]:
    """Per unit, ∫P dt over the times it ran ops (the rest of :func:`unit_energy_j` is idle energy)."""
    runs: dict[str, list[OpRun]] = defaultdict(list)
    for run in trace.ops:
        runs[run.unit].append(run)
    busy = {}
    for name, series in power_steps(trace, platform).items():
        pieces = _share_unit_energy(series, runs.get(name, []))
        busy[name] = math.fsum(math.fsum(values) for values in pieces.values())
    return busy


def tokens(graph: nx.DiGraph) -> int | None:
    """Tokens one run of ``graph`` processes, from its graph attributes; ``None`` when unknown.

    ``batch × seq_len`` for ``prefill`` and ``train`` (every position is a token), ``batch`` for
    ``decode`` (one new token per sequence); ``None`` for other phases or missing sizes.

    Examples
    --------
    >>> from hetsim.graph.schema import new_graph
    >>> tokens(new_graph("g", phase="prefill", batch=2, seq_len=128)), tokens(new_graph("g", phase="decode", batch=8))
    (256, 8)
    """
    attrs = graph.graph
    phase, batch, seq_len = attrs.get("phase"), attrs.get("batch"), attrs.get("seq_len")
    if not isinstance(batch, int) or batch <= 0:
        return None
    if phase == "decode":
        return batch
    if phase in ("prefill", "train") and isinstance(seq_len, int) and seq_len > 0:
        return batch * seq_len
    return None


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


def flop_utilization(trace: Trace, platform: Platform, dtype: str | None = None) -> float:
    """FLOPs executed / (makespan × the peak FLOP/s of every unit that ran an op), in [0, 1].

    The model FLOPs utilization (MFU) of Chowdhery et al., "PaLM", 2022, App. B, when the graph
    recomputes nothing (hetsim's training steps do not): the peak is each unit's for ``dtype``
    (the graph's compute dtype), or its best when it has none for it.

    Examples
    --------
    >>> from hetsim.sim.trace import OpRun, Trace
    >>> from hetsim.spec.loader import load_platform
    >>> p = load_platform("h100-sxm")
    >>> t = Trace("h100-sxm", "g", 1.0, (OpRun("a", "gpu", 0.0, 1.0, "p0", 494.5e12, 0.0),), (), (), ())
    >>> round(flop_utilization(t, p, "bf16"), 3)
    0.5
    """
    used = {run.unit for run in trace.ops}
    peak = math.fsum(u.peak_flop_per_s.get(dtype) or max(u.peak_flop_per_s.values())
                     for u in platform.units if u.name in used)
    flop = math.fsum(run.flop for run in trace.ops)
    return flop / (trace.makespan_s * peak) if trace.makespan_s > 0 and peak > 0 else 0.0


def summary(trace: Trace, platform: Platform, graph: nx.DiGraph) -> dict[str, Any]:
    """Every headline metric of one simulation as a JSON-ready dict (see the keys below).

    Keys: ``makespan_s``, ``energy_j``, ``energy_by_unit_j``, ``data_energy_j``,
    ``peak_memory_bytes``, ``memory_capacity_bytes``, ``utilization``, ``busy_s``, ``ops``,
    ``transfers``, ``transfer_bytes``, ``flop``, ``achieved_flop_per_s``, ``critical_path_len``,
    ``platform``, ``graph``, ``phase``, ``batch``, ``seq_len``, ``dtype``, ``time_by_op_kind_s``,
    ``tokens`` and ``energy_per_token_j`` (``energy_j / tokens``, see :func:`tokens`; both ``None``
    when the graph's phase or sizes do not say how many tokens it processes), ``mfu`` (see
    :func:`flop_utilization`).
    """
    by_unit = unit_energy_j(trace, platform)
    data = data_energy_j(trace, platform)
    flop = math.fsum(run.flop for run in trace.ops)
    makespan = float(trace.makespan_s)
    attrs = graph.graph
    energy = math.fsum(by_unit.values()) + math.fsum(data.values())
    n_tokens = tokens(graph)
    return {
        "platform": trace.platform,
        "graph": trace.graph,
        "phase": attrs.get("phase", ""),
        "batch": attrs.get("batch"),
        "seq_len": attrs.get("seq_len"),
        "dtype": attrs.get("dtype"),
        "makespan_s": makespan,
        "energy_j": energy,
        "tokens": n_tokens,
        "energy_per_token_j": energy / n_tokens if n_tokens else None,
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
        "mfu": flop_utilization(trace, platform, attrs.get("dtype")),
        "critical_path_len": len(critical_path(trace, graph)),
        "time_by_op_kind_s": time_by_op_kind_s(trace, graph),
    }
