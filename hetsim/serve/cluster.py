"""The serving cluster's event loop: instances, a router, and KV-cache transfers between them.

A plain event loop over three kinds of events (SimPy is for :mod:`hetsim.sim` only, and this
loop needs no processes): a request arrives, an instance ends an iteration, a KV cache lands.
At each event time, in order:

1. instances whose iteration ends now complete it (tokens, finished requests, prefilled
   requests held for a decode instance);
2. KV caches landing now are freed on their prefill instance and join their decode instance;
3. arrivals join the waiting queue of the entry instance (``both`` or ``prefill``) with the
   fewest queued prefill tokens (ties: the first);
4. held requests, first prefilled first, reserve room on the decode instance with the most free
   KV cache that takes them and start their transfer (head-of-line: one that fits nowhere waits);
5. idle decode instances plan their next iteration (requests they preempt go back to the front
   of a prefill instance's queue, to recompute their KV), then idle entry instances plan theirs.

A KV transfer of ``n`` cached tokens moves ``n × kv_bytes_per_token`` bytes from the prefill
instance's ranks to the decode instance's ranks, split evenly over ``max(p, d)`` rank pairs
(rank pair ``k`` joins prefill rank ``k·p // m`` and decode rank ``k·d // m``). Each pair's bytes
take :meth:`hetsim.spec.types.Route.time_s` on the platform route between the two ranks'
memories, and hold every link of that route from start to end: a transfer starts when all its
links are free, so flows sharing a link (one NIC, one switch uplink) go one after another.
Link energy per byte is charged for every byte.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

from hetsim.errors import ScenarioError
from hetsim.serve.instance import Instance, Live
from hetsim.serve.workload import Request
from hetsim.spec.types import Platform, Route


class KVTransfers:
    """When each KV cache lands, with links held first come, first served.

    Parameters
    ----------
    platform : Platform
    kv_bytes_per_token : float
    """

    def __init__(self, platform: Platform, kv_bytes_per_token: float) -> None:
        self.platform = platform
        self.kv_bytes_per_token = kv_bytes_per_token
        self.free_at: dict[str, float] = {}
        self.energy_j = 0.0

    def ship(self, tokens: int, src: tuple[str, ...], dst: tuple[str, ...], t: float) -> float:
        """Start moving ``tokens`` cached tokens from units ``src`` to ``dst`` at ``t``; return when they land."""
        p, d = len(src), len(dst)
        m = max(p, d)
        share = tokens * self.kv_bytes_per_token / m
        end = t
        for k in range(m):
            a = self.platform.unit(src[k * p // m]).memory
            b = self.platform.unit(dst[k * d // m]).memory
            route = self.platform.route(a, b)
            start = max([t, *(self.free_at.get(name, 0.0) for name in route.links)])
            finish = start + route.time_s(share)
            for name in route.links:
                self.free_at[name] = finish
            self.energy_j += route_joules(self.platform, route, share)
            end = max(end, finish)
        return end


def route_joules(platform: Platform, route: Route, nbytes: float) -> float:
    """Link energy of moving ``nbytes`` over ``route`` (every link's energy per byte)."""
    return math.fsum(nbytes * platform.link(name).energy_per_byte_j for name in route.links)


def _least_loaded(instances: list[Instance]) -> Instance:
    return min(instances, key=lambda inst: inst.load_tokens)  # min keeps the first of equals


def run_cluster(requests: list[Request], instances: list[Instance],
                transfers: KVTransfers | None = None) -> tuple[list[Live], float]:
    """Serve ``requests`` on ``instances``; return (every request's final state by id, end time).

    Instances of role ``prefill`` and ``decode`` need ``transfers`` to move KV caches between them.
    """
    entry = [inst for inst in instances if inst.role != "decode"]
    decode = [inst for inst in instances if inst.role == "decode"]
    pending = deque(sorted(requests, key=lambda r: (r.arrival_s, r.id)))
    handoff: deque[tuple[Live, Instance]] = deque()
    inflight: list[tuple[float, int, Live, Instance, Instance]] = []
    done: dict[int, Live] = {}
    t = pending[0].arrival_s if pending else 0.0
    seq = 0
    while True:
        for inst in instances:
            if inst.busy and inst.until <= t:
                end = inst.until
                finished, held = inst.complete()
                for x in finished:
                    x.finish_s = end
                    done[x.req.id] = x
                handoff.extend((x, inst) for x in held)
        while inflight and inflight[0][0] <= t:
            _, _, x, src, dst = heapq.heappop(inflight)
            src.release(x)
            dst.receive(x)
        while pending and pending[0].arrival_s <= t:
            _least_loaded(entry).waiting.append(Live(pending.popleft()))
        while handoff:
            x, src = handoff[0]
            fits = [inst for inst in decode if inst.accepts(x)]
            if not fits:
                break
            dst = max(fits, key=lambda inst: inst.capacity - inst.used)
            handoff.popleft()
            dst.reserve(x)
            landing = transfers.ship(x.kv, src.units, dst.units, t)
            x.transfer_s += landing - t
            heapq.heappush(inflight, (landing, seq, x, src, dst))
            seq += 1
        for inst in decode + entry:
            if not inst.busy:
                step = inst.plan(t)
                if step is not None:
                    inst.start(t, step)
            for victim in inst.evicted:
                _least_loaded(entry).waiting.appendleft(victim)
            inst.evicted.clear()
        times = [inst.until for inst in instances if inst.busy]
        if inflight:
            times.append(inflight[0][0])
        if pending:
            times.append(pending[0].arrival_s)
        if not times:
            if handoff or any(inst.has_work or inst.held for inst in instances):
                raise ScenarioError("serve: no request can be admitted and none is running (KV capacity too small)")
            break
        t = max(t, min(times))
    end = max((x.finish_s for x in done.values()), default=0.0)
    return [done[i] for i in sorted(done)], end


__all__ = ["KVTransfers", "route_joules", "run_cluster"]
