"""The ``serve:`` section of a scenario: checked with one-line errors naming ``serve.<field>``.

::

    serve: {requests: 1000, arrival: poisson, rate_per_s: 8, cv: 1,      # or arrival: trace, trace: f.csv
            prompt: {dist: lognormal, mean: 512, sigma: 0.5, max: 4096}, output: {dist: fixed, value: 128},
            batching: continuous, token_budget: 2048, max_batch: 256, slo: {ttft_s: 0.5, tpot_s: 0.05},
            tp: 1, seed: 0}    # optional too: kv_capacity_tokens, prefill_grid: [..], decode_grid: [[b, ctx], ..],
                               # preemption: recompute | swap
    # layouts: units: [gpu0, gpu1, gpu2, gpu3] with tp: 2 is two replicas; disaggregated pools:
    #          prefill: {units: [h.gpu0, ...], tp: 8}, decode: {units: [a.gpu0, ...], tp: 4,
    #          power: {cap: 2400 W}}; power: {...} (sim.power options) for colocated instances

:func:`hetsim.scenario.parse_scenario` calls :func:`parse_serve`; :func:`hetsim.serve.run.run_serve`
runs the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hetsim.errors import ScenarioError
from hetsim.scenario import check_keys, positive_int, positive_number
from hetsim.serve.simulator import BATCHING, PREEMPTION
from hetsim.serve.workload import ARRIVALS, Workload, make_requests

SERVE_KEYS = ("requests", "arrival", "rate_per_s", "cv", "prompt", "output", "trace", "batching", "token_budget",
              "max_batch", "slo", "tp", "seed", "kv_capacity_tokens", "prefill_grid", "decode_grid", "units",
              "prefill", "decode", "power", "preemption")
POOL_KEYS = ("units", "tp", "power")


def parse_serve(raw: Any, base: Path | None) -> dict:
    """Check the ``serve:`` section (one-line errors naming ``serve.<field>``); return its fields."""
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"serve: got {raw!r}, expected a mapping such as {{requests: 100, rate_per_s: 8}}")
    check_keys(raw, "serve", SERVE_KEYS)
    out = dict(raw)
    trace = out.get("trace")
    if trace is not None:
        if not isinstance(trace, str):
            raise ScenarioError(f"serve.trace: got {trace!r}, expected a CSV file path")
        path = Path(trace)
        out["trace"] = str(base / path if base is not None and not path.is_absolute() else path)
    out.setdefault("arrival", "trace" if trace is not None else "poisson")
    if out["arrival"] not in ARRIVALS:
        raise ScenarioError(f"serve.arrival: got {out['arrival']!r}, expected one of {', '.join(ARRIVALS)}")
    out["requests"] = positive_int(out.get("requests", 100), "serve.requests")
    out["rate_per_s"] = positive_number(out.get("rate_per_s", 1.0), "serve.rate_per_s")
    out["cv"] = positive_number(out.get("cv", 1.0), "serve.cv")
    if out.get("batching", "continuous") not in BATCHING:
        raise ScenarioError(f"serve.batching: got {out['batching']!r}, expected one of {', '.join(BATCHING)}")
    out.setdefault("batching", "continuous")
    if out.setdefault("preemption", "recompute") not in PREEMPTION:
        raise ScenarioError(f"serve.preemption: got {out['preemption']!r}, expected one of {', '.join(PREEMPTION)}")
    for key, default in (("token_budget", 2048), ("max_batch", 256), ("tp", 1)):
        out[key] = positive_int(out.get(key, default), f"serve.{key}")
    if out.get("kv_capacity_tokens") is not None:
        out["kv_capacity_tokens"] = positive_int(out["kv_capacity_tokens"], "serve.kv_capacity_tokens")
    seed = out.setdefault("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ScenarioError(f"serve.seed: got {seed!r}, expected an integer")
    slo = out.get("slo")
    if slo is not None:
        if not isinstance(slo, Mapping) or not slo or not set(slo) <= {"ttft_s", "tpot_s"}:
            raise ScenarioError(f"serve.slo: got {slo!r}, expected a mapping with keys ttft_s and/or tpot_s")
        out["slo"] = {key: positive_number(value, f"serve.slo.{key}") for key, value in slo.items()}
    grid = out.get("prefill_grid")
    if grid is not None:
        if not isinstance(grid, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in grid):
            raise ScenarioError(f"serve.prefill_grid: got {grid!r}, expected a list of prompt lengths")
        out["prefill_grid"] = tuple(grid)
    grid = out.get("decode_grid")
    if grid is not None:
        if not isinstance(grid, list) or not all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in p)
                for p in grid):
            raise ScenarioError(f"serve.decode_grid: got {grid!r}, expected a list of [batch, context] pairs")
        out["decode_grid"] = tuple(tuple(p) for p in grid)
    _serve_layout(out)
    workload = serve_workload(out)
    try:  # draws the requests once (cheap) so bad lengths or a bad trace fail here, named serve.*
        make_requests(workload, out["seed"])
    except ScenarioError as exc:
        text = str(exc).replace("workload.n_requests", "serve.requests")
        raise ScenarioError(text.replace("workload.", "serve.", 1) if text.startswith("workload.") else text) from None
    return out


def _unit_list(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(u, str) for u in value):
        raise ScenarioError(f"{field}: got {value!r}, expected a non-empty list of unit names")
    return list(value)


def _serve_layout(out: dict) -> None:
    """``serve.units`` (colocated replicas) or ``serve.prefill`` + ``serve.decode`` pools ``{units, tp}``."""
    if out.get("units") is not None:
        out["units"] = _unit_list(out["units"], "serve.units")
    given = [role for role in ("prefill", "decode") if out.get(role) is not None]
    if len(given) == 1:
        missing = ({"prefill", "decode"} - set(given)).pop()
        raise ScenarioError(f"serve.{missing}: missing, expected it with serve.{given[0]} (disaggregation needs both)")
    for role in given:
        pool = out[role]
        if not isinstance(pool, Mapping):
            raise ScenarioError(f"serve.{role}: got {pool!r}, expected a mapping {{units: [unit names], tp: n}}")
        check_keys(pool, f"serve.{role}", POOL_KEYS)
        out[role] = {"units": _unit_list(pool.get("units"), f"serve.{role}.units"),
                     "tp": positive_int(pool.get("tp", 1), f"serve.{role}.tp"),
                     "power": _power(pool.get("power"), f"serve.{role}.power")}
    out["power"] = _power(out.get("power"), "serve.power")
    if given and out.get("units") is not None:
        raise ScenarioError(f"serve.units: got {out['units']!r}, expected no serve.units with serve.prefill/decode")


def _power(value: Any, field: str) -> dict | None:
    if value is not None and not isinstance(value, Mapping):
        raise ScenarioError(f"{field}: got {value!r}, expected a mapping of sim.power options such as {{cap: 2400 W}}")
    return dict(value) if value is not None else None


def serve_workload(serve: Mapping[str, Any]):
    """The :class:`hetsim.serve.Workload` of a checked ``serve:`` section."""
    kw = {key: serve[key] for key in ("prompt", "output") if key in serve}
    return Workload(n_requests=serve["requests"], arrival=serve["arrival"], rate_per_s=serve["rate_per_s"],
                    cv=serve["cv"], trace=serve.get("trace"), **kw)


__all__ = ["POOL_KEYS", "SERVE_KEYS", "parse_serve", "serve_workload"]
