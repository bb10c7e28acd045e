"""Chrome Trace Event JSON for chrome://tracing and ui.perfetto.dev, built from a Trace.

Layout: process 1 "units" (one thread per unit, then one per GPU whose host's kernel launches
the trace records, ``"<host> launches for <gpu>"``), process 2 "links" (one thread per link),
process 3 "power" (a ``W`` counter per unit, ``"power <unit>"``, and their sum, ``"package power"``;
with power management also ``"frequency <unit>"`` in GHz and ``"temperature <unit>"`` in °C;
both as :func:`~hetsim.report.metrics.power_steps` reads the samples, so integrating them gives
:func:`~hetsim.report.metrics.unit_energy_j`), process 4 "memory" (a ``GB`` counter per memory).
Ops and transfers are complete (``ph: "X"``) slices with ``ts``/``dur`` in µs. Perfetto drops
slices that partially overlap on one thread, so overlapping slices on one unit or link (the
engine lets concurrent transfers share a link) go to extra lanes, threads named ``"<link> #2"``,
``"<link> #3"``, ... :func:`check_chrome_trace` enforces all of this.
"""

from __future__ import annotations

import heapq
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hetsim.errors import SpecError
from hetsim.report._atomic import atomic_write
from hetsim.report.metrics import package_power_steps, power_steps

if TYPE_CHECKING:
    import networkx as nx

    from hetsim.sim.trace import Trace
    from hetsim.spec.types import Platform

__all__ = ["PACKAGE_COUNTER", "assign_lanes", "check_chrome_trace", "chrome_trace", "overlap_tolerance_us",
           "write_chrome_trace"]

PID_UNITS, PID_LINKS, PID_POWER, PID_MEMORY = 1, 2, 3, 4
#: the counter of the units' summed power (unit counters are ``"power <unit>"``, so no unit name clashes)
PACKAGE_COUNTER = "package power"
_PROCESSES = ((PID_UNITS, "units"), (PID_LINKS, "links"), (PID_POWER, "power"), (PID_MEMORY, "memory"))
_US = 1e6


def overlap_tolerance_us(t_us: float) -> float:
    """Slack allowed when comparing slice edges near ``t_us``: 1e-6 µs plus a few float ulps."""
    return 1e-6 + 4 * math.ulp(abs(t_us))


def assign_lanes(intervals: Sequence[tuple[float, float]]) -> list[int]:
    """Greedy interval lanes: each interval goes to the lowest lane free at its start.

    Intervals are taken in (start, end, index) order, so the result is deterministic; intervals
    in one lane never overlap (touching ends are fine).

    Examples
    --------
    >>> assign_lanes([(0.0, 2.0), (1.0, 3.0), (2.0, 4.0), (3.5, 5.0)])
    [0, 1, 0, 1]
    """
    lanes = [0] * len(intervals)
    busy: list[tuple[float, int]] = []  # (end, lane) of lanes in use
    free: list[int] = []  # lanes free again, lowest first
    for i in sorted(range(len(intervals)), key=lambda k: (intervals[k][0], intervals[k][1], k)):
        start, end = intervals[i]
        while busy and busy[0][0] <= start + overlap_tolerance_us(start):
            heapq.heappush(free, heapq.heappop(busy)[1])
        lane = heapq.heappop(free) if free else len(busy)
        heapq.heappush(busy, (end, lane))
        lanes[i] = lane
    return lanes


def _meta(name: str, pid: int, tid: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "ph": "M", "pid": pid, "tid": tid, "args": args}


def _slice_tracks(pid: int, tracks: list[tuple[str, list[dict[str, Any]]]], next_tid: int,
                  events: list[dict[str, Any]], meta: list[dict[str, Any]]) -> int:
    """Give each named track's slices a lane thread id; emit the thread metadata."""
    for track, slices in tracks:
        lanes = assign_lanes([(s["ts"], s["ts"] + s["dur"]) for s in slices])
        for lane in range(max(lanes, default=0) + 1):
            tid = next_tid + lane
            meta.append(_meta("thread_name", pid, tid, {"name": track if lane == 0 else f"{track} #{lane + 1}"}))
            meta.append(_meta("thread_sort_index", pid, tid, {"sort_index": tid}))
        for s, lane in zip(slices, lanes, strict=True):
            events.append({**s, "pid": pid, "tid": next_tid + lane})
        next_tid += max(lanes, default=0) + 1
    return next_tid


def _counter(points: list[tuple[float, float]], end_s: float) -> list[tuple[float, float]]:
    """Samples sorted, the last of equal times kept, none past ``end_s``, plus one at ``end_s``."""
    kept: dict[float, float] = {}
    for t, value in sorted(points, key=lambda p: p[0]):
        if t <= end_s:
            kept[t] = value
    series = sorted(kept.items())
    if series and series[-1][0] < end_s:
        series.append((end_s, series[-1][1]))
    return series


def chrome_trace(trace: Trace, platform: Platform, graph: nx.DiGraph | None = None) -> dict[str, Any]:
    """The Trace as a Chrome Trace Event JSON object (``traceEvents``, ``displayTimeUnit``, ``otherData``).

    With ``graph``, op slices get their op kind as category and their module in ``args``; a fused
    kernel's slice also lists its ``pattern``, ``members`` and their ``targets``.
    """
    nodes = graph.nodes if graph is not None else {}
    unit_slices: dict[str, list[dict[str, Any]]] = {u.name: [] for u in platform.units}
    for run in trace.ops:
        if run.unit not in unit_slices:
            raise SpecError(f"trace.ops: op {run.op!r} ran on unit {run.unit!r}, expected a unit of {platform.name!r}")
        attrs = nodes.get(run.op, {})
        args = {"flop": run.flop, "bytes": run.bytes, "power_state": run.power_state,
                "module": str(attrs.get("module", ""))}
        fused = attrs.get("fused")
        if fused:  # a kernel of several ops (hetsim.graph.fusion): one slice naming them all
            args.update(pattern=str(fused["pattern"]), members=[str(m) for m in fused["members"]],
                        targets=[str(t) for t in fused["targets"]])
        unit_slices[run.unit].append({
            "name": run.op, "cat": str(attrs.get("op", "op")), "ph": "X",
            "ts": run.start_s * _US, "dur": max(0.0, run.duration_s * _US), "args": args,
        })
    link_slices: dict[str, list[dict[str, Any]]] = {link.name: [] for link in platform.links}
    for t in trace.transfers:
        for name in t.links:
            if name not in link_slices:
                raise SpecError(f"trace.transfers: {t.src_op!r} -> {t.dst_op!r} crosses link {name!r}, "
                                f"expected a link of {platform.name!r}")
            link_slices[name].append({
                "name": f"{t.src_op} -> {t.dst_op}", "cat": "transfer", "ph": "X",
                "ts": t.start_s * _US, "dur": max(0.0, t.duration_s * _US),
                "args": {"bytes": t.bytes, "src_memory": t.src_memory, "dst_memory": t.dst_memory,
                         "route": list(t.links)},
            })
    meta = []
    for pid, name in _PROCESSES:
        meta.append(_meta("process_name", pid, 0, {"name": name}))
        meta.append(_meta("process_sort_index", pid, 0, {"sort_index": pid}))
    slices: list[dict[str, Any]] = []
    _slice_tracks(PID_UNITS, list(unit_slices.items()) + _launch_tracks(trace), 1, slices, meta)
    _slice_tracks(PID_LINKS, list(link_slices.items()), 1, slices, meta)
    slices.sort(key=lambda e: (e["pid"], e["tid"], e["ts"], -e["dur"], e["name"]))

    counters = []
    per_unit = power_steps(trace, platform)
    for name, steps in per_unit.items():
        for t, watts in steps:
            counters.append({"name": f"power {name}", "ph": "C", "ts": t * _US, "pid": PID_POWER,
                             "args": {"W": float(watts)}})
    for t, watts in package_power_steps(trace, platform, per_unit):
        counters.append({"name": PACKAGE_COUNTER, "ph": "C", "ts": t * _US, "pid": PID_POWER,
                         "args": {"W": float(watts)}})
    for attr, label, key, scale in (("frequency", "frequency", "GHz", 1e-9), ("temperature", "temperature", "C", 1.0)):
        series: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for time_s, unit, value in getattr(trace, attr):  # power management only
            series[unit].append((time_s, value * scale))
        for unit, points in sorted(series.items()):
            for t, value in _counter(points, trace.makespan_s):
                counters.append({"name": f"{label} {unit}", "ph": "C", "ts": t * _US, "pid": PID_POWER,
                                 "args": {key: float(value)}})
    used: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for sample in trace.memory:
        used[sample.memory].append((sample.time_s, sample.used_bytes))
    for memory in platform.memories:
        for t, nbytes in _counter(used.get(memory.name, []), trace.makespan_s):
            counters.append({"name": f"memory {memory.name}", "ph": "C", "ts": t * _US, "pid": PID_MEMORY,
                             "args": {"GB": nbytes / 1e9}})
    return {
        "traceEvents": meta + slices + counters,
        "displayTimeUnit": "ns",
        "otherData": {"generator": "hetsim", "platform": trace.platform, "graph": trace.graph,
                      "makespan_s": trace.makespan_s, "time_unit": "us"},
    }


def _launch_tracks(trace: Trace) -> list[tuple[str, list[dict[str, Any]]]]:
    """The host's kernel launches (:mod:`hetsim.sim.launch`), one track per (host, GPU), after the units."""
    tracks: dict[str, list[dict[str, Any]]] = {}
    for x in trace.launches:
        track = f"{x.host} launches for {x.unit}" if x.host else f"host of {x.unit}: launches"
        tracks.setdefault(track, []).append({
            "name": f"launch {x.op}" if x.op else "CUDA graph launch", "cat": "launch", "ph": "X",
            "ts": x.start_s * _US, "dur": max(0.0, (x.end_s - x.start_s) * _US), "args": {"unit": x.unit}})
    return list(tracks.items())


def write_chrome_trace(trace: Trace, platform: Platform, path: str | Path, graph: nx.DiGraph | None = None) -> Path:
    """Write :func:`chrome_trace` to ``path`` as JSON (atomically: a temporary file, then a rename)."""
    obj = chrome_trace(trace, platform, graph)
    text = json.dumps(obj, allow_nan=False, separators=(",", ":"))
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


_META_NAMES = {"process_name": "name", "thread_name": "name", "process_sort_index": "sort_index",
               "thread_sort_index": "sort_index"}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _require(ev: dict[str, Any], where: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        if key not in ev:
            raise ValueError(f"{where}: ph {ev['ph']!r} event lacks required field {key!r}")
    if not isinstance(ev["name"], str) or not ev["name"]:
        raise ValueError(f"{where}: name must be a non-empty string, got {ev['name']!r}")
    for key in ("pid", "tid"):
        if key in ev and (not isinstance(ev[key], int) or isinstance(ev[key], bool)):
            raise ValueError(f"{where}: {key} must be an integer, got {ev[key]!r}")
    for key in ("ts", "dur"):
        if key in ev and (not _is_number(ev[key]) or ev[key] < 0):
            raise ValueError(f"{where}: {key} must be a finite number >= 0 (µs), got {ev[key]!r}")
    if "args" in ev and not isinstance(ev["args"], dict):
        raise ValueError(f"{where}: args must be an object, got {ev['args']!r}")


def _check_meta(ev: dict[str, Any], where: str) -> None:
    _require(ev, where, ("name", "ph", "pid", "args"))
    key = _META_NAMES.get(ev["name"])
    if key is None:
        raise ValueError(f"{where}: unknown metadata name {ev['name']!r}, expected one of {', '.join(_META_NAMES)}")
    if ev["name"].startswith("thread_") and "tid" not in ev:
        raise ValueError(f"{where}: {ev['name']} lacks required field 'tid'")
    value = ev["args"].get(key)
    ok = isinstance(value, str) and value if key == "name" else isinstance(value, int) and not isinstance(value, bool)
    if not ok:
        raise ValueError(f"{where}: {ev['name']} needs args.{key}, got {ev['args']!r}")


def _check_nesting(tracks: dict[tuple[int, int], list[tuple[float, float, str]]]) -> None:
    for (pid, tid), slices in sorted(tracks.items()):
        open_slices: list[tuple[float, str]] = []  # (end, name) of enclosing slices, innermost last
        for ts, end, name in sorted(slices, key=lambda s: (s[0], -s[1], s[2])):
            while open_slices and open_slices[-1][0] <= ts + overlap_tolerance_us(ts):
                open_slices.pop()
            if open_slices and end > open_slices[-1][0] + overlap_tolerance_us(end):
                outer_end, outer = open_slices[-1]
                raise ValueError(f"pid {pid} tid {tid}: slices {outer!r} and {name!r} partially overlap "
                                 f"({ts} < {outer_end} < {end} µs), expected nested or disjoint")
            open_slices.append((end, name))


def check_chrome_trace(obj: Any) -> None:
    """Raise ``ValueError`` with a one-line reason unless ``obj`` is a well-formed trace we would emit.

    Checks: a ``{"traceEvents": [...]}`` object (or a bare list) that is valid JSON (no NaN);
    only ``X``, ``C`` and ``M`` events, each with its required fields; ``ts``/``dur`` finite
    numbers >= 0; integer ``pid``/``tid``; X slices on one (pid, tid) either nested or disjoint;
    counters with non-empty numeric ``args``, the same series keys at every sample and at most one
    sample per time stamp.

    Examples
    --------
    >>> check_chrome_trace({"traceEvents": [
    ...     {"name": "a", "ph": "X", "ts": 0, "dur": 2, "pid": 1, "tid": 1},
    ...     {"name": "b", "ph": "X", "ts": 1, "dur": 2, "pid": 1, "tid": 1}]})
    Traceback (most recent call last):
    ...
    ValueError: pid 1 tid 1: slices 'a' and 'b' partially overlap (1 < 2 < 3 µs), expected nested or disjoint
    """
    if isinstance(obj, dict):
        events = obj.get("traceEvents")
        if not isinstance(events, list):
            raise ValueError(f"traceEvents: got {type(events).__name__}, expected a list of events")
        unit = obj.get("displayTimeUnit", "ms")
        if unit not in ("ms", "ns"):
            raise ValueError(f"displayTimeUnit: got {unit!r}, expected 'ms' or 'ns'")
    elif isinstance(obj, list):
        events = obj
    else:
        raise ValueError(f"trace: got {type(obj).__name__}, expected an object with traceEvents or a list")
    try:
        json.dumps(obj, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"trace is not valid JSON: {exc}") from None
    tracks: dict[tuple[int, int], list[tuple[float, float, str]]] = defaultdict(list)
    series: dict[tuple[int, str], tuple[frozenset[str], set[float]]] = {}
    for i, ev in enumerate(events):
        where = f"traceEvents[{i}]"
        if not isinstance(ev, dict):
            raise ValueError(f"{where}: got {type(ev).__name__}, expected an event object")
        ph = ev.get("ph")
        if ph == "X":
            _require(ev, where, ("name", "ph", "ts", "dur", "pid", "tid"))
            tracks[(ev["pid"], ev["tid"])].append((ev["ts"], ev["ts"] + ev["dur"], ev["name"]))
        elif ph == "C":
            _require(ev, where, ("name", "ph", "ts", "pid", "args"))
            args = ev["args"]
            if not args or not all(isinstance(k, str) and _is_number(v) for k, v in args.items()):
                raise ValueError(f"{where}: counter {ev['name']!r} needs args of finite numbers, got {args!r}")
            keys, times = series.setdefault((ev["pid"], ev["name"]), (frozenset(args), set()))
            if frozenset(args) != keys:
                raise ValueError(f"{where}: counter {ev['name']!r} series changed "
                                 f"from {sorted(keys)} to {sorted(args)}")
            if ev["ts"] in times:
                raise ValueError(f"{where}: counter {ev['name']!r} has two samples at ts {ev['ts']} µs")
            times.add(ev["ts"])
        elif ph == "M":
            _check_meta(ev, where)
        else:
            raise ValueError(f"{where}: got ph {ph!r}, expected 'X', 'C' or 'M'")
    _check_nesting(tracks)
