"""NCCL's collective cost model on a hetsim platform, and the steps that replay its choice.

NCCL times a collective of ``n`` bytes with each (algorithm, protocol) pair as
``latency + n / bandwidth`` and runs the fastest (``ncclTopoTuneModel`` and
``ncclTopoGetAlgoTime`` in ``src/graph/tuning.cc``, NCCL 2.20.3, github.com/NVIDIA/nccl at
``b6475625fbcaa2c3c0e50eed2fa1255d7514d4a2``). This module computes the same table from a
platform's routes and :class:`~hetsim.spec.nccl.NcclParams`:

* **Algorithms**: ``ring`` (every collective), ``tree`` (all-reduce only) and ``nvls`` (NVLink
  SHARP: all-reduce on one node of more than 2 ranks whose hops are NVLink through one common
  switch, when ``params.nvls`` says the switch supports it — NCCL needs a Hopper NVSwitch).
  **Protocols**: ``LL``, ``LL128`` (only where every intra-node hop is NVLink, as NCCL enables it
  by default) and ``Simple``. All-to-all and send/recv are point-to-point (``p2p``): LL up to
  ``p2p_ll_threshold`` bytes, Simple above, as NCCL's ``P2P_LL_THRESHOLD``. A send/recv's time is
  the sender's: its first ``p2p_buffer`` bytes leave at ``p2p_buffer_efficiency`` × the route
  bandwidth (handed to buffers), the rest at ``p2p_efficiency`` × it (none buffered by default).
* **Latency**: ring ``base + (nsteps − nInter)·intra + nInter·inter`` with ``nsteps = 2(p−1)``
  for all-reduce and ``p−1`` for all-gather and reduce-scatter; tree
  ``base + 2·((p/nodes − 1)·intra + log2(nodes)·inter)``; NVLS its per-switch latency.
  ``nInter = 2(nodes−1)`` (all-reduce) is NCCL 2.7's count (commit ``01afd20a``): 2.20's
  ``2·nodes`` exceeds ``nsteps`` with one rank per node. A multi-node ring Simple all-reduce
  pays ``ring_plateau`` × its latency from 64 KiB per 16 ranks on (2.7's threshold, 2.20's factor).
* **Bandwidth**: the Simple ring's bus bandwidth is the slower of ``bus_efficiency[intra
  class] ×`` the intra-node ring hop bandwidth and ``bus_efficiency["net"] ×`` the network
  bandwidth out of the slowest node; NCCL's protocol factors follow (LL ¼, capped at
  ``ll_max_bus_bw``; LL128 0.92, 0.7 with one rank per node, capped at ``ll128_max_bus_bw``;
  tree 0.92, tree LL /3.8, tree LL128 7/9 on one node, 120/128 across nodes) and the
  bus-to-algorithm ratio (ring ``p/nsteps``, tree ½). Tree bandwidth is scaled by NCCL's
  ``treeCorrectionFactor`` for the size. NVLS is ``nvls_speedup`` × the Simple ring. NCCL's other
  per-channel caps (tree) are left out: they need the channel count its topology search finds.

**Hops from the platform.** A rank's node is the text before the first ``.`` of its memory's
name (the presets' multi-node convention: ``n0.hbm3``, ``h.hbm0``; a name without a dot belongs to
the one unnamed node). Intra-node hops are the routes between consecutive ranks of the ring in
one node: their link class is ``pcie`` if any link on them is named with ``pcie``, else
``nvlink`` (NVLink, NVSwitch, xGMI, ICI, C2C); their bandwidth is each route's bottleneck when
all of the ring's intra-node hops run at once, link directions shared equally. The network
bandwidth of a multi-node collective is the maximum flow from one node's rank memories to the
other nodes' ones over the link graph (transit through memories that are not ranks excluded, unless
the network cannot be reached otherwise), the least over the nodes: NCCL spreads its channels over
all of a node's NICs.

**Replay as transfers.** :meth:`NcclModel.plan` turns the choice into steps the engine runs on the
links: the ring's ``collective_steps`` (all-reduce, all-gather, reduce-scatter), a fully
pipelined chain for ring broadcast (every hop carries the buffer at once), a chain up then down
for the tree (NCCL's intra-node tree is a chain), pairwise exchange for all-to-all, one
transfer for send/recv. A ring or tree transfer between two nodes is spread over the nodes' rank
pairs (the j-th rank of one to the j-th of the other, an equal share each), as NCCL's channels
cross through every GPU's NIC. Step ``s`` is given ``latency/steps`` and its share (by bytes) of the
bandwidth time, and waits ``wait_s`` before its transfers so that alone on idle links it takes
``max(share, the slowest transfer's own route time)``. A lone collective therefore takes its
plan's ``time_s`` in transfer mode exactly as in analytic mode (links are never faster than the
platform says, so ``time_s`` can exceed NCCL's prediction where a step's route latency is longer
than its share). Under contention the transfers slow down and the waits do not. NVLS has no
transfers (a multicast through the switch has no memory-to-memory route): it waits its time.

Examples
--------
>>> from hetsim.spec.loader import load_platform
>>> m = NcclModel(load_platform("dgx-h100"))
>>> gpus = [f"gpu{i}" for i in range(8)]
>>> small, large = m.plan("all_reduce", gpus, 64e3), m.plan("all_reduce", gpus, 1e9)
>>> (small.choice.algorithm, small.choice.protocol), (large.choice.algorithm, large.choice.protocol)
(('ring', 'LL'), ('ring', 'Simple'))
>>> round(large.nccl_s * 1e3, 3)
4.741
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np

from hetsim.cost.collectives import collective_steps
from hetsim.spec.nccl import NcclParams
from hetsim.spec.types import Link, Platform

KINDS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all", "send_recv")
P2P_KINDS = ("all_to_all", "send_recv")

# tuning.cc treeCorrectionFactor[protocol][log2(nBytes >> 6)], 64 B to 256 MiB (NCCL 2.20.3), then 1.0 beyond
_TREE_CORRECTION = {
    "LL": np.array([1.0, 1.0, 1.0, 1.0, .9, .8, .7, .7, .7, .7, .6, .5, .4, .4, .5, .6, .7, .8, .9, 1.0, 1.0, 1.0,
                    1.0, 1.0]),
    "LL128": np.array([1.0, 1.0, 1.0, 1.0, 1.0, .9, .8, .8, .8, .7, .6, .6, .6, .6, .6, .6, .8, .9, .9, .9, .9, 1.0,
                       1.0, 1.0]),
    "Simple": np.array([.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .6, .7, .8, .7, .7, .8, .9, .9,
                        1.0]),
}
# tuning.cc ncclTopoTuneModel bandwidth refinements (NCCL 2.20.3)
_RING_LL, _RING_LL_GATHER = 1 / 4, 1 / 3
_RING_LL128, _RING_LL128_ONE_PER_NODE = 0.92, 0.7
_TREE, _TREE_LL, _TREE_LL128_ONE_NODE, _TREE_LL128 = 0.92, 1 / 3.8, 7 / 9, 120 / 128
_TREE_RATIO = 0.5
_P2P_LL = 1 / 4  # assumption: LL point-to-point at the ring's LL factor (NCCL's tuner has no p2p table)


def node_of(memory: str) -> str:
    """The node a memory belongs to: its name up to the first ``.`` (``""`` without one).

    Examples
    --------
    >>> node_of("n1.hbm3"), node_of("hbm3")
    ('n1', '')
    """
    return memory.split(".", 1)[0] if "." in memory else ""


@dataclass(frozen=True)
class CommShape:
    """What NCCL's tuner sees of a communicator: ranks, nodes, link class and bandwidths.

    ``intra_bw`` is the bottleneck of the ring's intra-node hops (``inf`` without any),
    ``inter_bw`` the network bandwidth out of the slowest node (``inf`` on one node); both in
    bytes/s of the routes' effective bandwidth. ``one_switch``: every intra-node hop crosses one
    common switch on one node (an NVSwitch, where NVLS can reduce).
    """

    ranks: int
    nodes: int
    intra: str
    intra_bw: float
    inter_bw: float
    one_switch: bool = False

    @property
    def ppn(self) -> float:
        """Ranks per node."""
        return self.ranks / self.nodes

    @property
    def hw(self) -> str:
        """The link class of the collective's slowest hop: ``net`` across nodes, else the intra class."""
        return "net" if self.nodes > 1 else self.intra


def _directions(platform: Platform, src: str, dst: str) -> list[tuple[Link, int]]:
    """The links of the route from ``src`` to ``dst``, each with the direction used (0: half duplex)."""
    at, out = src, []
    for name in platform.route(src, dst).links:
        link = platform.link(name)
        forward = link.a == at
        at = link.b if forward else link.a
        out.append((link, (1 if forward else -1) if link.duplex else 0))
    return out


def _node_egress(platform: Platform, memories: Sequence[str], transit: bool = False) -> float:
    """Max flow from one node's rank memories to the other nodes', least over the nodes; through
    memories that are not ranks only when there is no other way (``transit``)."""
    nodes = sorted({node_of(m) for m in memories})
    if len(nodes) < 2:
        return math.inf
    ranks = set(memories)
    others = set() if transit else {m.name for m in platform.memories} - ranks
    g = nx.DiGraph()
    for link in platform.links:
        if link.a in others or link.b in others:
            continue
        cap = link.effective_bandwidth_bytes_per_s / (1 if link.duplex else 2)
        for u, v in ((link.a, link.b), (link.b, link.a)):
            g.add_edge(u, v, capacity=g[u][v]["capacity"] + cap if g.has_edge(u, v) else cap)
    best = math.inf
    for node in nodes:
        flow = g.copy()
        for m in ranks:
            if node_of(m) == node:
                flow.add_edge("\0source", m)
            else:
                flow.add_edge(m, "\0sink")
        best = min(best, nx.maximum_flow_value(flow, "\0source", "\0sink"))
    return _node_egress(platform, memories, True) if best == 0 and not transit else best


def comm_shape(platform: Platform, memories: Sequence[str]) -> CommShape:
    """The :class:`CommShape` of ranks whose memories are ``memories``, in ring order.

    Examples
    --------
    >>> from hetsim.spec.loader import load_platform
    >>> s = comm_shape(load_platform("2x-dgx-h100-ib"), ["n0.hbm0", "n0.hbm1", "n1.hbm0", "n1.hbm1"])
    >>> s.nodes, s.intra, round(s.intra_bw / 1e9, 1), round(s.inter_bw / 1e9, 1)
    (2, 'nvlink', 373.5, 80.0)
    """
    p = len(memories)
    hops = [(memories[i], memories[(i + 1) % p]) for i in range(p)] if p > 1 else []
    intra = [(a, b) for a, b in hops if a != b and node_of(a) == node_of(b)]
    routes = {hop: _directions(platform, *hop) for hop in intra}
    load = Counter((link.name, d) for hop in intra for link, d in routes[hop])
    intra_bw = min((min(link.effective_bandwidth_bytes_per_s / load[(link.name, d)] for link, d in routes[hop])
                    for hop in intra if routes[hop]), default=math.inf)
    pcie = any("pcie" in link.name.lower() for hop in intra for link, _ in routes[hop])
    switches = set(platform.switches)
    crossed = [{end for link, _ in routes[hop] for end in (link.a, link.b)} & switches for hop in intra]
    nodes = len({node_of(m) for m in memories}) or 1
    return CommShape(p, nodes, "pcie" if pcie else "nvlink", intra_bw, _node_egress(platform, memories),
                     nodes == 1 and bool(crossed) and bool(set.intersection(*crossed)))


@dataclass(frozen=True)
class Choice:
    """One (algorithm, protocol) of NCCL's table: latency and algorithm bandwidth before size corrections."""

    algorithm: str
    protocol: str
    latency_s: float
    bandwidth_bytes_per_s: float


def _ring_latency(kind: str, shape: CommShape, proto: str, params: NcclParams) -> float:
    p, nodes, hw = shape.ranks, shape.nodes, params.hw_latency_s
    base = params.base_latency_s[f"ring.{proto}"]
    if kind == "broadcast":  # tuning.cc: nsteps = p hops of the ring's link class (Simple: the tree's chunk)
        return base + p * hw[f"{shape.hw}.{'tree' if proto == 'Simple' else 'ring'}.{proto}"]
    nsteps, n_inter = (2 * (p - 1), 2 * (nodes - 1)) if kind == "all_reduce" else (p - 1, nodes - 1)
    intra, inter = hw[f"{shape.intra}.ring.{proto}"], hw[f"net.ring.{proto}"]
    if nodes > 1:
        intra = max(intra, params.net_overhead_s * (3 if proto == "Simple" else 1))
    return base + (nsteps - n_inter) * intra + n_inter * inter


def candidates(kind: str, shape: CommShape, params: NcclParams) -> tuple[Choice, ...]:
    """NCCL's (algorithm, protocol) table for ``kind`` on ``shape``, in NCCL's order (tree, ring, nvls).

    Examples
    --------
    Ring all-reduce over 8 NVLink ranks, LL: 6.6 µs + 14 steps x 0.6 µs.

    >>> s = CommShape(8, 1, "nvlink", 300e9, float("inf"))
    >>> ll = [c for c in candidates("all_reduce", s, NcclParams()) if (c.algorithm, c.protocol) == ("ring", "LL")][0]
    >>> round(ll.latency_s * 1e6, 3), round(ll.bandwidth_bytes_per_s / 1e9, 3)
    (15.0, 42.857)
    """
    p, nodes = shape.ranks, shape.nodes
    hw, base = params.hw_latency_s, params.base_latency_s
    bus = min(params.bus_efficiency[shape.intra] * shape.intra_bw, params.bus_efficiency["net"] * shape.inter_bw)
    if kind in P2P_KINDS:
        return _p2p_candidates(kind, shape, params)
    ll_max = params.ll_max_bus_bw_bytes_per_s[min(nodes, 3) - 1]
    ll128_max = params.ll128_max_bus_bw_bytes_per_s or math.inf
    protos = ("LL", "LL128", "Simple") if params.ll128 and shape.intra == "nvlink" else ("LL", "Simple")
    out = []
    if kind == "all_reduce":
        tree = bus * _TREE
        for proto in protos:
            bw = {"LL": min(tree * _TREE_LL, ll_max),
                  "LL128": min(tree * (_TREE_LL128_ONE_NODE if nodes == 1 else _TREE_LL128), ll128_max),
                  "Simple": tree}[proto]
            lat = base[f"tree.{proto}"] + 2 * ((p // nodes - 1) * hw[f"{shape.intra}.tree.{proto}"]
                                               + int(math.log2(nodes)) * hw[f"net.tree.{proto}"])
            out.append(Choice("tree", proto, lat, bw * _TREE_RATIO))
    nsteps = {"all_reduce": 2 * (p - 1), "broadcast": p}.get(kind, p - 1)
    for proto in protos:
        ll = _RING_LL if nodes > 1 or kind == "all_reduce" else _RING_LL_GATHER
        bw = {"LL": min(bus * ll, ll_max),
              "LL128": min(bus * (_RING_LL128_ONE_PER_NODE if shape.ppn < 2 else _RING_LL128), ll128_max),
              "Simple": bus}[proto]
        out.append(Choice("ring", proto, _ring_latency(kind, shape, proto, params), bw * p / nsteps))
    if kind == "all_reduce" and params.nvls and nodes == 1 and p > 2 and shape.intra == "nvlink" and shape.one_switch:
        out.append(Choice("nvls", "Simple", hw["nvlink.nvls.Simple"], params.nvls_speedup * bus * p / nsteps))
    return tuple(out)


def _p2p_candidates(kind: str, shape: CommShape, params: NcclParams) -> tuple[Choice, ...]:
    """LL then Simple point-to-point; all-to-all's algorithm bandwidth counts each node's traffic."""
    p, ppn, eff = shape.ranks, shape.ppn, params.p2p_efficiency
    if kind == "send_recv":
        per_byte = 1 / (eff[shape.hw] * (shape.inter_bw if shape.nodes > 1 else shape.intra_bw))
    else:  # each rank sends (ppn-1)/p of its buffer inside its node, each node ppn(p-ppn)/p out of it
        per_byte = max((ppn - 1) / p / (eff[shape.intra] * shape.intra_bw),
                       ppn * (p - ppn) / p / (eff["net"] * shape.inter_bw))
    bw = math.inf if per_byte == 0 else 1 / per_byte
    return tuple(Choice("p2p", proto, params.p2p_latency_s[f"{shape.hw}.{proto}"], bw * factor)
                 for proto, factor in (("LL", _P2P_LL), ("Simple", 1.0)))


def parts(choice: Choice, kind: str, shape: CommShape, nbytes, params: NcclParams, measured: bool = True):
    """(latency, bandwidth time) of ``choice`` for ``nbytes`` (a float or a NumPy array; the latency
    may be a scalar).

    Applies NCCL's size corrections: the tree's ``treeCorrectionFactor`` and the multi-node ring
    Simple all-reduce plateau. ``measured`` (the time the choice takes, not the tuner's estimate
    that makes the choice) also applies, to send/recv, the sender's buffered bytes (``p2p_buffer``).
    """
    n = np.asarray(nbytes, dtype=float)
    bw = choice.bandwidth_bytes_per_s
    if choice.algorithm == "p2p":
        if not measured or kind != "send_recv":
            return choice.latency_s, n / bw
        buffered = np.minimum(n, params.p2p_buffer_bytes[shape.hw])
        fast = bw * params.p2p_buffer_efficiency[shape.hw] / params.p2p_efficiency[shape.hw]
        return choice.latency_s, buffered / fast + (n - buffered) / bw
    if choice.algorithm == "tree":  # log2i(nBytes >> 6) is frexp's exponent - 1; past the table, 1.0
        table = _TREE_CORRECTION[choice.protocol]
        index = np.frexp(np.maximum(n // 64, 1))[1] - 1
        bw = bw * table[np.minimum(index, len(table) - 1)]
    latency = choice.latency_s
    if shape.nodes > 1 and (choice.algorithm, choice.protocol, kind) == ("ring", "Simple", "all_reduce"):
        latency = np.where(n >= shape.ranks / 16 * 65536, latency * params.ring_plateau, latency)
    return latency, n / bw


def _times(kind: str, shape: CommShape, sizes: np.ndarray,
           params: NcclParams) -> tuple[tuple[Choice, ...], np.ndarray, np.ndarray]:
    """The candidates, the index of NCCL's choice per size (the least tuner estimate; the first of
    equal ones, as NCCL keeps a strictly better one) and the chosen candidate's measured time."""
    cands = candidates(kind, shape, params)
    tuner = np.array([np.add(*parts(c, kind, shape, sizes, params, measured=False)) for c in cands])
    if kind in P2P_KINDS:  # the protocol follows the size, not the time
        per_peer = sizes if kind == "send_recv" else sizes / shape.ranks
        best = np.where(per_peer <= params.p2p_ll_threshold_bytes, 0, 1)
    else:
        best = np.argmin(tuner, axis=0)
    seconds = np.zeros(sizes.shape)
    for i, c in enumerate(cands):
        if np.any(best == i):
            seconds = np.where(best == i, np.add(*parts(c, kind, shape, sizes, params)), seconds)
    return cands, best, seconds


def predict(kind: str, shape: CommShape, nbytes: float, params: NcclParams) -> tuple[Choice | None, float]:
    """NCCL's choice for one collective and its predicted seconds (``None, 0.0`` when nothing moves).

    Examples
    --------
    >>> s = CommShape(8, 1, "nvlink", 300e9, float("inf"))
    >>> [predict("all_reduce", s, n, NcclParams())[0].protocol for n in (4e3, 4e6, 4e9)]
    ['LL', 'LL128', 'Simple']
    """
    if shape.ranks <= 1 or nbytes <= 0:
        return None, 0.0
    cands, best, seconds = _times(kind, shape, np.array([float(nbytes)]), params)
    return cands[int(best[0])], float(seconds[0])


def predict_many(kind: str, shape: CommShape, sizes, params: NcclParams) -> np.ndarray:
    """:func:`predict`'s seconds for an array of sizes (what the calibration fit evaluates)."""
    sizes = np.asarray(sizes, dtype=float)
    if shape.ranks <= 1:
        return np.zeros(sizes.shape)
    return np.where(sizes > 0, _times(kind, shape, sizes, params)[2], 0.0)


def _pattern(kind: str, algorithm: str, p: int, nbytes: float) -> list[list[tuple[int, int, float]]]:
    """The transfers that replay ``algorithm`` (see the module notes); none for NVLS."""
    if algorithm == "nvls":
        return []
    if kind == "send_recv":
        return [[(0, 1, nbytes)]]
    if algorithm == "tree":
        return [[(i, i - 1, nbytes) for i in range(1, p)], [(i - 1, i, nbytes) for i in range(1, p)]]
    if kind == "broadcast":
        return [[(i, i + 1, nbytes) for i in range(p - 1)]]
    return collective_steps(kind, "ring", p, nbytes)


def _channels(steps: list[list[tuple[int, int, float]]], nodes: list[str]) -> list[list[tuple[int, int, float]]]:
    """Spread each transfer between two nodes over the nodes' rank pairs, as NCCL's channels cross
    through every GPU's NIC: the j-th rank of one node sends ``1/C`` of it to the j-th of the other."""
    members: dict[str, list[int]] = {}
    for rank, node in enumerate(nodes):
        members.setdefault(node, []).append(rank)
    out = []
    for step in steps:
        spread = []
        for a, b, x in step:
            if nodes[a] == nodes[b]:
                spread.append((a, b, x))
                continue
            pairs = list(zip(members[nodes[a]], members[nodes[b]], strict=False))
            spread += [(i, j, x / len(pairs)) for i, j in pairs]
        out.append(spread)
    return out


@dataclass(frozen=True)
class PlanStep:
    """Transfers (source rank, destination rank, bytes) after a wait; ``time_s`` alone on idle links."""

    transfers: tuple[tuple[int, int, float], ...]
    wait_s: float
    time_s: float


@dataclass(frozen=True)
class Plan:
    """NCCL's choice for one collective, its predicted time, and the steps that replay it."""

    choice: Choice | None
    nccl_s: float
    steps: tuple[PlanStep, ...]

    @property
    def time_s(self) -> float:
        """Seconds alone on idle links: the analytic time, which the transfer replay reproduces."""
        return math.fsum(s.time_s for s in self.steps)


class NcclModel:
    """NCCL's model on one platform, with the shapes and plans it has computed.

    Parameters
    ----------
    platform : Platform
    params : NcclParams, optional
        Defaults to the platform's ``collectives`` section, else NCCL's own constants.
    """

    def __init__(self, platform: Platform, params: NcclParams | None = None):
        self.platform = platform
        self.params = params or platform.collectives or NcclParams()
        self._memory = {u.name: u.memory for u in platform.units}
        self._shapes: dict[tuple[str, ...], CommShape] = {}
        self._plans: dict[tuple, Plan] = {}

    def shape(self, ranks: Sequence[str]) -> CommShape:
        """The :class:`CommShape` of units ``ranks`` (in ring order)."""
        key = tuple(ranks)
        if key not in self._shapes:
            self._shapes[key] = comm_shape(self.platform, [self._memory[r] for r in key])
        return self._shapes[key]

    def plan(self, kind: str, ranks: Sequence[str], nbytes: float) -> Plan:
        """NCCL's choice for ``kind`` on units ``ranks`` over ``nbytes``, as replayable steps.

        ``send_recv`` takes two ranks, sender first. Examples: see the module docstring.
        """
        if kind not in KINDS:
            raise ValueError(f"collective: got {kind!r}, expected one of {', '.join(KINDS)}")
        key = (kind, tuple(ranks), nbytes)
        if key not in self._plans:
            self._plans[key] = self._plan(kind, tuple(ranks), nbytes)
        return self._plans[key]

    def _plan(self, kind: str, ranks: tuple[str, ...], nbytes: float) -> Plan:
        if kind == "send_recv" and len(ranks) != 2:
            raise ValueError(f"send_recv.ranks: got {list(ranks)}, expected a sender and a receiver")
        if kind == "send_recv" and self._memory[ranks[0]] == self._memory[ranks[1]]:
            return Plan(None, 0.0, ())  # one memory: nothing to send
        shape = self.shape(ranks)
        choice, seconds = predict(kind, shape, nbytes, self.params)
        if choice is None:
            return Plan(None, 0.0, ())
        latency, bandwidth_s = (float(x) for x in parts(choice, kind, shape, nbytes, self.params))
        steps = _pattern(kind, choice.algorithm, len(ranks), nbytes)
        if not steps:
            return Plan(choice, seconds, (PlanStep((), seconds, seconds),))
        memory = [self._memory[r] for r in ranks]
        step_bytes = [max(b for _, _, b in step) for step in steps]
        total = sum(step_bytes)
        if shape.nodes > 1 and choice.algorithm in ("ring", "tree"):
            steps = _channels(steps, [node_of(m) for m in memory])
        out = []
        for step, b in zip(steps, step_bytes, strict=True):
            alone = max(self.platform.route(memory[s], memory[d]).time_s(x) for s, d, x in step)
            wait = max(0.0, latency / len(steps) + bandwidth_s * b / total - alone)
            out.append(PlanStep(tuple(step), wait, wait + alone))
        return Plan(choice, seconds, tuple(out))

    def time(self, kind: str, ranks: Sequence[str], nbytes: float) -> float:
        """Seconds of :meth:`plan` alone on idle links."""
        return self.plan(kind, ranks, nbytes).time_s
