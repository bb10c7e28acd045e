"""``hetsim.simulate`` and its :class:`Result`: the one-call path graph + platform → answer."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.errors import ScenarioError
from hetsim.graph.schema import validate_graph
from hetsim.report import metrics
from hetsim.sched.online import is_online
from hetsim.sched.registry import get_scheduler
from hetsim.sched.schedule import Schedule, check_schedule
from hetsim.sim.engine import SimOptions, run
from hetsim.sim.online import run_online
from hetsim.sim.trace import Trace
from hetsim.spec.loader import load_platform
from hetsim.spec.types import Platform


@dataclass(frozen=True)
class Result:
    """What one simulation found. Every figure is computed from :attr:`trace`.

    Attributes
    ----------
    makespan_s : float
    energy_j : float
        Units' ∫P dt plus the energy of the bytes moved through memories and links.
    peak_memory_bytes : dict
        Memory name → peak bytes in use.
    utilization : dict
        Unit name → busy time / makespan.
    scheduler_time_s : float
        Wall-clock seconds the scheduler took to decide (0 for a ready-made Schedule).
    """

    graph: nx.DiGraph = field(repr=False)
    platform: Platform = field(repr=False)
    schedule: Schedule = field(repr=False)
    trace: Trace = field(repr=False)
    scheduler_time_s: float = 0.0

    @property
    def makespan_s(self) -> float:
        return self.trace.makespan_s

    @cached_property
    def energy_j(self) -> float:
        return metrics.energy_j(self.trace, self.platform)

    @cached_property
    def peak_memory_bytes(self) -> dict[str, float]:
        return metrics.peak_memory_bytes(self.trace, self.platform)

    @cached_property
    def utilization(self) -> dict[str, float]:
        return metrics.utilization(self.trace, self.platform)

    @cached_property
    def busy_s(self) -> dict[str, float]:
        return metrics.busy_s(self.trace, self.platform)

    @cached_property
    def critical_path(self) -> list[str]:
        return metrics.critical_path(self.trace, self.graph)

    @cached_property
    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (the content of ``summary.json``)."""
        out = metrics.summary(self.trace, self.platform, self.graph)
        out["scheduler"] = self.schedule.scheduler
        out["predicted_makespan_s"] = self.schedule.makespan_s
        return out

    def write_chrome_trace(self, path: str | Path) -> Path:
        """Write the Chrome Trace Event JSON (open it in Perfetto or chrome://tracing)."""
        from hetsim.report.chrome import write_chrome_trace

        write_chrome_trace(self.trace, self.platform, Path(path), graph=self.graph)
        return Path(path)

    def write_outputs(self, out_dir: str | Path, **which: bool) -> dict[str, Path]:
        """Write summary.json, ops.csv, trace.json and gantt.png into ``out_dir``."""
        from hetsim.report.outputs import write_outputs

        return write_outputs(self.trace, self.platform, self.graph, Path(out_dir), summary_data=self.summary, **which)


def simulate(graph: nx.DiGraph, platform: str | Path | Mapping | Platform, scheduler: str | Schedule = "eft", *,
             scheduler_options: Mapping[str, Any] | None = None,
             sim: SimOptions | Mapping[str, Any] | None = None) -> Result:
    """Schedule ``graph`` on ``platform`` and simulate it.

    Parameters
    ----------
    graph : networkx.DiGraph
        An OpGraph (from :func:`hetsim.capture`, :func:`hetsim.model_graph` or built by hand).
    platform : str, path, mapping or Platform
        A preset name, a platform YAML file, a mapping in the same schema, or a Platform.
    scheduler : str or Schedule
        A registered scheduler name (see ``hetsim schedulers``) or a ready-made Schedule. Online
        policies (``online_eft``, ``work_stealing``, ``dmda``) decide during the simulation; the
        Result's schedule then records what they did.
    scheduler_options : mapping, optional
        Keyword options of the scheduler.
    sim : SimOptions or mapping, optional
        Engine options (``contention``, ``track_memory``, ``collective_algorithm``,
        ``collective_mode``, ``execution``, ...), see :class:`hetsim.sim.engine.SimOptions`.
        With ``execution`` ``"compiled"`` or ``"serving"`` the graph is first fused into that
        mode's kernels (:func:`hetsim.graph.fusion.fuse`); the Result holds the fused graph.

    Examples
    --------
    >>> from hetsim.graph.schema import new_graph, add_op
    >>> g = new_graph("two")
    >>> add_op(g, "a", op="matmul", flop=2e12, bytes_read=8e6, dtype="bf16")
    >>> add_op(g, "b", op="elementwise", flop=1e6, bytes_read=4e6, bytes_written=4e6, dtype="bf16")
    >>> g.add_edge("a", "b", bytes=4e6)
    >>> r = simulate(g, "h100-sxm")
    >>> r.makespan_s > 0, r.utilization["gpu"] > 0.9
    (True, True)
    """
    validate_graph(graph)
    platform = load_platform(platform)
    if isinstance(sim, Mapping):
        unknown = sorted(set(sim) - set(SimOptions.__dataclass_fields__))
        if unknown:
            raise ScenarioError(f"sim.{unknown[0]}: unknown option, expected one of "
                                f"{', '.join(SimOptions.__dataclass_fields__)}")
        sim = SimOptions(**sim)
    sim = sim or SimOptions()
    if sim.execution != "eager":
        from hetsim.graph.fusion import fuse

        graph = fuse(graph, sim.execution)
    cost = CostModel(graph, platform, sim.collective_algorithm)
    if isinstance(scheduler, Schedule):
        schedule, took = scheduler, 0.0
    else:
        policy = get_scheduler(scheduler, scheduler_options)
        if is_online(policy):  # decides while the engine runs; the Schedule records what it did
            trace, schedule, took = run_online(graph, policy, cost, sim)
            check_schedule(schedule, graph, cost, check_times=False)
            return Result(graph, platform, schedule, trace, took)
        began = time.perf_counter()
        schedule = policy(graph, cost)
        took = time.perf_counter() - began
    check_schedule(schedule, graph, cost)
    trace = run(graph, schedule, cost, sim)
    return Result(graph, platform, schedule, trace, took)
