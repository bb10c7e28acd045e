"""``memory_policy: offload``: weights that do not fit stay in the next memory and stream in.

When the weights and other persistent inputs of a memory exceed its capacity, those used first in
program order stay, up to ``fill`` of the capacity less two buffers of its largest weight (the
rest is left to activations and fetches); the others stay in the *next level*: the
other memory reachable over the fastest route (highest bandwidth, then lowest latency) that has
room for them — the host DRAM of a GPU, the Grace LPDDR5X of a GH200. Before an op runs, the
offloaded weights it reads cross that route into a temporary buffer in its unit's memory, freed
when the op ends; the fetch for the next op on the unit starts when the current one starts
(double buffering, as FlexGen and DeepSpeed ZeRO-Infinity overlap weight loading with compute:
Sheng et al., ICML 2023; Rajbhandari et al., SC 2021). Fetches are transfers: they contend
under ``fair`` and ``fifo`` like any other.
"""

from __future__ import annotations

from collections import Counter

import simpy

from hetsim.errors import OutOfMemoryError, SpecError
from hetsim.sim.memory import MemoryTracker
from hetsim.sim.network import move
from hetsim.sim.trace import TransferRun
from hetsim.spec.types import Platform


class Offload:
    """Which weights live where, and the fetches that bring offloaded ones in."""

    def __init__(self, env: simpy.Environment, platform: Platform, memory: MemoryTracker, network,
                 records: list[TransferRun], fill: float = 0.9):
        self.env, self.platform, self.memory, self.network, self.records = env, platform, memory, network, records
        self.fill = fill
        self.home: dict[tuple[str, str], str] = {}  # (weight, memory it is read in) -> memory holding it
        self.fetching: dict[str, list[simpy.Event]] = {}

    def place(self, resident: dict[tuple[str, str], float], first_use: dict[str, int]) -> dict[tuple[str, str], float]:
        """Where each (weight, memory) is kept: returns {(weight, holding memory): bytes}.

        ``resident`` maps (weight name, the memory its readers work in) to bytes; ``first_use``
        is the program position of each weight's first reader.
        """
        need: Counter[str] = Counter()
        for (_, memory), nbytes in resident.items():
            need[memory] += nbytes
        largest: Counter[str] = Counter()
        for (_, memory), nbytes in resident.items():
            largest[memory] = max(largest[memory], nbytes)
        kept: dict[tuple[str, str], float] = {}
        used: Counter[str] = Counter()
        spilled: dict[str, list[tuple[str, float]]] = {}
        for (name, memory), nbytes in sorted(resident.items(), key=lambda kv: (kv[0][1], first_use[kv[0][0]])):
            # room for two fetch buffers of the largest weight: the running op's and the next one's
            budget = self.fill * self.memory.capacity[memory] - 2 * largest[memory]
            if need[memory] <= self.memory.capacity[memory] or used[memory] + nbytes <= budget:
                kept[(name, memory)] = nbytes
                used[memory] += nbytes
                self.home[(name, memory)] = memory
            else:
                spilled.setdefault(memory, []).append((name, nbytes))
        for memory, items in sorted(spilled.items()):
            total = sum(nbytes for _, nbytes in items)
            host = self._next_level(memory, total, used)
            used[host] += total
            for name, nbytes in items:
                self.home[(name, memory)] = host
                kept[(name, host)] = kept.get((name, host), 0.0) + nbytes
        return kept

    def _next_level(self, memory: str, nbytes: float, used: Counter[str]) -> str:
        candidates = []
        for other in self.platform.memories:
            if other.name == memory:
                continue
            try:
                route = self.platform.route(other.name, memory)
            except SpecError:  # not linked to it: no candidate
                continue
            room = other.capacity_bytes - used[other.name]
            if room >= nbytes:
                candidates.append((-route.bandwidth_bytes_per_s, route.latency_s, other.name))
        if not candidates:
            raise OutOfMemoryError(f"memory {memory!r}: {nbytes:.0f} bytes ({nbytes / 1e9:.2f} GB) of weights do "
                                   "not fit, expected another memory linked to it with room to offload them")
        return min(candidates)[2]

    def offloaded(self, weights: dict[str, float], memory: str) -> list[tuple[str, float, str]]:
        """(name, bytes, holding memory) of the weights an op in ``memory`` must fetch."""
        return [(name, nbytes, self.home[(name, memory)]) for name, nbytes in weights.items()
                if self.home.get((name, memory), memory) != memory]

    def fetch(self, op: str, wanted: list[tuple[str, float, str]], memory: str) -> list[simpy.Event]:
        """Start (once) the fetches of ``op``'s offloaded weights; the events of their arrival."""
        if op in self.fetching:
            return self.fetching[op]
        events = []
        for name, nbytes, host in wanted:
            self.memory.allocate(self.env.now, memory, (f"fetch:{name}@{op}", memory), nbytes, op)
            events.append(self._move(op, name, nbytes, host, memory))
        self.fetching[op] = events
        return events

    def release(self, op: str, wanted: list[tuple[str, float, str]], memory: str) -> None:
        """Free ``op``'s fetched buffers once it has run."""
        for name, _, _ in wanted:
            self.memory.free(self.env.now, memory, (f"fetch:{name}@{op}", memory))
        self.fetching.pop(op, None)

    def _move(self, op: str, name: str, nbytes: float, src: str, dst: str) -> simpy.Event:
        return move(self.env, self.network, self.platform, nbytes, src, dst, self.records, name, op)
