"""Request-level serving: instances of a model on a platform's units, colocated or disaggregated.

:func:`serve` builds the instances (:mod:`hetsim.serve.instance`), fits one iteration model per
distinct instance hardware (:mod:`hetsim.serve.iteration`), runs the cluster's event loop
(:mod:`hetsim.serve.cluster`) and returns per-request records and serving metrics.

Layouts:

* colocated (default): ``units`` (default: the platform's first ``tp``) split into
  ``len(units) / tp`` replicas, each running prefill and decode (continuous or static batching);
* disaggregated: ``prefill=Pool(units, tp)`` and ``decode=Pool(units, tp)`` — prompt instances on
  one set of units, token instances on another, possibly of another kind (Splitwise, DistServe),
  with the KV cache shipped over the platform's interconnect between them.

Energy counts the instances' units only: each iteration's simulated energy, their static power
while idle between the first arrival and the last finish, and link energy for KV transfers.

Not modelled: pipeline parallelism, prefix caching, speculative decoding, KV swapping to host
memory, block (page) granularity of the KV cache, scheduler CPU overhead, network latency of
requests, and the attention of a prefill chunk over the cached earlier chunks.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from hetsim.errors import ScenarioError, field_error
from hetsim.serve.cluster import KVTransfers, route_joules, run_cluster
from hetsim.serve.instance import Instance, Live, Swap
from hetsim.serve.iteration import DECODE_GRID, PREFILL_GRID, IterationModel, fit_iteration_model
from hetsim.serve.workload import Request, Workload, make_requests
from hetsim.spec.loader import load_platform
from hetsim.spec.types import Platform

BATCHING = ("continuous", "static")
PREEMPTION = ("recompute", "swap")


@dataclass(frozen=True)
class RequestRecord:
    """What happened to one request (times in seconds from the start of the simulation).

    ``prefill_on`` and ``decode_on`` name the instances that ran its (last) prefill and its
    decodes (``decode_on`` is empty when colocated); ``kv_transfer_s`` is the time its KV cache
    spent between them.
    """

    id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    first_token_s: float
    finish_s: float
    preemptions: int
    prefill_on: str = ""
    decode_on: str = ""
    kv_transfer_s: float = 0.0

    @property
    def ttft_s(self) -> float:
        return self.first_token_s - self.arrival_s

    @property
    def e2e_s(self) -> float:
        return self.finish_s - self.arrival_s

    @property
    def tpot_s(self) -> float:
        """Mean time per output token after the first; NaN for a one-token output."""
        if self.output_tokens < 2:
            return math.nan
        return (self.finish_s - self.first_token_s) / (self.output_tokens - 1)


@dataclass(frozen=True)
class InstanceStats:
    """One instance over the whole run: its units, iterations, busy seconds and energy (idle included)."""

    name: str
    role: str
    units: tuple[str, ...]
    iterations: int
    busy_s: float
    energy_j: float


@dataclass(frozen=True)
class ServeResult:
    """Per-request records, per-instance statistics and the serving metrics computed from them."""

    records: tuple[RequestRecord, ...] = field(repr=False)
    iterations: int
    energy_j: float
    makespan_s: float
    slo: Mapping[str, float] | None = None
    instances: tuple[InstanceStats, ...] = ()
    iteration_models: Mapping[str, IterationModel] = field(default_factory=dict, repr=False)

    @property
    def iteration_model(self) -> IterationModel:
        """The first instance's iteration model (the only one of a single colocated instance)."""
        return next(iter(self.iteration_models.values()))

    @cached_property
    def metrics(self) -> dict[str, Any]:
        """TTFT/TPOT/e2e p50/p90/p99 (s), throughput, goodput, energy per token, preemptions, busy fractions.

        Throughput and goodput divide by the span from the first arrival to the last finish.
        Goodput counts requests with ``ttft <= slo["ttft_s"]`` and ``tpot <= slo["tpot_s"]``
        (a one-token request meets any TPOT bound). ``busy_fraction_<role>`` is the mean over
        that role's instances of busy time / span; ``units`` counts the instances' units.
        """
        recs = self.records
        span = max(r.finish_s for r in recs) - min(r.arrival_s for r in recs)
        tokens = sum(r.output_tokens for r in recs)
        out: dict[str, Any] = {"requests": len(recs), "iterations": self.iterations, "span_s": span}
        for name, vals in (("ttft", [r.ttft_s for r in recs]), ("tpot", [r.tpot_s for r in recs]),
                           ("e2e", [r.e2e_s for r in recs])):
            arr = np.array([v for v in vals if not math.isnan(v)])
            for q in (50, 90, 99):
                out[f"{name}_p{q}_s"] = float(np.percentile(arr, q)) if arr.size else math.nan
        out["throughput_tokens_per_s"] = tokens / span
        out["throughput_requests_per_s"] = len(recs) / span
        if self.slo:
            good = sum(1 for r in recs if r.ttft_s <= self.slo.get("ttft_s", math.inf)
                       and (r.output_tokens < 2 or r.tpot_s <= self.slo.get("tpot_s", math.inf)))
            out["goodput_requests_per_s"] = good / span
            out["slo_attainment"] = good / len(recs)
        out["energy_j"] = self.energy_j
        out["energy_per_token_j"] = self.energy_j / tokens
        out["preemptions"] = sum(r.preemptions for r in recs)
        out["fit_max_rel_error"] = max(m.max_rel_error for m in self.iteration_models.values())
        out["units"] = sum(len(i.units) for i in self.instances)
        for role in sorted({i.role for i in self.instances}):
            fracs = [i.busy_s / span for i in self.instances if i.role == role]
            out[f"busy_fraction_{role}"] = sum(fracs) / len(fracs) if span > 0 else math.nan
        shipped = [r.kv_transfer_s for r in recs if r.decode_on]
        if shipped:
            out["kv_transfer_mean_s"] = float(np.mean(shipped))
            out["kv_transfer_p99_s"] = float(np.percentile(shipped, 99))
        return out

    def write_requests_csv(self, path: str | Path) -> Path:
        """One row per request: ids, token counts, times, TTFT, TPOT, e2e, preemptions, instances."""
        path = Path(path)
        cols = ["id", "arrival_s", "prompt_tokens", "output_tokens", "first_token_s", "finish_s", "ttft_s", "tpot_s",
                "e2e_s", "preemptions", "prefill_on", "decode_on", "kv_transfer_s"]
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            for r in self.records:
                w.writerow([getattr(r, c) for c in cols])
        return path


@dataclass(frozen=True)
class Pool:
    """Units serving one phase of a disaggregated layout, as instances of ``tp`` consecutive units.

    ``power`` is optional ``sim.power`` options for each instance's iterations, e.g.
    ``{"cap": "2400 W"}`` (a cap on the summed power of the instance's units) or a governor.

    Examples
    --------
    >>> Pool(("h.gpu0", "h.gpu1", "h.gpu2", "h.gpu3"), tp=2).instances()
    [('h.gpu0', 'h.gpu1'), ('h.gpu2', 'h.gpu3')]
    """

    units: tuple[str, ...]
    tp: int = 1
    power: Mapping[str, Any] | None = None

    def instances(self) -> list[tuple[str, ...]]:
        return [tuple(self.units[i:i + self.tp]) for i in range(0, len(self.units), self.tp)]


def _check(name: str, value: Any, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise field_error(ScenarioError, name, value, f"an integer >= {low}")


def _pool(raw: Pool | Mapping | Sequence | None, name: str, plat: Platform, tp: int = 1) -> Pool | None:
    """A checked pool: units of ``plat`` (distinct), a count divisible by ``tp``."""
    if raw is None:
        return None
    power = None
    if isinstance(raw, Pool):
        units, tp, power = raw.units, raw.tp, raw.power
    elif isinstance(raw, Mapping):
        if not set(raw) <= {"units", "tp", "power"} or "units" not in raw:
            raise field_error(ScenarioError, name, dict(raw), "a mapping {units: [unit names], tp: n, power: {...}}")
        units, tp, power = raw["units"], raw.get("tp", 1), raw.get("power")
    else:
        units = raw
    known = {u.name for u in plat.units}
    if (isinstance(units, str) or not isinstance(units, Sequence) or not units
            or not all(isinstance(u, str) and u in known for u in units) or len(set(units)) != len(units)):
        raise field_error(ScenarioError, f"{name}.units", units, f"a list of distinct unit names of {plat.name}")
    _check(f"{name}.tp", tp)
    if len(units) % tp:
        raise field_error(ScenarioError, f"{name}.tp", tp, f"a divisor of the {len(units)} units listed")
    _check_power(power, f"{name}.power")
    return Pool(tuple(units), tp, dict(power) if power else None)


def _check_power(power: Any, name: str) -> None:
    """``sim.power`` options, their one-line errors named after the pool's field."""
    from hetsim.sim.power import PowerOptions

    if power is None:
        return
    try:
        options = PowerOptions.parse(power)
    except ScenarioError as exc:
        raise ScenarioError(str(exc).replace("sim.power", name, 1)) from None
    if options.cap_budget:
        raise field_error(ScenarioError, f"{name}.cap", "budget", "watts (an instance has no package budget)")


def _hardware(plat: Platform, units: tuple[str, ...]) -> str:
    """What an instance's fit depends on besides the model: its units, memories and the routes between them."""
    parts = []
    for name in units:
        unit = plat.unit(name)
        memory = plat.memory(unit.memory)
        parts.append(repr((dataclasses.replace(unit, name="", memory=""), dataclasses.replace(memory, name=""))))
    for a in units:
        for b in units:
            route = plat.route(plat.unit(a).memory, plat.unit(b).memory)
            parts.append(f"{route.latency_s!r}/{route.bandwidth_bytes_per_s!r}")
    return "|".join(parts)


def serve(model: str, platform: str | Platform, workload: Workload | list[Request], *, batching: str = "continuous",
          token_budget: int = 2048, max_batch: int = 256, slo: Mapping[str, float] | None = None, tp: int = 1,
          units: Sequence[str] | None = None, prefill: Pool | Mapping | None = None,
          decode: Pool | Mapping | None = None, power: Mapping[str, Any] | None = None,
          preemption: str = "recompute", seed: int = 0, dtype: str = "bf16",
          kv_capacity_tokens: int | None = None, prefill_grid: tuple[int, ...] = PREFILL_GRID,
          decode_grid: tuple[tuple[int, int], ...] = DECODE_GRID) -> ServeResult:
    """Simulate serving ``workload`` with ``model`` on ``platform``.

    Parameters
    ----------
    model : str
        A catalogue model.
    platform : str or Platform
    workload : Workload or list of Request
    batching : {"continuous", "static"}
        Static batching is for colocated instances only.
    token_budget : int
        Tokens per continuous-batching iteration (decodes count one each; the rest are prefill chunks).
    max_batch : int
        Requests running at once per instance (static: the batch size).
    slo : mapping, optional
        ``{"ttft_s": X, "tpot_s": Y}`` for goodput.
    tp : int
        Tensor-parallel ranks per colocated instance.
    units : sequence of str, optional
        Colocated: the units to serve on, ``len(units) / tp`` replicas (default: the platform's
        first ``tp`` units, one instance).
    prefill, decode : Pool or mapping ``{units: [...], tp: n, power: {...}}``, optional
        Give both for a disaggregated layout (then not ``units``).
    power : mapping, optional
        ``sim.power`` options of the colocated instances (pools carry their own).
    preemption : {"recompute", "swap"}
        What happens to a preempted request's KV cache: dropped and recomputed, or copied to the
        nearest CPU memory over the platform's route while that memory has room (vLLM's two
        modes). Each rank copies its share over its own route, in parallel.
    seed : int
        Seed of the workload's random draws.
    dtype : str
    kv_capacity_tokens : int, optional
        Override every instance's KV capacity (derived from memory capacity − weights).
    prefill_grid, decode_grid
        The iteration-model fit grid, see :func:`fit_iteration_model`.

    Examples
    --------
    >>> from hetsim.serve import Request, serve
    >>> grid = {"prefill_grid": (16, 64, 128), "decode_grid": ((1, 32), (8, 64), (16, 128))}
    >>> res = serve("llama-tiny", "gh200", [Request(0, 0.0, 64, 8)], dtype="fp32",
    ...             prefill={"units": ["gpu"]}, decode={"units": ["cpu"]}, **grid)
    >>> (rec,) = res.records
    >>> rec.prefill_on, rec.decode_on, rec.kv_transfer_s > 0
    ('prefill0', 'decode0', True)
    """
    if batching not in BATCHING:
        raise field_error(ScenarioError, "serve.batching", batching, "'continuous' or 'static'")
    _check("serve.token_budget", token_budget)
    _check("serve.max_batch", max_batch)
    _check("serve.tp", tp)
    if kv_capacity_tokens is not None:
        _check("serve.kv_capacity_tokens", kv_capacity_tokens)
    if slo is not None and (not isinstance(slo, Mapping) or not set(slo) <= {"ttft_s", "tpot_s"}):
        raise field_error(ScenarioError, "serve.slo", slo, "a mapping with keys ttft_s and/or tpot_s")
    requests = make_requests(workload, seed) if isinstance(workload, Workload) else list(workload)
    if not requests:
        raise field_error(ScenarioError, "serve.workload", requests, "at least one request")
    plat = load_platform(platform)
    if preemption not in PREEMPTION:
        raise field_error(ScenarioError, "serve.preemption", preemption, "'recompute' or 'swap'")
    layout = _layout(plat, tp, units, prefill, decode, batching, power)
    room: dict[str, int] = {}
    fits: dict[tuple, IterationModel] = {}
    instances = []
    for role, names, options in layout:
        phases = ("prefill", "decode") if role == "both" else (role,)
        key = (_hardware(plat, names), phases, repr(sorted((options or {}).items())))
        if key not in fits:
            fits[key] = fit_iteration_model(model, platform if isinstance(platform, str) else plat, units=names,
                                            dtype=dtype, prefill_grid=prefill_grid, decode_grid=decode_grid,
                                            phases=phases, power=options)
        im = fits[key]
        index = sum(1 for i in instances if i.role == role)
        idle = math.fsum(plat.unit(u).nominal.static_power_w for u in names)
        swap = _swap(plat, names, im.kv_bytes_per_token, room) if preemption == "swap" else None
        instances.append(Instance(f"{'engine' if role == 'both' else role}{index}", names, role, im,
                                  im.kv_capacity_tokens if kv_capacity_tokens is None else kv_capacity_tokens,
                                  batching, token_budget, max_batch, idle, swap))
    cap = min(i.capacity for i in instances)
    for r in requests:
        if r.prompt_tokens + r.output_tokens > cap:
            raise field_error(ScenarioError, f"request {r.id}", r.prompt_tokens + r.output_tokens,
                              f"prompt + output tokens <= the KV capacity ({cap} tokens)")
    transfers = KVTransfers(plat, instances[0].model.kv_bytes_per_token)
    lives, end = run_cluster(requests, instances, transfers)
    start = min(r.arrival_s for r in requests)
    stats = tuple(InstanceStats(i.name, i.role, i.units, i.iterations, i.busy_s,
                                i.energy_j + i.idle_power_w * max(end - start - i.busy_s, 0.0)) for i in instances)
    energy = math.fsum(s.energy_j for s in stats) + transfers.energy_j
    return ServeResult(records=tuple(_record(x) for x in lives), iterations=sum(s.iterations for s in stats),
                       energy_j=energy, makespan_s=end, slo=dict(slo) if slo else None, instances=stats,
                       iteration_models={i.name: i.model for i in instances})


def _swap(plat: Platform, units: tuple[str, ...], kv_bytes_per_token: float, room: dict[str, int]) -> Swap:
    """Swap preemption to the CPU memory nearest the instance's first rank (lowest route latency)."""
    own = {plat.unit(u).memory for u in units}
    hosts = sorted({u.memory for u in plat.units if u.kind == "cpu"} - own)
    if not hosts:
        raise field_error(ScenarioError, "serve.preemption", "swap",
                          f"'recompute' on {plat.name}: no CPU memory outside the instance {'+'.join(units)}")
    first = plat.unit(units[0]).memory
    host = min(hosts, key=lambda m: (plat.route(first, m).latency_s, m))
    room.setdefault(host, int(plat.memory(host).capacity_bytes // kv_bytes_per_token))
    routes = [plat.route(plat.unit(u).memory, host) for u in units]

    def seconds(tokens: int) -> float:
        return max(r.time_s(tokens * kv_bytes_per_token / len(units)) for r in routes)

    def joules(tokens: int) -> float:
        return math.fsum(route_joules(plat, r, tokens * kv_bytes_per_token / len(units)) for r in routes)

    return Swap(host, room, seconds, joules)


def _record(x: Live) -> RequestRecord:
    r = x.req
    return RequestRecord(r.id, r.arrival_s, r.prompt_tokens, r.output_tokens, x.first_token_s, x.finish_s,
                         x.preemptions, x.prefill_on, x.decode_on, x.transfer_s)


def _layout(plat: Platform, tp: int, units: Sequence[str] | None, prefill, decode, batching: str,
            power: Mapping[str, Any] | None) -> list[tuple[str, tuple[str, ...], Mapping[str, Any] | None]]:
    """(role, units, power options) of every instance, checked: pools of distinct units, both or neither pool."""
    p = _pool(prefill, "serve.prefill", plat)
    d = _pool(decode, "serve.decode", plat)
    if (p is None) != (d is None):
        missing = "decode" if d is None else "prefill"
        raise field_error(ScenarioError, f"serve.{missing}", None, "a pool too (disaggregation needs both)")
    if p is None:
        if units is None:
            if tp > len(plat.units):
                raise field_error(ScenarioError, "serve.tp", tp,
                                  f"an integer in 1..{len(plat.units)} (units of {plat.name})")
            units = [u.name for u in plat.units[:tp]]
        pool = _pool({"units": list(units), "tp": tp}, "serve", plat)
        _check_power(power, "serve.power")
        return [("both", names, power) for names in pool.instances()]
    if units is not None:
        raise field_error(ScenarioError, "serve.units", list(units), "no units with prefill/decode pools")
    if power is not None:
        raise field_error(ScenarioError, "serve.power", power, "none with prefill/decode pools (give each its own)")
    if batching != "continuous":
        raise field_error(ScenarioError, "serve.batching", batching, "'continuous' with prefill/decode pools")
    shared = set(p.units) & set(d.units)
    if shared:
        raise field_error(ScenarioError, "serve.decode.units", sorted(shared), "units not in serve.prefill.units")
    return [("prefill", n, p.power) for n in p.instances()] + [("decode", n, d.power) for n in d.instances()]
