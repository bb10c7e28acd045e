"""Max-min fair sharing of links among concurrent transfers (``contention: fair``).

A transfer first waits its route's latency, then its bytes flow at a rate the network gives it.
Rates follow max-min fairness (Bertsekas & Gallager, *Data Networks*, 2nd ed., §6.5.2), the flow
model of SimGrid (Velho et al., "On the validity of flow-level TCP network models for grid and
cloud simulations", ACM TOMACS 23(4), 2013) without its TCP corrections: by progressive
filling, every link direction shares its effective bandwidth equally among the flows still
growing on it, and a flow stops growing at its most loaded link. Rates are recomputed whenever a
flow joins or leaves. A lone flow gets its route's bottleneck bandwidth, so it arrives exactly
when it would without contention.

A duplex link carries its bandwidth in each direction independently; a half-duplex one shares
it between the two.

Ops share memories the same way (:meth:`FairNetwork.stream`): an op moving ``D`` bytes whose
time alone is ``max(compute, memory)`` streams them at no more than ``D / max(compute, memory)``
— its pace alone — and co-running ops on one memory split its effective bandwidth max-min
fairly. Two memory-bound ops on one memory each take twice as long; compute-bound ops, which ask
for little bandwidth, are not slowed. Transfers are charged to links only, not to the memories
at their ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import simpy

from hetsim.sim.trace import TransferRun
from hetsim.spec.types import Platform

Resource = tuple[str, int]  # (link name, direction: +1 a→b, -1 b→a, 0 both ways share)


class _Flow:
    __slots__ = ("done", "last", "nbytes", "rate", "remaining", "resources", "seq", "version")

    def __init__(self, seq: int, nbytes: float, resources: tuple[Resource, ...], done: Callable[[], None]):
        self.seq, self.nbytes, self.remaining, self.resources, self.done = seq, nbytes, nbytes, resources, done
        self.rate, self.last, self.version = 0.0, 0.0, 0


def max_min_rates(flows: list[tuple[int, tuple[Resource, ...]]], capacity: dict[Resource, float]) -> dict[int, float]:
    """Max-min fair rate of each flow (id, resources) by progressive filling.

    Examples
    --------
    Two flows share link ``l``; one of them also crosses the slower ``m``:

    >>> max_min_rates([(0, (("l", 1),)), (1, (("l", 1), ("m", 1)))], {("l", 1): 10.0, ("m", 1): 2.0})
    {1: 2.0, 0: 8.0}
    """
    left = {r: capacity[r] for _, resources in flows for r in resources}
    users: dict[Resource, dict[int, tuple[Resource, ...]]] = {r: {} for r in left}
    for seq, resources in flows:
        for r in resources:
            users[r][seq] = resources
    rates: dict[int, float] = {}
    while len(rates) < len(flows):
        share, bottleneck = min((left[r] / len(u), r) for r, u in users.items() if u)
        for seq, resources in list(users[bottleneck].items()):
            rates[seq] = share
            for r in resources:
                left[r] = max(0.0, left[r] - share)
                del users[r][seq]
    return rates


class _Links:
    """The link directions of a platform's routes."""

    def __init__(self, env: simpy.Environment, platform: Platform):
        self.env, self.platform = env, platform
        self.capacity: dict[Resource, float] = {}
        self._routes: dict[tuple[str, str], tuple[Resource, ...]] = {}

    def resources(self, src_memory: str, dst_memory: str) -> tuple[Resource, ...]:
        """The link directions a transfer from one memory to another occupies."""
        key = (src_memory, dst_memory)
        if key not in self._routes:
            at, used = src_memory, []
            for name in self.platform.route(src_memory, dst_memory).links:
                link = self.platform.link(name)
                forward = link.a == at
                at = link.b if forward else link.a
                resource = (name, (1 if forward else -1) if link.duplex else 0)
                self.capacity[resource] = link.effective_bandwidth_bytes_per_s
                used.append(resource)
            self._routes[key] = tuple(used)
        return self._routes[key]


class FairNetwork(_Links):
    """The flows in flight on a platform's links and memories, and their max-min fair rates.

    Only flows that share a resource, directly or through other flows, affect each other's
    rates, so a flow joining or leaving re-shares just its connected group; every flow keeps its
    own progress and its own timer.
    """

    def __init__(self, env: simpy.Environment, platform: Platform):
        super().__init__(env, platform)
        self.flows: dict[int, _Flow] = {}
        self.users: dict[Resource, set[int]] = {}
        self._seq = 0

    def send(self, nbytes: float, src_memory: str, dst_memory: str, done: Callable[[], None]) -> None:
        """Move ``nbytes`` between two memories; call ``done()`` when the last byte arrives."""
        route = self.platform.route(src_memory, dst_memory)
        resources = self.resources(src_memory, dst_memory)
        self._seq += 1
        flow = _Flow(self._seq, nbytes, resources, done)
        self.env.timeout(route.latency_s).callbacks.append(lambda _event: self._join(flow))

    def stream(self, nbytes: float, memory: str, cap_bytes_per_s: float, done: Callable[[], None]) -> None:
        """An op streaming ``nbytes`` through ``memory`` at most at ``cap_bytes_per_s``."""
        self._seq += 1
        resource, private = (f"memory:{memory}", 0), ("cap", self._seq)
        if resource not in self.capacity:
            self.capacity[resource] = self.platform.memory(memory).effective_bandwidth_bytes_per_s
        self.capacity[private] = cap_bytes_per_s
        self._join(_Flow(self._seq, nbytes, (resource, private), done))

    # -- internals -------------------------------------------------------------------------
    def _join(self, flow: _Flow) -> None:
        flow.last = self.env.now
        self.flows[flow.seq] = flow
        for r in flow.resources:
            self.users.setdefault(r, set()).add(flow.seq)
        self._reshare(self._group(flow.resources))

    def _group(self, resources: tuple[Resource, ...]) -> list[_Flow]:
        """The flows connected to ``resources`` through shared resources, in arrival order."""
        seen: set[int] = set()
        todo = list(resources)
        visited: set[Resource] = set()
        while todo:
            r = todo.pop()
            if r in visited:
                continue
            visited.add(r)
            for seq in self.users.get(r, ()):
                if seq not in seen:
                    seen.add(seq)
                    todo.extend(self.flows[seq].resources)
        return [self.flows[seq] for seq in sorted(seen)]

    def _reshare(self, group: list[_Flow]) -> None:
        """New rates for ``group``, each flow's progress brought to now, and new timers."""
        if not group:
            return
        now = self.env.now
        rates = max_min_rates([(f.seq, f.resources) for f in group], self.capacity)
        for flow in group:
            flow.remaining -= flow.rate * (now - flow.last)
            flow.last, flow.rate = now, rates[flow.seq]
            flow.version += 1
            version, seq = flow.version, flow.seq
            wait = max(0.0, flow.remaining) / flow.rate
            self.env.timeout(wait).callbacks.append(lambda _event, s=seq, v=version: self._tick(s, v))

    def _tick(self, seq: int, version: int) -> None:
        flow = self.flows.get(seq)
        if flow is None or flow.version != version:
            return  # its rate changed since this timer was set
        del self.flows[seq]
        for r in flow.resources:
            self.users[r].discard(seq)
        self.capacity.pop(("cap", seq), None)
        # bring the others to now at their old rates before sharing anew
        self._reshare(self._group(flow.resources))
        flow.done()


class FifoNetwork(_Links):
    """``contention: fifo``: each link direction carries one transfer at a time, first come first served.

    A transfer waits until it holds every link direction of its route (taken in one fixed order,
    so two transfers never wait for each other crosswise), then takes its route's uncontended
    time, then frees them: a circuit per transfer. A lone transfer takes the same time as without
    contention. Memories are not shared under ``fifo``.
    """

    def __init__(self, env: simpy.Environment, platform: Platform):
        super().__init__(env, platform)
        self.servers: dict[Resource, simpy.Resource] = {}

    def send(self, nbytes: float, src_memory: str, dst_memory: str, done: Callable[[], None]) -> None:
        """Move ``nbytes`` between two memories; call ``done()`` when the last byte arrives."""
        self.env.process(self._carry(nbytes, src_memory, dst_memory, done))

    def _carry(self, nbytes: float, src_memory: str, dst_memory: str, done: Callable[[], None]):
        held = []
        for resource in sorted(self.resources(src_memory, dst_memory)):
            server = self.servers.get(resource)
            if server is None:
                server = self.servers[resource] = simpy.Resource(self.env, capacity=1)
            request = server.request()
            yield request
            held.append((server, request))
        yield self.env.timeout(self.platform.route(src_memory, dst_memory).time_s(nbytes))
        for server, request in held:
            server.release(request)
        done()


def make_network(contention: str, env: simpy.Environment, platform: Platform) -> FairNetwork | FifoNetwork | None:
    """The link model of a contention mode (``None`` for ``none``)."""
    return {"fair": FairNetwork, "fifo": FifoNetwork}.get(contention, lambda *_: None)(env, platform)


def contends(nbytes: float, links: tuple[str, ...], bandwidth_bytes_per_s: float) -> bool:
    """Whether a transfer shares links: bytes to move over a route of finite bandwidth."""
    return nbytes > 0 and bool(links) and math.isfinite(bandwidth_bytes_per_s)


def op_body(env: simpy.Environment, network: FairNetwork, overhead_s: float, compute_s: float, memory_s: float,
            moved: float, memory: str):
    """Run one op's time on its unit, its memory traffic shared with co-running ops (generator).

    The fixed overhead first, then ``moved`` bytes at no more than the op's pace alone.
    """
    if overhead_s > 0:
        yield env.timeout(overhead_s)
    body = max(compute_s, memory_s)
    if moved > 0 and memory_s > 0 and body > 0:
        finished = env.event()
        network.stream(moved, memory, moved / body, finished.succeed)
        yield finished
    elif body > 0:
        yield env.timeout(body)


def move(env: simpy.Environment, network, platform: Platform, nbytes: float, src: str, dst: str,
         records: list, src_op: str, dst_op: str) -> simpy.Event:
    """Move ``nbytes`` from memory ``src`` to ``dst`` (over ``network`` when it shares links, else in
    the route's own time), record it as a transfer from ``src_op`` to ``dst_op``; the arrival event."""
    route = platform.route(src, dst)
    arrived, start = env.event(), env.now

    def land(_event: simpy.Event | None = None) -> None:
        records.append(TransferRun(src_op, dst_op, src, dst, route.links, start, env.now, nbytes, (dst_op,)))
        arrived.succeed()

    if network is not None and contends(nbytes, route.links, route.bandwidth_bytes_per_s):
        network.send(nbytes, src, dst, land)
    else:
        env.timeout(route.time_s(nbytes)).callbacks.append(land)
    return arrived
