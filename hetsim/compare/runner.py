"""Run a comparison suite: every case × scheduler through :func:`hetsim.simulate`, one row each.

Rows are plain dicts with the columns of :data:`COLUMNS`. The same suite gives the same rows,
except ``scheduler_time_s`` (wall-clock seconds) and, when CP-SAT stops at its time limit
instead of proving optimality, the exact scheduler's figures. A scheduler that fails on a case
gives a row with an ``error`` and no figures; the run goes on.

The reference optimum comes from the ``exact`` scheduler on cases of at most
``exact.max_tasks`` ops. It counts as *proved* only when CP-SAT says optimal and its integer
model is the real problem: every cost a whole number of ticks at the resolution used, and
communication given per edge (classic instances). Every case where exact ran also gets
``lower_bound``, the best bound proven (the optimum itself; else CP-SAT's bound widened by its
rounding error — see :func:`exact_resolution` — or ``cp_min``, whichever is larger) and
``gap_to_bound``. Generated graphs have unrounded float costs, so their bound is within a few
hundredths of a percent of the optimum, but it is not a proof of it.

Examples
--------
>>> from hetsim.compare.suite import parse_suite
>>> suite = parse_suite({"schedulers": ["heft", "cpop"], "exact": {"max_tasks": 10},
...                      "graphs": [{"instance": "scenarios/instances/topcuoglu2002.json"}]})
>>> rows = run_suite(suite)
>>> [(r["scheduler"], r["makespan_s"], r["optimum"], round(r["gap_to_optimum"], 4)) for r in rows]
[('heft', 80.0, 73.0, 0.0959), ('cpop', 86.0, 73.0, 0.1781), ('exact', 73.0, 73.0, 0.0)]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import networkx as nx

from hetsim.compare.cases import GraphCase
from hetsim.compare.suite import ExactConfig, Suite
from hetsim.errors import HetsimError, ScenarioError
from hetsim.spec.types import Platform

COLUMNS = ("suite", "graph_id", "family", "n_tasks", "n_units", "ccr", "platform", "seed", "scheduler",
           "makespan_s", "slr", "speedup", "efficiency", "energy_j", "scheduler_time_s", "optimum",
           "optimal_proved", "gap_to_optimum", "lower_bound", "gap_to_bound", "error")
#: the reference scheduler's label in the rows
EXACT = "exact"
_TICKS = (1.0, 10.0, 100.0, 1000.0)

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class BuiltCase:
    """A case with its graph, platform, cost table and reference figures."""

    case: GraphCase
    graph: nx.DiGraph
    platform: Platform
    cost: Any
    cp_min: float
    sequential: float

    @property
    def has_energy(self) -> bool:  # abstract units draw no power: an instance says nothing about energy
        return self.case.kind == "model"


def build_case(case: GraphCase, captured: dict | None = None) -> BuiltCase:
    """Build ``case``'s graph, platform and cost table (``captured`` caches model captures)."""
    from hetsim.cost.model import CostModel
    from hetsim.graph.instances import instance_graph, load_instance
    from hetsim.sched.bounds import cp_min, sequential_time
    from hetsim.spec.abstract import abstract_platform

    try:
        if case.kind == "generator":
            from hetsim.graph.generators import generate

            graph, units = instance_graph(generate(case.source, **case.params, seed=case.seed), name=case.graph_id)
            platform = abstract_platform(units, name="abstract")
        elif case.kind == "instance":
            graph, units = load_instance(case.source)
            platform = abstract_platform(units, name="abstract")
        else:
            from hetsim.graph.catalog import model_graph
            from hetsim.spec.loader import load_platform

            key = (case.source, *case.params.values())
            cache = captured if captured is not None else {}
            if key not in cache:
                cache[key] = model_graph(case.source, **case.params)
            graph, platform = cache[key], load_platform(case.platform_spec)
        cost = CostModel(graph, platform)
    except HetsimError as exc:
        on = f" on {case.platform}" if case.kind == "model" else ""
        raise ScenarioError(f"{case.where}: {case.graph_id}{on}: {exc}") from None
    return BuiltCase(case, graph, platform, cost, cp_min(graph, cost), sequential_time(graph, cost))


def exact_resolution(graph: nx.DiGraph, cost: Any, ticks: float | None = None) -> tuple[float, float | None]:
    """Ticks per second of cost for CP-SAT, and how far its integer model can be from the real one.

    Returns ``(ticks, delta)``: any schedule's makespan in CP-SAT's rounded model is within
    ``delta`` seconds of its real makespan (a path holds at most n ops and n − 1 edges, each
    rounded by at most half a tick), so 0 means CP-SAT solves the real problem. ``delta`` is None
    when communication depends on the pair of units (real platforms): CP-SAT then takes the worst
    pair and its answer bounds nothing. Without ``ticks``: the first of 1, 10, 100, 1000 that
    makes every cost whole, else 10,000 ticks for the median op time.

    Examples
    --------
    >>> from hetsim.graph.instances import instance_graph
    >>> from hetsim.cost.model import CostModel
    >>> from hetsim.spec.abstract import abstract_platform
    >>> g, u = instance_graph({"units": ["A", "B"], "tasks": {"a": [1.5, 2], "b": [3, 1]}, "edges": [["a", "b", 4]]})
    >>> exact_resolution(g, CostModel(g, abstract_platform(u)))
    (10.0, 0.0)
    >>> exact_resolution(g, CostModel(g, abstract_platform(u)), ticks=1.0)
    (1.0, 1.5)
    """
    units = [u.name for u in cost.platform.units]
    times = [cost.time(op, u) for op in graph for u in units if cost.can_run(op, u)]
    classic = len(units) == 1 or all("cost" in d for _, _, d in graph.edges(data=True))
    values = times + [d.get("cost", 0.0) for _, _, d in graph.edges(data=True)]

    def whole(t: float) -> bool:
        return all(abs(v * t - round(v * t)) <= 1e-9 * max(1.0, v * t) for v in values)

    if ticks is None:
        positive = sorted(t for t in times if t > 0)
        ticks = next((t for t in _TICKS if whole(t)), 1e4 / positive[len(positive) // 2] if positive else 1.0)
    if not classic:
        return ticks, None
    return ticks, 0.0 if whole(ticks) else (2 * graph.number_of_nodes() - 1) * 0.5 / ticks


def _metrics(built: BuiltCase, makespan: float) -> dict[str, Any]:
    n_units = len(built.platform.units)
    speedup = built.sequential / makespan if makespan > 0 and math.isfinite(built.sequential) else None
    return {"makespan_s": makespan, "slr": makespan / built.cp_min if built.cp_min > 0 else None,
            "speedup": speedup, "efficiency": speedup / n_units if speedup is not None else None}


def _base_row(suite: Suite, built: BuiltCase, label: str) -> dict[str, Any]:
    c = built.case
    row = dict.fromkeys(COLUMNS)
    row.update(suite=suite.name, graph_id=c.graph_id, family=c.family, n_tasks=built.graph.number_of_nodes(),
               n_units=len(built.platform.units), ccr=c.ccr, platform=c.platform, seed=c.seed, scheduler=label)
    return row


def _run_heuristic(suite: Suite, built: BuiltCase, entry) -> dict[str, Any]:
    from hetsim.api import simulate

    row = _base_row(suite, built, entry.label)
    try:
        result = simulate(built.graph, built.platform, entry.name, scheduler_options=entry.options, sim=suite.sim)
        row.update(_metrics(built, result.makespan_s), scheduler_time_s=result.scheduler_time_s,
                   energy_j=result.energy_j if built.has_energy else None)
    except Exception as exc:  # a failing scheduler is a result of the comparison, not the end of it
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def _run_exact(suite: Suite, built: BuiltCase, config: ExactConfig) -> dict[str, Any]:
    from hetsim.api import simulate
    from hetsim.sched.registry import get_scheduler

    row = _base_row(suite, built, EXACT)
    ticks, delta = exact_resolution(built.graph, built.cost, config.resolution)
    try:
        scheduler = get_scheduler(EXACT, {"time_limit_s": config.time_limit_s, "resolution": ticks,
                                          "workers": config.workers})
        began = time.perf_counter()
        schedule = scheduler(built.graph, built.cost)
        took = time.perf_counter() - began
        result = simulate(built.graph, built.platform, schedule, sim=suite.sim)
    except Exception as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    row.update(_metrics(built, result.makespan_s), scheduler_time_s=took,
               energy_j=result.energy_j if built.has_energy else None)
    found = schedule.makespan_s
    proved = delta == 0.0 and scheduler.last_status == "optimal"
    bound = built.cp_min
    if delta is not None:  # CP-SAT's bound holds for the rounded costs, each off by at most delta in all
        bound = max(bound, scheduler.last_bound_s - delta)
    row.update(optimal_proved=proved, lower_bound=found if proved else bound, optimum=found if proved else None)
    return row


def _fill_gaps(rows: list[dict[str, Any]]) -> None:
    """Copy the case's exact figures into every row of the case, and compute the gaps."""
    ref = next((r for r in rows if r["scheduler"] == EXACT and r["error"] is None), None)
    if ref is None:
        return
    for r in rows:
        r.update(optimum=ref["optimum"], optimal_proved=ref["optimal_proved"], lower_bound=ref["lower_bound"])
        if r["makespan_s"] is None:
            continue
        if ref["optimum"]:
            r["gap_to_optimum"] = r["makespan_s"] / ref["optimum"] - 1.0
        if ref["lower_bound"]:
            r["gap_to_bound"] = r["makespan_s"] / ref["lower_bound"] - 1.0


def build_cases(suite: Suite) -> list[BuiltCase]:
    """Build every case of ``suite`` (before anything runs, so bad parameters fail fast)."""
    captured: dict = {}
    return [build_case(c, captured) for c in suite.cases]


def run_suite(suite: Suite, *, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Run every case × scheduler of ``suite``; return the rows (columns :data:`COLUMNS`)."""
    built = build_cases(suite)
    with_exact = [suite.exact is not None and b.graph.number_of_nodes() <= suite.exact.max_tasks for b in built]
    total = len(built) * len(suite.schedulers) + sum(with_exact)
    done, rows = 0, []
    for b, exact in zip(built, with_exact, strict=True):
        case_rows = []
        for entry in suite.schedulers:
            if progress:
                progress(done, total, f"{entry.label} on {b.case.graph_id}")
            case_rows.append(_run_heuristic(suite, b, entry))
            done += 1
        if exact:
            if progress:
                progress(done, total, f"exact on {b.case.graph_id}")
            case_rows.append(_run_exact(suite, b, suite.exact))
            done += 1
        _fill_gaps(case_rows)
        rows += case_rows
    if progress:
        progress(done, total, "done")
    return rows


def _mean(values: list[Any]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _wins(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Per scheduler, the cases where it had the best makespan among the heuristics (ties: all win)."""
    cases: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if r["scheduler"] != EXACT and r["makespan_s"] is not None:
            cases.setdefault((r["graph_id"], r["platform"]), []).append(r)
    wins: dict[str, int] = {}
    for case in cases.values():
        best = min(r["makespan_s"] for r in case)
        for r in case:
            if r["makespan_s"] <= best * (1 + 1e-9):
                wins[r["scheduler"]] = wins.get(r["scheduler"], 0) + 1
    return wins


def summarize(rows: list[dict[str, Any]], suite: Suite) -> dict[str, Any]:
    """Per-scheduler means over the rows it completed, its wins, and its mean gap to the optimum.

    ``wins`` counts the cases where the scheduler's makespan was the best of the heuristics
    (``exact``, the reference, is not a contender: its ``wins`` is None). ``mean_gap_to_optimum``
    averages over the cases whose optimum was proved (``optimum_cases`` of them),
    ``mean_gap_to_bound`` over every case where exact ran (``bound_cases``).
    """
    wins = _wins(rows)
    per: dict[str, dict[str, Any]] = {}
    labels = [e.label for e in suite.schedulers] + ([EXACT] if any(r["scheduler"] == EXACT for r in rows) else [])
    for label in labels:
        mine = [r for r in rows if r["scheduler"] == label]
        ok = [r for r in mine if r["error"] is None]
        gaps = [r["gap_to_optimum"] for r in ok if r["gap_to_optimum"] is not None]
        bound_gaps = [r["gap_to_bound"] for r in ok if r["gap_to_bound"] is not None]
        per[label] = {
            "runs": len(ok), "errors": len(mine) - len(ok),
            "mean_slr": _mean([r["slr"] for r in ok]), "mean_speedup": _mean([r["speedup"] for r in ok]),
            "mean_efficiency": _mean([r["efficiency"] for r in ok]),
            "mean_energy_j": _mean([r["energy_j"] for r in ok]),
            "mean_scheduler_time_s": _mean([r["scheduler_time_s"] for r in ok]),
            "wins": None if label == EXACT else wins.get(label, 0),
            "mean_gap_to_optimum": _mean(gaps), "optimum_cases": len(gaps),
            "mean_gap_to_bound": _mean(bound_gaps), "bound_cases": len(bound_gaps),
        }
    return {"suite": suite.name, "cases": len({(r["graph_id"], r["platform"]) for r in rows}), "rows": len(rows),
            "errors": sum(r["error"] is not None for r in rows), "seeds": list(suite.seeds), "schedulers": per}
