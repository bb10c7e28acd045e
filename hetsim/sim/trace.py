"""The Trace: the single record of one simulation. Every metric and picture is computed from it.

Times are seconds from the start of the simulation. Power samples are piecewise constant: a
sample gives a unit's power from its ``time_s`` until that unit's next sample (the last one holds
until ``makespan_s``). Memory samples likewise give the bytes in use from ``time_s`` on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

# Records are NamedTuples rather than dataclasses: a trace holds one per op, transfer and sample
# (hundreds of thousands), and tuples are several times cheaper to build.


class OpRun(NamedTuple):
    """One op executed on one unit."""

    op: str
    unit: str
    start_s: float
    end_s: float
    power_state: str
    flop: float
    bytes: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class TransferRun(NamedTuple):
    """One tensor moved from the producer's memory to the consumers', over ``links``.

    A tensor crosses once per destination memory: ``consumers`` are every op there that reads it,
    ``dst_op`` the first of them.
    """

    src_op: str
    dst_op: str
    src_memory: str
    dst_memory: str
    links: tuple[str, ...]
    start_s: float
    end_s: float
    bytes: float
    consumers: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class LaunchRun(NamedTuple):
    """The host issuing kernel launches for ``unit`` (:mod:`hetsim.sim.launch`).

    ``host`` is the platform's CPU unit that launches them, or ``""`` for a host outside the
    platform; ``op`` is the kernel launched (eager) or ``""`` for a whole CUDA graph.
    """

    host: str
    unit: str
    op: str
    start_s: float
    end_s: float


class PowerSample(NamedTuple):
    """``unit`` draws ``power_w`` from ``time_s`` until its next sample."""

    time_s: float
    unit: str
    power_w: float


class MemorySample(NamedTuple):
    """``memory`` holds ``used_bytes`` from ``time_s`` until its next sample."""

    time_s: float
    memory: str
    used_bytes: float


class StateSample(NamedTuple):
    """``unit`` runs at ``freq_hz`` from ``time_s`` until its next sample (power management only)."""

    time_s: float
    unit: str
    freq_hz: float


class TemperatureSample(NamedTuple):
    """``unit``'s temperature at ``time_s`` (thermal model only)."""

    time_s: float
    unit: str
    celsius: float


@dataclass(frozen=True)
class Trace:
    """Everything that happened in one simulation, in the order it happened.

    ``ops`` are sorted by (start, unit, op); ``transfers`` by (start, src_op, dst_op); samples by
    time then name.
    """

    platform: str
    graph: str
    makespan_s: float
    ops: tuple[OpRun, ...]
    transfers: tuple[TransferRun, ...]
    power: tuple[PowerSample, ...]
    memory: tuple[MemorySample, ...]
    frequency: tuple[StateSample, ...] = ()
    temperature: tuple[TemperatureSample, ...] = ()
    launches: tuple[LaunchRun, ...] = ()
