"""What the machine is: frozen values for compute units, memories, links and whole platforms.

All fields are SI floats and their names carry the unit. Values are checked once, by the loader
(:mod:`hetsim.spec.loader`); constructors have no side effects.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise
from types import MappingProxyType

import networkx as nx

from hetsim.errors import SpecError
from hetsim.spec.kernels import GpuKernels
from hetsim.spec.nccl import NcclParams

#: op kinds that run on a unit's matrix engine (tensor cores, MXU, AMX); the others use its
#: vector rate when one is given.
MATRIX_OPS = frozenset({"matmul", "attention", "conv"})


def _frozen(mapping: Mapping | None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class PowerState:
    """One operating point of a unit.

    Power at this state is ``static_power_w + dynamic_power_w * activity`` with activity in [0, 1]:
    ``static_power_w`` is what the unit draws when idle but powered, ``dynamic_power_w`` the extra
    it draws when fully busy (the ``C_eff·V²·f`` term).

    Examples
    --------
    >>> s = PowerState("p0", freq_hz=1.83e9, voltage_v=1.0, static_power_w=75.0, dynamic_power_w=625.0)
    >>> s.power_w(1.0)
    700.0
    """

    name: str
    freq_hz: float
    voltage_v: float
    static_power_w: float
    dynamic_power_w: float

    def power_w(self, activity: float) -> float:
        """Power drawn at ``activity`` (0 = idle, 1 = fully busy)."""
        return self.static_power_w + self.dynamic_power_w * activity


@dataclass(frozen=True)
class Curve:
    """Achieved throughput of one op kind as a function of its size, measured by calibration.

    ``x`` says what the size is: ``"flop"`` (the rate is FLOP/s, at the unit's reference clock)
    or ``"bytes"`` (bytes read + written; the rate is bytes/s). Between measured sizes the rate
    is interpolated linearly in log(size)–log(rate); outside them it is held at the end values.

    Examples
    --------
    >>> c = Curve("flop", (1e6, 1e8), (1e9, 1e11))
    >>> round(c.rate(1e7)), c.rate(1e3), c.rate(1e12)
    (10000000000, 1000000000.0, 100000000000.0)
    """

    x: str
    sizes: tuple[float, ...]
    rates: tuple[float, ...]

    def rate(self, size: float) -> float:
        """Interpolated rate at ``size``."""
        sizes, rates = self.sizes, self.rates
        if size <= sizes[0]:
            return rates[0]
        if size >= sizes[-1]:
            return rates[-1]
        hi = bisect.bisect_right(sizes, size)
        lo = hi - 1
        t = (math.log(size) - math.log(sizes[lo])) / (math.log(sizes[hi]) - math.log(sizes[lo]))
        return math.exp(math.log(rates[lo]) + t * (math.log(rates[hi]) - math.log(rates[lo])))


@dataclass(frozen=True)
class ComputeUnit:
    """A core or device that executes ops: a CPU cluster, a GPU, a TPU chip, an NPU.

    Parameters
    ----------
    name, kind : str
        Unique name on the platform; kind is ``cpu``, ``gpu``, ``tpu``, ``npu``, ``dsp``, ...
    memory : str
        Name of the :class:`Memory` this unit reads and writes its tensors in.
    peak_flop_per_s : Mapping[str, float]
        Dense peak per dtype (``bf16``, ``fp16``, ``fp32``, ``fp8``, ``int8``, ...) of the matrix
        engine at ``ref_freq_hz``.
    vector_flop_per_s : float or None
        Peak of the vector/SIMD units, used for ops outside :data:`MATRIX_OPS`; ``None`` means the
        matrix peak applies to every op.
    compute_efficiency : Mapping[str, float]
        Achievable fraction of peak per op kind, with a ``"default"`` entry.
    overhead_s : float
        Fixed cost charged to every op (kernel launch, dispatch).
    power_states : tuple of PowerState
        Operating points, fastest first; the first is the nominal state.
    op_kinds : frozenset of str or None
        Op kinds this unit can run; ``None`` means all.
    overheads : Mapping[str, float]
        Fixed cost per op kind where it differs from ``overhead_s`` (a ``"view"`` entry makes
        views cost that much, e.g. eager dispatch on a CPU; without one views are free).
    curves : Mapping[str, Curve]
        Measured throughput per ATen target or op kind, optionally per dtype (see :meth:`curve`);
        an op with a curve takes ``overhead + size / curve.rate(size)`` instead of the roofline.
    onchip_bytes : float or None
        Capacity of the on-chip memory that matrix and attention kernels tile for, used by the
        reuse model of :mod:`hetsim.cost.traffic` to count DRAM re-reads; ``None`` keeps the ideal
        traffic (every operand once). It is the last on-chip level before the unit's DRAM, shared
        by all its cores: the L2 on NVIDIA GPUs, the Infinity Cache on MI300X, CMEM or VMEM on
        TPUs, an NPU's SRAM. DRAM traffic is set by that level, whose tiles of A, B and C are
        what is fetched from main memory (LLMCompass, Zhang et al. ISCA 2024, §III-B: tiles
        "small enough to fit into the global buffer", the L2 on NVIDIA GPUs); per-core
        shared memory tiles decide the traffic between L2 and the cores, not DRAM's.
    onchip_bandwidth_bytes_per_s : float or None
        Bandwidth of that level (informational: the cost model does not use it yet).
    kernels : GpuKernels or None
        The kernel-level model of a GPU (:mod:`hetsim.spec.kernels`): tile and wave GEMMs,
        FlashAttention, memory-bound kernel families. When set, :func:`hetsim.cost.roofline.op_cost`
        times the ops it models with :func:`hetsim.cost.gpu_kernels.kernel_cost` (ops with an
        explicit cost or a calibrated curve keep those); ``None`` keeps the roofline.
    """

    name: str
    kind: str
    memory: str
    peak_flop_per_s: Mapping[str, float]
    ref_freq_hz: float
    power_states: tuple[PowerState, ...]
    vector_flop_per_s: float | None = None
    compute_efficiency: Mapping[str, float] = field(default_factory=lambda: _frozen({"default": 1.0}))
    overhead_s: float = 0.0
    op_kinds: frozenset[str] | None = None
    overheads: Mapping[str, float] = field(default_factory=lambda: _frozen({}))
    curves: Mapping[str, Curve] = field(default_factory=lambda: _frozen({}))
    source: str = ""
    onchip_bytes: float | None = None
    onchip_bandwidth_bytes_per_s: float | None = None
    kernels: GpuKernels | None = None

    def overhead(self, op_kind: str, target: str = "") -> float:
        """Fixed cost of one op: its ATen target's, else its kind's, else the unit's overhead."""
        overheads = self.overheads
        if target in overheads:
            return overheads[target]
        return overheads.get(op_kind, self.overhead_s)

    def curve(self, op_kind: str, dtype: str | None, target: str = "") -> Curve | None:
        """The measured curve for an op, most specific first: its ATen target in its dtype
        (``"aten.gelu.default:fp32"``), the target, the kind in the dtype (``"matmul:fp32"``),
        the kind."""
        curves = self.curves
        if not curves:
            return None
        for key in (f"{target}:{dtype}", target, f"{op_kind}:{dtype}", op_kind):
            if key in curves:
                return curves[key]
        return None

    @property
    def nominal(self) -> PowerState:
        """The first (fastest) power state."""
        return self.power_states[0]

    @property
    def min_static_power_w(self) -> float:
        """The least the unit draws while powered: the lowest static power of its states."""
        return min(s.static_power_w for s in self.power_states)

    def state(self, name: str | None) -> PowerState:
        """The power state called ``name`` (the nominal one for ``None``)."""
        if name is None:
            return self.nominal
        for state in self.power_states:
            if state.name == name:
                return state
        known = ", ".join(s.name for s in self.power_states)
        raise SpecError(f"units.{self.name}.power_state: got {name!r}, expected one of {known}")

    def can_run(self, op_kind: str, dtype: str | None) -> bool:
        """Whether this unit supports ``op_kind`` on ``dtype`` (ops without FLOPs ignore dtype)."""
        if self.op_kinds is not None and op_kind not in self.op_kinds:
            return False
        return dtype is None or dtype in self.peak_flop_per_s

    def efficiency(self, op_kind: str) -> float:
        """Achievable fraction of peak for ``op_kind``."""
        return self.compute_efficiency.get(op_kind, self.compute_efficiency["default"])


class _Bandwidth:
    """Shared by memories and links: a peak bandwidth and the fraction of it that is achievable."""

    bandwidth_bytes_per_s: float
    efficiency: float

    @property
    def effective_bandwidth_bytes_per_s(self) -> float:
        """Bandwidth an op or a transfer can actually get: peak × efficiency."""
        return self.bandwidth_bytes_per_s * self.efficiency


@dataclass(frozen=True)
class Memory(_Bandwidth):
    """A memory that holds tensors: HBM, DRAM, a shared SoC LPDDR, an SRAM.

    ``efficiency`` is the achievable fraction of ``bandwidth_bytes_per_s`` (STREAM-like).
    """

    name: str
    kind: str
    capacity_bytes: float
    bandwidth_bytes_per_s: float
    latency_s: float = 0.0
    efficiency: float = 1.0
    energy_per_byte_j: float = 0.0
    source: str = ""


@dataclass(frozen=True)
class Link(_Bandwidth):
    """A connection between two endpoints (memories or switches).

    ``bandwidth_bytes_per_s`` is per direction; a duplex link carries that much each way at once.
    """

    name: str
    a: str
    b: str
    bandwidth_bytes_per_s: float
    latency_s: float = 0.0
    duplex: bool = True
    efficiency: float = 1.0
    energy_per_byte_j: float = 0.0
    source: str = ""


@dataclass(frozen=True)
class Route:
    """The path a tensor takes from one memory to another."""

    src: str
    dst: str
    links: tuple[str, ...]
    latency_s: float
    bandwidth_bytes_per_s: float

    def time_s(self, nbytes: float) -> float:
        """Latency plus bytes over the bottleneck bandwidth; zero for an empty route.

        Examples
        --------
        >>> Route("a", "b", ("l",), latency_s=1e-6, bandwidth_bytes_per_s=1e9).time_s(1e6)
        0.001001
        """
        if not self.links or nbytes <= 0:
            return 0.0
        return self.latency_s + nbytes / self.bandwidth_bytes_per_s


@dataclass(frozen=True)
class Platform:
    """A whole machine: compute units, memories, links, switches and a package power budget.

    The interconnect is a networkx graph whose nodes are memories and switches and whose edges
    are links; a route is the lowest-latency path. Ties between equal paths are broken by
    networkx's Dijkstra, which is deterministic for a given platform file (links in file order).

    Examples
    --------
    >>> from hetsim.spec.loader import load_platform
    >>> ps = [{"name": "p0", "freq": "1 GHz", "voltage": "1 V", "static_power": "1 W", "dynamic_power": "9 W"}]
    >>> p = load_platform({"name": "toy",
    ...     "memories": [{"name": "m0", "capacity": "1 GB", "bandwidth": "1 GB/s"},
    ...                  {"name": "m1", "capacity": "1 GB", "bandwidth": "1 GB/s"}],
    ...     "units": [{"name": "u0", "kind": "cpu", "memory": "m0", "peak": {"fp32": "1 GFLOP/s"}, "power_states": ps},
    ...               {"name": "u1", "kind": "gpu", "memory": "m1", "peak": {"fp32": "1 GFLOP/s"}, "power_states": ps}],
    ...     "links": [{"name": "l", "a": "m0", "b": "m1", "bandwidth": "1 GB/s", "latency": "1 us"}]})
    >>> p.route("m0", "m1").links
    ('l',)
    >>> p.shares_memory("u0", "u1")
    False
    """

    name: str
    units: tuple[ComputeUnit, ...]
    memories: tuple[Memory, ...]
    links: tuple[Link, ...] = ()
    switches: tuple[str, ...] = ()
    power_budget_w: float | None = None
    description: str = ""
    source: str = ""
    sources: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    assumptions: tuple[str, ...] = ()
    manifest: Mapping[str, object] = field(default_factory=lambda: _frozen({}))
    collectives: NcclParams | None = None  # NCCL cost-model constants (hetsim.spec.nccl); None: NCCL's defaults

    @cached_property
    def _units(self) -> Mapping[str, ComputeUnit]:
        return {u.name: u for u in self.units}

    @cached_property
    def _memories(self) -> Mapping[str, Memory]:
        return {m.name: m for m in self.memories}

    @cached_property
    def _links(self) -> Mapping[str, Link]:
        return {link.name: link for link in self.links}

    @property
    def idle_power_w(self) -> float:
        """The platform's floor power: every unit idle at its lowest static power, summed.

        A package ``power_budget_w`` below it could never be met (the loader refuses one).
        """
        return math.fsum(u.min_static_power_w for u in self.units)

    def unit(self, name: str) -> ComputeUnit:
        """The unit called ``name``."""
        try:
            return self._units[name]
        except KeyError:
            raise SpecError(f"unit: got {name!r}, expected one of {', '.join(self._units)}") from None

    def memory(self, name: str) -> Memory:
        """The memory called ``name``."""
        try:
            return self._memories[name]
        except KeyError:
            known = ", ".join(self._memories)
            raise SpecError(f"memory: got {name!r}, expected one of {known}") from None

    def link(self, name: str) -> Link:
        """The link called ``name``."""
        try:
            return self._links[name]
        except KeyError:
            raise SpecError(f"link: got {name!r}, expected one of {', '.join(self._links)}") from None

    def memory_of(self, unit: str) -> Memory:
        """The memory that ``unit`` works in."""
        return self.memory(self.unit(unit).memory)

    def shares_memory(self, unit_a: str, unit_b: str) -> bool:
        """Whether two units work in the same memory (so tensors need no transfer)."""
        return self.unit(unit_a).memory == self.unit(unit_b).memory

    @cached_property
    def topology(self) -> nx.Graph:
        """Memories and switches as nodes, links as edges (attribute ``link`` = the Link)."""
        g = nx.MultiGraph()
        g.add_nodes_from(m.name for m in self.memories)
        g.add_nodes_from(self.switches)
        for link in self.links:
            g.add_edge(link.a, link.b, key=link.name, link=link)
        return g

    @cached_property
    def _routes(self) -> dict[tuple[str, str], Route]:
        return {}

    def route(self, src_memory: str, dst_memory: str) -> Route:
        """The route from one memory to another (empty when they are the same memory)."""
        key = (src_memory, dst_memory)
        cached = self._routes.get(key)
        if cached is None:
            cached = self._routes[key] = self._compute_route(src_memory, dst_memory)
        return cached

    def _compute_route(self, src: str, dst: str) -> Route:
        if src == dst:
            return Route(src, dst, (), 0.0, float("inf"))
        g = self.topology

        def weight(u: str, v: str, edges: dict) -> float:
            return min(d["link"].latency_s for d in edges.values()) + 1e-15

        try:
            nodes = nx.shortest_path(g, src, dst, weight=weight)
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            raise SpecError(f"route: got {src!r} -> {dst!r}, expected memories connected by links") from None
        links = []
        for u, v in pairwise(nodes):
            candidates = sorted(g[u][v].values(), key=lambda d: (d["link"].latency_s, d["link"].name))
            links.append(candidates[0]["link"])
        return Route(
            src,
            dst,
            tuple(link.name for link in links),
            latency_s=sum(link.latency_s for link in links),
            bandwidth_bytes_per_s=min(link.effective_bandwidth_bytes_per_s for link in links),
        )
