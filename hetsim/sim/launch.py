"""How kernels reach a GPU: the host's launch queue, per execution mode.

A GPU unit that carries a kernel-level cost model (``kernels`` in its preset,
:mod:`hetsim.cost.gpu_kernels`) is charged pure device time per kernel; how the kernels are
launched is decided here, by the execution mode (``sim.execution``):

``eager``
    PyTorch eager: one kernel per ATen op, each launched by the host CPU. Launches are
    asynchronous: the host issues them one after the other and never waits for the GPU. Each
    costs the host :func:`eager_launch_s`: PyTorch's per-op framework time
    (:data:`EAGER_DISPATCH_S`) plus the GPU unit's ``overhead_s``, which the presets cite as the
    driver's launch cost (4 µs for the H100: NVIDIA's CUDA Graphs blog, ~3.8 µs per short kernel;
    ~5 µs per ``cuLaunchKernel``). Kernel ``i`` of a GPU is issued at ``(i + 1) · eager_launch_s``
    and starts at ``max(issued, inputs ready, previous kernel done)``: the GPU idles only when it
    outruns its host (tiny kernels are host-bound, big ones GPU-bound).
``compiled`` and ``serving``
    torch.compile with CUDA graphs, and serving engines (vLLM replays CUDA graphs for decode):
    the step's kernels are one CUDA graph, launched once; every kernel waits for that one
    launch, :data:`GRAPH_LAUNCH_S` of host time, and then only for its inputs and the GPU.
    (The kernels themselves are fused by :func:`hetsim.graph.fusion.fuse` before costing.)

Views launch no kernel. The launches run on the GPU's host: the CPU unit of the platform
nearest to the GPU's memory (a DGX's Xeon on its PCIe root, GH200's Grace), else a host that
is not part of the platform. They are recorded in the Trace (``launches``) and drawn on the
host's track of trace.json; they do not occupy the host unit's compute slot (a launch thread of
its own) and their energy is not counted. Units without a kernel model keep their fixed per-op
overhead on the device, as before.
"""

from __future__ import annotations

from collections.abc import Mapping

from hetsim.errors import SpecError
from hetsim.spec.types import ComputeUnit, Platform

EXECUTION_MODES = ("eager", "compiled", "serving")

#: host time PyTorch eager spends per ATen op before its launch (Python, dispatcher, allocator):
#: the low end of the 10-40 µs per op that shared/reference/hardware.md §2.3 recommends for eager
#: PyTorch, bracketed by 39 µs per op measured in facebookresearch/sam2#768 and the 11 µs median
#: per-call overhead of this repository's CPU profile (tests/data/cpu_profile.yaml, ``overhead``)
EAGER_DISPATCH_S = 10e-6

#: host time of one CUDA-graph launch: ``cudaGraphLaunch`` measured at 41 µs in pytorch/pytorch#150488
#: (shared/reference/hardware.md §2.3)
GRAPH_LAUNCH_S = 41e-6


def launched(unit: ComputeUnit) -> bool:
    """Whether ``unit``'s kernels go through a launch queue (a GPU with a kernel-level cost model)."""
    return unit.kind == "gpu" and unit.kernels is not None


def eager_launch_s(unit: ComputeUnit) -> float:
    """Host seconds per eager kernel of ``unit``: framework dispatch + the driver's launch.

    Examples
    --------
    >>> from hetsim.spec.loader import load_platform
    >>> round(eager_launch_s(load_platform("h100-sxm").unit("gpu")) * 1e6, 6)
    14.0
    """
    return EAGER_DISPATCH_S + unit.overhead_s


def host_of(platform: Platform, unit: str) -> str | None:
    """The CPU unit that launches ``unit``'s kernels: the one whose memory is nearest, or ``None``.

    Ties (two sockets at the same distance) go to the first in platform order.

    Examples
    --------
    >>> from hetsim.spec.loader import load_platform
    >>> host_of(load_platform("gh200"), "gpu"), host_of(load_platform("h100-sxm"), "gpu")
    ('cpu', None)
    """
    mem = platform.unit(unit).memory
    best: tuple[float, int, str] | None = None
    for i, u in enumerate(platform.units):
        if u.kind != "cpu":
            continue
        try:
            route = platform.route(u.memory, mem)
        except SpecError:  # a CPU with no route to the GPU cannot be its host
            continue
        key = (route.latency_s, i, u.name)
        if best is None or key < best:
            best = key
    return None if best is None else best[2]


def issue_times(unit: ComputeUnit, ops: tuple[str, ...], nodes: Mapping[str, Mapping], mode: str) -> dict[str, float]:
    """When the host has issued each kernel of ``ops`` (the unit's order), from the step's start.

    Empty for units without a launch queue; views are absent (no kernel).

    Examples
    --------
    >>> from hetsim.spec.types import ComputeUnit, PowerState
    >>> u = ComputeUnit("g", "gpu", "m", {"fp16": 1e15}, 1e9, (PowerState("p0", 1e9, 1, 50, 500),),
    ...                 overhead_s=4e-6, kernels=object())
    >>> nodes = {"a": {"op": "matmul"}, "v": {"op": "view"}, "b": {"op": "norm"}}
    >>> {k: round(v * 1e6, 6) for k, v in issue_times(u, ("a", "v", "b"), nodes, "eager").items()}
    {'a': 14.0, 'b': 28.0}
    >>> issue_times(u, ("a", "v", "b"), nodes, "compiled") == {"a": GRAPH_LAUNCH_S, "b": GRAPH_LAUNCH_S}
    True
    """
    if not launched(unit):
        return {}
    kernels = [op for op in ops if nodes[op]["op"] != "view"]
    if mode == "eager":
        step = eager_launch_s(unit)
        return {op: (i + 1) * step for i, op in enumerate(kernels)}
    return dict.fromkeys(kernels, GRAPH_LAUNCH_S)


def launch_records(host: str | None, unit: ComputeUnit, issued: Mapping[str, float], mode: str) -> list[tuple]:
    """The host's launch slices for ``unit``, as :class:`~hetsim.sim.trace.LaunchRun` fields.

    Eager: one slice per kernel, ending when it is issued; graph modes: one slice for the graph.

    Examples
    --------
    >>> from hetsim.spec.types import ComputeUnit, PowerState
    >>> u = ComputeUnit("g", "gpu", "m", {"fp16": 1e15}, 1e9, (PowerState("p0", 1e9, 1, 50, 500),),
    ...                 overhead_s=1.0, kernels=object())
    >>> rows = launch_records("cpu", u, {"a": 1.00001, "b": 2.00002}, "eager")
    >>> [(h, g, op, round(a, 6), round(b, 6)) for h, g, op, a, b in rows]
    [('cpu', 'g', 'a', 0.0, 1.00001), ('cpu', 'g', 'b', 1.00001, 2.00002)]
    >>> launch_records(None, u, {"a": 3.0, "b": 3.0}, "compiled")
    [('', 'g', '', 0.0, 3.0)]
    """
    if not issued:
        return []
    if mode == "eager":
        step = eager_launch_s(unit)
        return [(host or "", unit.name, op, t - step, t) for op, t in issued.items()]
    return [(host or "", unit.name, "", 0.0, max(issued.values()))]
