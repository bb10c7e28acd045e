"""The serving loop: continuous (or static) batching over fitted iterations, with a KV-cache budget.

A plain event loop, one step per engine iteration (SimPy is for :mod:`hetsim.sim` only, and an
iteration loop needs no concurrency). Each continuous-batching iteration:

1. requests that arrived by now join the waiting queue (FCFS; preempted requests go to its front);
2. every running request that has finished its prefill decodes one token (one budget token each);
   if the KV cache cannot take one more token per decoder, the newest running request is
   preempted (recompute: its KV is freed and it must prefill prompt + generated tokens again);
3. the rest of ``token_budget`` goes to prefill chunks: first the running requests still
   prefilling, then waiting requests admitted FCFS while ``max_batch`` allows and their whole KV
   (prompt + output so far) fits in the free cache; admission stops at the first that does not fit;
4. the iteration lasts :meth:`IterationModel.iteration`; a request whose prefill completes emits
   a token at the end of the iteration (the first token, or the next one after a recompute).

Static batching waits for the batch to drain, admits up to ``max_batch`` waiting requests that
fit, prefills them together in one iteration, then decodes until the last one finishes.

Not modelled: pipeline parallelism, prefix caching, speculative decoding, KV swapping to host
memory, block (page) granularity of the KV cache, scheduler CPU overhead, network latency.
"""

from __future__ import annotations

import csv
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from hetsim.errors import ScenarioError, field_error
from hetsim.serve.iteration import DECODE_GRID, PREFILL_GRID, IterationModel, fit_iteration_model
from hetsim.serve.workload import Request, Workload, make_requests
from hetsim.spec.types import Platform

BATCHING = ("continuous", "static")


@dataclass(frozen=True)
class RequestRecord:
    """What happened to one request (times in seconds from the start of the simulation)."""

    id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    first_token_s: float
    finish_s: float
    preemptions: int

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
class ServeResult:
    """Per-request records and the serving metrics computed from them."""

    records: tuple[RequestRecord, ...] = field(repr=False)
    iteration_model: IterationModel = field(repr=False)
    iterations: int
    energy_j: float
    makespan_s: float
    slo: Mapping[str, float] | None = None

    @cached_property
    def metrics(self) -> dict[str, Any]:
        """TTFT/TPOT/e2e p50/p90/p99 (s), throughput, goodput, energy per token, preemptions.

        Throughput and goodput divide by the span from the first arrival to the last finish.
        Goodput counts requests with ``ttft <= slo["ttft_s"]`` and ``tpot <= slo["tpot_s"]``
        (a one-token request meets any TPOT bound).
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
        out["fit_max_rel_error"] = self.iteration_model.max_rel_error
        return out

    def write_requests_csv(self, path: str | Path) -> Path:
        """One row per request: ids, token counts, times, TTFT, TPOT, e2e, preemptions."""
        path = Path(path)
        cols = ["id", "arrival_s", "prompt_tokens", "output_tokens", "first_token_s", "finish_s", "ttft_s", "tpot_s",
                "e2e_s", "preemptions"]
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            for r in self.records:
                w.writerow([getattr(r, c) for c in cols])
        return path


@dataclass
class _Live:
    req: Request
    generated: int = 0  # output tokens emitted so far
    need: int = 0  # prefill tokens still to run since the last admission
    kv: int = 0  # tokens held in the KV cache (reserved for the whole prefill at admission)
    first_token_s: float = math.nan
    preemptions: int = 0

    @property
    def decoding(self) -> bool:
        return self.need == 0


def _check(name: str, value: Any, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise field_error(ScenarioError, name, value, f"an integer >= {low}")


def run_loop(requests: list[Request], im: IterationModel, *, batching: str = "continuous", token_budget: int = 2048,
             max_batch: int = 256,
             kv_capacity_tokens: int | None = None) -> tuple[list[RequestRecord], int, float, float]:
    """Step the engine over ``requests``; return (records by id, iterations, energy J, end time s)."""
    cap = im.kv_capacity_tokens if kv_capacity_tokens is None else kv_capacity_tokens
    for r in requests:
        if r.prompt_tokens + r.output_tokens > cap:
            raise field_error(ScenarioError, f"request {r.id}", r.prompt_tokens + r.output_tokens,
                              f"prompt + output tokens <= the KV capacity ({cap} tokens)")
    pending = deque(sorted(requests, key=lambda r: (r.arrival_s, r.id)))
    waiting: deque[_Live] = deque()
    running: list[_Live] = []  # in admission order: the last is the newest
    done: dict[int, RequestRecord] = {}
    t = energy = 0.0
    used = iterations = 0
    static = batching == "static"
    while pending or waiting or running:
        if not waiting and not running and pending[0].arrival_s > t:
            t = pending[0].arrival_s
        while pending and pending[0].arrival_s <= t:
            waiting.append(_Live(pending.popleft()))
        decoders = [x for x in running if x.decoding]
        while used + len(decoders) > cap:  # preempt the newest until one more token each fits
            victim = running.pop()
            used -= victim.kv
            victim.kv = 0
            victim.preemptions += 1
            waiting.appendleft(victim)
            decoders = [x for x in running if x.decoding]
        budget = math.inf if static else token_budget - len(decoders)
        chunks: list[tuple[_Live, int]] = []
        for x in running:
            if not x.decoding and budget > 0:
                n = int(min(x.need, budget))
                chunks.append((x, n))
                budget -= n
        if not static or not running:
            while waiting and len(running) < max_batch and budget > 0:
                x = waiting[0]
                if used + x.req.prompt_tokens + x.generated > cap:
                    break
                waiting.popleft()
                x.kv = x.need = x.req.prompt_tokens + x.generated  # recompute prefills the output so far too
                used += x.kv
                running.append(x)
                n = int(min(x.need, budget))
                chunks.append((x, n))
                budget -= n
        if not chunks and not decoders:  # nothing fits nor runs: wait for the next arrival
            if not pending:
                raise ScenarioError("serve: no request can be admitted and none is running (KV capacity too small)")
            t = max(t, pending[0].arrival_s)
            continue
        context = sum(x.kv for x in decoders)
        dt, de = im.iteration([n for _, n in chunks], len(decoders), context)
        t += dt
        energy += de
        iterations += 1
        for x in decoders:
            x.generated += 1
            x.kv += 1
            used += 1
        for x, n in chunks:
            x.need -= n
            if x.decoding:
                x.generated += 1  # the prefill's last position emits a token; its KV comes with its decode step
                if math.isnan(x.first_token_s):
                    x.first_token_s = t
        finished = [x for x in running if x.generated >= x.req.output_tokens]
        for x in finished:
            used -= x.kv
            r = x.req
            done[r.id] = RequestRecord(r.id, r.arrival_s, r.prompt_tokens, r.output_tokens, x.first_token_s, t,
                                       x.preemptions)
        if finished:
            running = [x for x in running if x.generated < x.req.output_tokens]
    return [done[i] for i in sorted(done)], iterations, energy, t


def serve(model: str, platform: str | Platform, workload: Workload | list[Request], *, batching: str = "continuous",
          token_budget: int = 2048, max_batch: int = 256, slo: Mapping[str, float] | None = None, tp: int = 1,
          seed: int = 0, dtype: str = "bf16", kv_capacity_tokens: int | None = None,
          prefill_grid: tuple[int, ...] = PREFILL_GRID,
          decode_grid: tuple[tuple[int, int], ...] = DECODE_GRID) -> ServeResult:
    """Simulate serving ``workload`` with ``model`` on ``platform``.

    Parameters
    ----------
    model : str
        A catalogue model.
    platform : str or Platform
    workload : Workload or list of Request
    batching : {"continuous", "static"}
    token_budget : int
        Tokens per continuous-batching iteration (decodes count one each; the rest are prefill chunks).
    max_batch : int
        Requests running at once (static: the batch size).
    slo : mapping, optional
        ``{"ttft_s": X, "tpot_s": Y}`` for goodput.
    tp : int
        Tensor-parallel ranks (the platform's first ``tp`` units).
    seed : int
        Seed of the workload's random draws.
    dtype : str
    kv_capacity_tokens : int, optional
        Override the KV capacity derived from memory capacity − weights.
    prefill_grid, decode_grid
        The iteration-model fit grid, see :func:`fit_iteration_model`.
    """
    if batching not in BATCHING:
        raise field_error(ScenarioError, "serve.batching", batching, "'continuous' or 'static'")
    _check("serve.token_budget", token_budget)
    _check("serve.max_batch", max_batch)
    if kv_capacity_tokens is not None:
        _check("serve.kv_capacity_tokens", kv_capacity_tokens)
    if slo is not None and (not isinstance(slo, Mapping) or not set(slo) <= {"ttft_s", "tpot_s"}):
        raise field_error(ScenarioError, "serve.slo", slo, "a mapping with keys ttft_s and/or tpot_s")
    requests = make_requests(workload, seed) if isinstance(workload, Workload) else list(workload)
    if not requests:
        raise field_error(ScenarioError, "serve.workload", requests, "at least one request")
    im = fit_iteration_model(model, platform, tp=tp, dtype=dtype, prefill_grid=prefill_grid, decode_grid=decode_grid)
    records, iterations, energy, end = run_loop(requests, im, batching=batching, token_budget=token_budget,
                                                max_batch=max_batch, kv_capacity_tokens=kv_capacity_tokens)
    return ServeResult(records=tuple(records), iteration_model=im, iterations=iterations, energy_j=energy,
                       makespan_s=end, slo=dict(slo) if slo else None)
