"""From a run's raw records to its Trace: busy power per op, power samples, sorting."""

from __future__ import annotations

from operator import itemgetter

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.cost.roofline import OpCost
from hetsim.sim.memory import MemoryTracker
from hetsim.sim.power import PowerManager
from hetsim.sim.trace import LaunchRun, MemorySample, PowerSample, StateSample, TemperatureSample, Trace, TransferRun
from hetsim.spec.types import ComputeUnit, Platform


def op_power(cost: CostModel, unit: ComputeUnit, op: str, state: str | None) -> tuple[OpCost, float, str]:
    """(cost, busy power in W, power state name) of ``op`` on ``unit`` at ``state`` (nominal if None)."""
    c = cost.op_cost_at(op, unit.name, state)
    spec = unit.state(state)
    return c, spec.power_w(c.activity), spec.name


def power_samples(platform: Platform, unit: str, busy: list[tuple[float, float, float]]) -> list[tuple]:
    """The unit's power over time from its busy intervals (start, end, W): one sample per change.

    Power steps to the op's busy power at its start and back to idle at its end; at an instant
    where one op ends and the next starts, only the last value is kept.
    """
    idle = platform.unit(unit).nominal.static_power_w
    times, watts = [0.0], [idle]
    for start, end, busy_w in busy:
        for t, w in ((start, busy_w), (end, idle)):
            if watts[-1] == w:
                continue
            if times[-1] == t:
                watts[-1] = w
                if len(watts) > 1 and watts[-2] == w:
                    times.pop()
                    watts.pop()
            else:
                times.append(t)
                watts.append(w)
    return [(t, unit, w) for t, w in zip(times, watts, strict=True)]


def build_trace(platform: Platform, graph: nx.DiGraph, makespan_s: float, op_records: list[tuple],
                transfer_records: list[TransferRun], busy: dict[str, list], memory: MemoryTracker | None,
                power: PowerManager | None = None, launches: list[tuple] | None = None) -> Trace:
    """Sort a run's records into its Trace (power from busy intervals, or from the power manager)."""
    op_records.sort(key=itemgetter(2, 1, 0))  # start, unit, op
    if power is None:
        watts = sorted(sample for unit in busy for sample in power_samples(platform, unit, busy[unit]))
        freq, temp = [], []
    else:
        watts, freq, temp = (changes(log, makespan_s) for log in (power.power_log, power.freq_log, power.temp_log))
    samples = memory.sorted_samples() if memory else []
    transfer_records.sort(key=itemgetter(5, 0, 1))  # start, src_op, dst_op
    new = tuple.__new__
    return Trace(platform.name, graph.graph.get("name", ""), makespan_s, tuple(op_records),
                 tuple(transfer_records), tuple([new(PowerSample, p) for p in watts]),
                 tuple([new(MemorySample, m) for m in samples]), tuple([new(StateSample, f) for f in freq]),
                 tuple([new(TemperatureSample, t) for t in temp]),
                 tuple(sorted(new(LaunchRun, r) for r in launches or ())))


def changes(log: list[tuple[float, str, float]], end: float) -> list[tuple[float, str, float]]:
    """One sample per change and per unit, the last value at any instant, nothing after ``end``.

    Examples
    --------
    >>> changes([(0.0, "u", 1.0), (0.0, "u", 2.0), (1.0, "u", 2.0), (2.0, "u", 3.0), (9.0, "u", 4.0)], 5.0)
    [(0.0, 'u', 2.0), (2.0, 'u', 3.0)]
    """
    last: dict[str, list[tuple[float, str, float]]] = {}
    for t, unit, value in log:  # the log is in time order
        if t > end:
            continue
        rows = last.setdefault(unit, [])
        if rows and rows[-1][0] == t:
            rows.pop()
        if not rows or rows[-1][2] != value:
            rows.append((t, unit, value))
    return sorted(row for rows in last.values() for row in rows)
