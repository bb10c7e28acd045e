"""Seeded request streams: arrival processes and prompt/output length distributions.

A :class:`Workload` is a plain description; :func:`make_requests` turns it into requests with
``numpy.random.default_rng(seed)``, so the same workload and seed give the same requests.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hetsim.errors import ScenarioError, field_error

ARRIVALS = ("poisson", "gamma", "trace")
LENGTHS = ("fixed", "uniform", "lognormal")


@dataclass(frozen=True)
class Request:
    """One request: when it arrives and how many tokens it reads and writes."""

    id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Workload:
    """What arrives.

    Parameters
    ----------
    n_requests : int
        How many requests (ignored for a trace, which brings its own).
    arrival : {"poisson", "gamma", "trace"}
        ``poisson``: exponential gaps at ``rate_per_s``. ``gamma``: gamma gaps with mean
        ``1/rate_per_s`` and coefficient of variation ``cv`` (cv > 1 is bursty, cv = 1 is Poisson).
        ``trace``: read ``trace`` (CSV with columns arrival_s, prompt_tokens, output_tokens).
    rate_per_s, cv : float
    prompt, output : mapping
        Length distributions: ``{"dist": "fixed", "value": n}``, ``{"dist": "uniform", "lo": a,
        "hi": b}`` (inclusive) or ``{"dist": "lognormal", "mean": m, "sigma": s, "max": n}``
        (``mean`` is the mean of the lengths, not of the log; draws are rounded and clipped to
        [1, max]).
    trace : str or Path, optional
    """

    n_requests: int = 100
    arrival: str = "poisson"
    rate_per_s: float = 1.0
    cv: float = 1.0
    prompt: Mapping[str, Any] = field(default_factory=lambda: {"dist": "fixed", "value": 128})
    output: Mapping[str, Any] = field(default_factory=lambda: {"dist": "fixed", "value": 128})
    trace: str | Path | None = None


def _positive(name: str, value: Any, integer: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0 and np.isfinite(value)
    if integer:
        ok = ok and float(value).is_integer()
    if not ok:
        raise field_error(ScenarioError, name, value, "a positive integer" if integer else "a positive number")


def _lengths(spec: Mapping[str, Any], name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if not isinstance(spec, Mapping) or spec.get("dist") not in LENGTHS:
        got = spec.get("dist") if isinstance(spec, Mapping) else spec
        raise field_error(ScenarioError, f"workload.{name}.dist", got, f"one of {', '.join(LENGTHS)}")
    dist = spec["dist"]
    if dist == "fixed":
        _positive(f"workload.{name}.value", spec.get("value"), integer=True)
        return np.full(n, int(spec["value"]), dtype=np.int64)
    if dist == "uniform":
        lo, hi = spec.get("lo"), spec.get("hi")
        _positive(f"workload.{name}.lo", lo, integer=True)
        _positive(f"workload.{name}.hi", hi, integer=True)
        if hi < lo:
            raise field_error(ScenarioError, f"workload.{name}.hi", hi, f"an integer >= lo ({lo})")
        return rng.integers(int(lo), int(hi) + 1, size=n)
    mean, sigma, top = spec.get("mean"), spec.get("sigma"), spec.get("max")
    _positive(f"workload.{name}.mean", mean)
    _positive(f"workload.{name}.sigma", sigma)
    _positive(f"workload.{name}.max", top, integer=True)
    mu = np.log(mean) - sigma**2 / 2  # so that E[length] = mean before rounding and clipping
    return np.clip(np.rint(rng.lognormal(mu, sigma, size=n)), 1, int(top)).astype(np.int64)


def _read_trace(path: str | Path | None) -> list[Request]:
    if path is None or not Path(path).is_file():
        raise field_error(ScenarioError, "workload.trace", None if path is None else str(path),
                          "a CSV file with columns arrival_s, prompt_tokens, output_tokens")
    out = []
    with open(path, newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            try:
                req = Request(i, float(row["arrival_s"]), int(row["prompt_tokens"]), int(row["output_tokens"]))
            except (KeyError, TypeError, ValueError):
                raise field_error(ScenarioError, f"workload.trace row {i + 1}", dict(row),
                                  "numbers in columns arrival_s, prompt_tokens, output_tokens") from None
            if req.arrival_s < 0 or req.prompt_tokens < 1 or req.output_tokens < 1:
                raise field_error(ScenarioError, f"workload.trace row {i + 1}", dict(row),
                                  "arrival_s >= 0 and token counts >= 1")
            out.append(req)
    if not out:
        raise field_error(ScenarioError, "workload.trace", str(path), "at least one request")
    out.sort(key=lambda r: (r.arrival_s, r.id))
    return [Request(i, r.arrival_s, r.prompt_tokens, r.output_tokens) for i, r in enumerate(out)]


def make_requests(workload: Workload, seed: int = 0) -> list[Request]:
    """The workload's requests, sorted by arrival, ids 0..n-1 in arrival order.

    Examples
    --------
    >>> w = Workload(n_requests=3, rate_per_s=10.0, prompt={"dist": "uniform", "lo": 4, "hi": 8})
    >>> a, b = make_requests(w, seed=1), make_requests(w, seed=1)
    >>> a == b, len(a), all(4 <= r.prompt_tokens <= 8 for r in a), a[0].arrival_s < a[1].arrival_s
    (True, 3, True, True)
    """
    if workload.arrival not in ARRIVALS:
        raise field_error(ScenarioError, "workload.arrival", workload.arrival, f"one of {', '.join(ARRIVALS)}")
    if workload.arrival == "trace":
        return _read_trace(workload.trace)
    _positive("workload.n_requests", workload.n_requests, integer=True)
    _positive("workload.rate_per_s", workload.rate_per_s)
    n, rng = int(workload.n_requests), np.random.default_rng(seed)
    if workload.arrival == "poisson":
        gaps = rng.exponential(1.0 / workload.rate_per_s, size=n)
    else:
        _positive("workload.cv", workload.cv)
        shape = 1.0 / workload.cv**2  # gamma CV = 1/sqrt(shape)
        gaps = rng.gamma(shape, 1.0 / (workload.rate_per_s * shape), size=n)
    arrivals = np.cumsum(gaps)
    prompts = _lengths(workload.prompt, "prompt", n, rng)
    outputs = _lengths(workload.output, "output", n, rng)
    return [Request(i, float(arrivals[i]), int(prompts[i]), int(outputs[i])) for i in range(n)]
