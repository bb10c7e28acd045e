"""Run a ``serve:`` scenario (checked by :func:`hetsim.scenario.parse_scenario`) and write its outputs."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hetsim.report._atomic import atomic_write
from hetsim.scenario import Scenario
from hetsim.serve.section import serve_workload
from hetsim.serve.simulator import ServeResult, serve
from hetsim.spec.loader import load_platform


@dataclass(frozen=True)
class ServeRun:
    """What :func:`hetsim.scenario.run_scenario` returns for a ``serve:`` scenario: the result and its summary.

    ``summary`` is the :attr:`~hetsim.serve.ServeResult.metrics` (NaN as None) plus platform,
    model, dtype, tp, batching, the layout (``layout``: colocated or disaggregated, and
    ``instances``: each instance's role, units, iterations, busy seconds and energy) and
    ``makespan_s`` (the simulated end time), as ``summary.json``.
    """

    result: ServeResult
    summary: Mapping[str, Any]

    @property
    def makespan_s(self) -> float:
        return self.result.makespan_s

    @property
    def energy_j(self) -> float:
        return self.result.energy_j


def _describe(s: Mapping[str, Any]) -> str:
    if s.get("prefill"):
        pools = [f"{role} on {len(s[role]['units'])} units (tp {s[role]['tp']}"
                 + (f", power {s[role]['power']}" if s[role].get("power") else "") + ")"
                 for role in ("prefill", "decode")]
        return "disaggregated: " + ", ".join(pools)
    units = s.get("units")
    return (f"tp {s['tp']}" + (f" on {len(units)} units" if units else "")
            + (f", power {s['power']}" if s.get("power") else ""))


def run_serve(scenario: Scenario, *, out_dir: str | Path | None = None, progress=None) -> tuple[ServeRun, dict]:
    """Run a ``serve:`` scenario; write ``summary.json`` and ``requests.csv``; return (ServeRun, written paths)."""
    step = progress or (lambda message: None)
    s, w = scenario.serve, scenario.workload
    step("loading platform")
    platform = load_platform(scenario.platform)
    step(f"fitting {w['model']} iterations on {platform.name} ({_describe(s)}) and serving {s['requests']} requests")
    extra = {key: s[key] for key in ("prefill_grid", "decode_grid", "units", "prefill", "decode", "power")
             if s.get(key) is not None}
    result = serve(w["model"], platform, serve_workload(s), batching=s["batching"], token_budget=s["token_budget"],
                   max_batch=s["max_batch"], slo=s.get("slo"), tp=s["tp"], seed=s["seed"], dtype=w["dtype"],
                   kv_capacity_tokens=s.get("kv_capacity_tokens"), preemption=s["preemption"], **extra)
    metrics = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.metrics.items()}
    instances = [{"name": i.name, "role": i.role, "units": list(i.units), "iterations": i.iterations,
                  "busy_s": i.busy_s, "energy_j": i.energy_j} for i in result.instances]
    summary = dict(metrics, platform=platform.name, model=w["model"], dtype=w["dtype"], tp=s["tp"],
                   batching=s["batching"], preemption=s["preemption"], makespan_s=result.makespan_s,
                   layout=_describe(s), instances=instances, tokens=sum(r.output_tokens for r in result.records),
                   slo=s.get("slo"))
    target = Path(out_dir or scenario.outputs["dir"])
    step(f"writing outputs to {target}")
    text = json.dumps(summary, indent=2, sort_keys=True, allow_nan=False) + "\n"
    written = {"summary": atomic_write(target / "summary.json", lambda tmp: tmp.write_text(text, "utf-8")),
               "requests_csv": atomic_write(target / "requests.csv", result.write_requests_csv)}
    return ServeRun(result, summary), written


__all__ = ["ServeRun", "run_serve"]
