"""hetsim: simulate Transformer workloads on heterogeneous hardware.

The public API (see DESIGN.md §4)::

    import hetsim
    platform = hetsim.load_platform("gh200")
    graph = hetsim.model_graph("llama-3-8b", phase="prefill", batch=1, seq_len=2048)
    result = hetsim.simulate(graph, platform, scheduler="eft")
    result.makespan_s, result.energy_j, result.peak_memory_bytes, result.trace

Heavy pieces (torch, simpy, matplotlib) load only when first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_platform": "hetsim.spec.loader",
    "list_presets": "hetsim.spec.loader",
    "capture": "hetsim.graph.capture",
    "model_graph": "hetsim.graph.catalog",
    "list_models": "hetsim.graph.catalog",
    "simulate": "hetsim.api",
    "Result": "hetsim.api",
    "HetsimError": "hetsim.errors",
    "validate": "hetsim.validate",  # the callable subpackage: hetsim.validate(module, args, platform)
    "sweep": "hetsim.sweep",  # the callable subpackage: hetsim.sweep("sweep.yaml", executor="dask")
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = import_module(_LAZY[name])
        return module if _LAZY[name] == f"hetsim.{name}" and callable(module) else getattr(module, name)
    raise AttributeError(f"module 'hetsim' has no attribute {name!r}")
