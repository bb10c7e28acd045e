"""The Trace: the single record of one simulation. Every metric and picture is computed from it.

Times are seconds from the start of the simulation. Power samples are piecewise constant: a
sample gives a unit's power from its ``time_s`` until that unit's next sample (the last one holds
until ``makespan_s``). Memory samples likewise give the bytes in use from ``time_s`` on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OpRun:
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


@dataclass(frozen=True)
class TransferRun:
    """One tensor moved from the producer's memory to the consumer's, over ``links``."""

    src_op: str
    dst_op: str
    src_memory: str
    dst_memory: str
    links: tuple[str, ...]
    start_s: float
    end_s: float
    bytes: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class PowerSample:
    """``unit`` draws ``power_w`` from ``time_s`` until its next sample."""

    time_s: float
    unit: str
    power_w: float


@dataclass(frozen=True)
class MemorySample:
    """``memory`` holds ``used_bytes`` from ``time_s`` until its next sample."""

    time_s: float
    memory: str
    used_bytes: float


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
