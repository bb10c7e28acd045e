"""Collectives in the engine: members meet, then the algorithm's steps cross the links.

A collective has one member op per rank, each pinned to its rank's unit. A unit that reaches a
member (its inputs arrived) joins and waits; when the last member joins, the collective starts:
its steps (:func:`hetsim.cost.collectives.collective_steps`) run one after the other, the
transfers of a step at once, each over the route between the two ranks' memories — under
``contention: fair`` they share links with every other transfer. Every member finishes when the
last step has arrived. With ``collective_mode: analytic`` the collective takes its alpha-beta
time instead (:meth:`hetsim.cost.model.CostModel.time`), with no transfers: faster, and blind to
contention. With ``collective_algorithm: nccl`` the steps are those of NCCL's choice
(:meth:`hetsim.cost.nccl.NcclModel.plan`): each waits its share of NCCL's latency and bandwidth
time beyond what its transfers take, so alone on idle links it takes the analytic time. Staging
buffers and the reduction's arithmetic are not modelled.
"""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx
import simpy

from hetsim.cost.collectives import collective_steps
from hetsim.cost.model import CostModel
from hetsim.cost.nccl import NcclModel
from hetsim.sim.network import FairNetwork, move
from hetsim.sim.trace import TransferRun


class CollectiveRun:
    """One collective in flight: who has joined, and the event every member waits for."""

    def __init__(self, env: simpy.Environment, members: dict[str, str], data: dict, cost: CostModel,
                 send: Callable[[str, str, float], simpy.Event], analytic: bool, nccl: NcclModel | None = None):
        self.env, self.members, self.send = env, members, send
        self.ranks = tuple(data["ranks"])
        self.kind, self.nbytes = data["collective"], data["comm_bytes"]
        self.algorithm = cost.algorithm_for(self.ranks)
        self.nccl = nccl if self.algorithm == "nccl" else None
        self.analytic_s = cost.time(members[self.ranks[0]], self.ranks[0]) if analytic else None
        self.joined = 0
        self.start_s = 0.0
        self.done = env.event()

    def join(self) -> simpy.Event:
        """A member's unit arrives; the last one starts the collective. Wait on the result."""
        self.joined += 1
        if self.joined == len(self.ranks):
            self.start_s = self.env.now
            self.env.process(self._run())
        return self.done

    def _run(self):
        if self.analytic_s is not None:
            if self.analytic_s > 0:
                yield self.env.timeout(self.analytic_s)
        elif self.nccl is not None:
            ranks, members = self.ranks, self.members
            for step in self.nccl.plan(self.kind, ranks, self.nbytes).steps:
                if step.wait_s > 0:
                    yield self.env.timeout(step.wait_s)
                if step.transfers:
                    yield self.env.all_of([self.send(members[ranks[a]], members[ranks[b]], nbytes)
                                           for a, b, nbytes in step.transfers])
        else:
            ranks, members = self.ranks, self.members
            for step in collective_steps(self.kind, self.algorithm, len(ranks), self.nbytes):
                arrivals = [self.send(members[ranks[a]], members[ranks[b]], nbytes) for a, b, nbytes in step]
                yield self.env.all_of(arrivals)
        self.done.succeed()


class Collectives:
    """Every collective of a run, keyed by member op.

    ``send(src_op, dst_op, bytes)`` moves one step's message between the members' memories and
    records it in ``records`` (as a :class:`~hetsim.sim.trace.TransferRun` from one member to
    the other), sharing links when a ``network`` is given.
    """

    def __init__(self, env: simpy.Environment, graph: nx.DiGraph, cost: CostModel, network: FairNetwork | None,
                 records: list[TransferRun], analytic: bool):
        self.env, self.cost, self.network, self.records = env, cost, network, records
        platform = cost.platform
        self.platform = platform
        memory = {u.name: u.memory for u in platform.units}
        self.mem_of: dict[str, str] = {}
        groups: dict[str, dict[str, str]] = {}
        first: dict[str, dict] = {}
        for op, data in graph.nodes(data=True):
            if data["op"] == "collective" and "group" in data:
                groups.setdefault(data["group"], {})[data["pin"]] = op
                first.setdefault(data["group"], data)
                self.mem_of[op] = memory[data["pin"]]
        self.of: dict[str, CollectiveRun] = {}
        nccl = cost.nccl if cost.collective_algorithm == "nccl" and not analytic else None
        for group, members in groups.items():
            run = CollectiveRun(env, members, first[group], cost, self.send, analytic, nccl)
            for op in members.values():
                self.of[op] = run

    def send(self, src_op: str, dst_op: str, nbytes: float) -> simpy.Event:
        return move(self.env, self.network, self.platform, nbytes, self.mem_of[src_op], self.mem_of[dst_op],
                    self.records, src_op, dst_op)
