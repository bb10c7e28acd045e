"""The time and energy of one serving-engine iteration, fitted to hetsim's own simulations.

Like Vidur, the serving loop does not simulate every iteration's op graph: it simulates a small
grid once and fits closed forms (least squares, numpy), cached per (model, platform, layout):

* prefill of one sequence of ``T`` tokens: ``t = a + b·T + c·T²`` (attention is quadratic);
* decode of ``B`` sequences with ``L`` cached tokens each: ``t = a + b·B + c·B·L`` (KV reads
  grow with the context).

The fit minimises *relative* error (each grid row is divided by its simulated time), so short,
overhead-bound iterations count as much as long ones; :attr:`IterationModel.max_rel_error` is
the worst relative error over the grid. Energy per iteration is fitted the same way, on the
simulated energy (∫P dt including static power, plus bytes moved), not average power × time.

An iteration of the engine mixes prefill chunks ``T_i`` (each after ``C_i`` tokens of its
sequence already cached) and ``B`` decodes with contexts ``L_j``; it takes
``max(a_p, a_d) + b_p·ΣT_i + c_p·Σ(T_i² + 2·T_i·C_i) + b_d·B + c_d·ΣL_j``: the intercepts
(weight reads, launch overheads) are paid once per iteration, the per-token terms add up. The
quadratic term counts attention pairs: a whole prompt of ``T`` tokens has ``T²/2`` (causal), a
chunk ``T_i·C_i`` against the cache plus ``T_i²/2`` among its own tokens, so the chunks of one
prompt add up to exactly the quadratic cost of prefilling it at once
(``Σ(T_i² + 2·T_i·C_i) = (ΣT_i)²``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hetsim.api import simulate
from hetsim.errors import ScenarioError, field_error
from hetsim.graph.catalog import MODEL_DTYPES, model_config, model_graph
from hetsim.graph.parallel import tensor_parallel
from hetsim.graph.schema import DTYPE_BYTES
from hetsim.spec.loader import load_platform
from hetsim.spec.types import Platform

PREFILL_GRID = (16, 128, 512, 1024, 2048)
DECODE_GRID = ((1, 128), (16, 128), (8, 1024), (32, 512), (64, 2048))
PHASES = ("prefill", "decode")
#: Graph inputs that are not parameters: the token ids and the KV cache of a decode step.
GRAPH_INPUTS = ("input_ids", "past_key_values")


@dataclass(frozen=True)
class IterationModel:
    """Fitted iteration costs and the KV-cache budget of one model on one platform layout.

    Attributes
    ----------
    prefill_time, decode_time, prefill_energy, decode_energy : tuple of float
        Coefficients ``(a, b, c)`` of the forms in the module docstring (seconds, joules).
    max_rel_error : float
        Worst relative error of the time fits over the simulated grid.
    kv_bytes_per_token : float
        ``2 × layers × kv_heads × head_dim × dtype bytes``.
    weight_bytes : float
        Resident weights over all ranks, from the captured graph.
    kv_capacity_tokens : int
        ``(capacity of the units' memories − weights) / kv_bytes_per_token``.
    """

    model: str
    layout: str
    prefill_time: tuple[float, float, float]
    decode_time: tuple[float, float, float]
    prefill_energy: tuple[float, float, float]
    decode_energy: tuple[float, float, float]
    max_rel_error: float
    kv_bytes_per_token: float
    weight_bytes: float
    kv_capacity_tokens: int

    def iteration(self, prefill_tokens: Sequence[int] = (), n_decode: int = 0, decode_context: int = 0,
                  prefill_cached: Sequence[int] = ()) -> tuple[float, float]:
        """Seconds and joules of one iteration.

        Parameters
        ----------
        prefill_tokens : sequence of int
            The prefill chunk of each sequence prefilling in this iteration.
        n_decode : int
            Sequences decoding one token.
        decode_context : int
            Sum of their cached tokens.
        prefill_cached : sequence of int
            Tokens of each chunk's sequence already in the KV cache (default: none).

        Examples
        --------
        >>> m = IterationModel("m", "x", (1.0, 0.1, 0.01), (1.0, 0.5, 0.001), (0, 0, 0), (0, 0, 0), 0.0, 1.0, 0.0, 10)
        >>> whole = m.iteration([100])[0] - 1.0
        >>> chunks = m.iteration([60])[0] - 1.0 + m.iteration([40], prefill_cached=[60])[0] - 1.0
        >>> round(whole, 9) == round(chunks, 9)
        True
        """
        t = e = 0.0
        sum_t = float(sum(prefill_tokens))
        for runs, phase, coef in ((sum_t, "prefill", self.prefill_time), (n_decode, "decode", self.decode_time)):
            if runs and math.isnan(coef[0]):
                raise ValueError(f"iteration: {self.layout} has no {phase} fit (it was fitted for the other phase)")
        if sum_t:
            cached = list(prefill_cached) or [0] * len(prefill_tokens)
            sum_t2 = float(sum(x * x + 2 * x * c for x, c in zip(prefill_tokens, cached, strict=True)))
            t += self.prefill_time[1] * sum_t + self.prefill_time[2] * sum_t2
            e += self.prefill_energy[1] * sum_t + self.prefill_energy[2] * sum_t2
        if n_decode:
            t += self.decode_time[1] * n_decode + self.decode_time[2] * decode_context
            e += self.decode_energy[1] * n_decode + self.decode_energy[2] * decode_context
        if not sum_t and not n_decode:
            return 0.0, 0.0
        a_t = max(self.prefill_time[0] if sum_t else -np.inf, self.decode_time[0] if n_decode else -np.inf)
        a_e = max(self.prefill_energy[0] if sum_t else -np.inf, self.decode_energy[0] if n_decode else -np.inf)
        return max(t + a_t, 0.0), max(e + a_e, 0.0)


def _fit(rows: np.ndarray, y: np.ndarray) -> tuple[tuple[float, float, float], float]:
    w = rows / y[:, None]
    coef, *_ = np.linalg.lstsq(w, np.ones_like(y), rcond=None)
    err = float(np.max(np.abs(rows @ coef - y) / y))
    return (float(coef[0]), float(coef[1]), float(coef[2])), err


def _run(graph, platform: Platform, units: list[str], power: str) -> tuple[float, float, float]:
    """Makespan, energy of the instance (its units' ∫P dt plus all bytes moved) and parameter bytes.

    The graph runs in the ``serving`` execution mode (:mod:`hetsim.sim.launch`: a serving engine's
    fused kernels and CUDA graphs), on the platform without its other units (every memory, switch
    and link kept): they are not part of this serving instance, so their power is neither counted
    nor under a power cap. ``power`` is the ``sim.power`` mapping as JSON ("null": no power management).
    Parameter bytes are the resident inputs other than the graph inputs (token ids, KV cache).
    """
    if len(units) > 1:
        graph = tensor_parallel(graph, units)
    else:
        graph = graph.copy()
        for _, data in graph.nodes(data=True):
            data["pin"] = units[0]
    instance = dataclasses.replace(platform, units=tuple(u for u in platform.units if u.name in units),
                                   power_budget_w=None)
    options = json.loads(power)
    # a serving engine's kernels (fused projections, RoPE, SiLU-and-mul, paged attention, CUDA graphs)
    r = simulate(graph, instance, "eft", sim={"execution": "serving", **({"power": options} if options else {})})
    weights = math.fsum(float(b) for _, d in graph.nodes(data=True) for name, b in (d.get("weights") or {}).items()
                        if not name.startswith(GRAPH_INPUTS))
    return r.makespan_s, r.energy_j, weights


def fit_iteration_model(model: str, platform: str | Platform, *, tp: int = 1, units: Sequence[str] | None = None,
                        dtype: str = "bf16", prefill_grid: Sequence[int] = PREFILL_GRID,
                        decode_grid: Sequence[tuple[int, int]] = DECODE_GRID,
                        phases: Sequence[str] = PHASES, power: Mapping[str, Any] | None = None) -> IterationModel:
    """Simulate the grid with :func:`hetsim.simulate` and fit the iteration model.

    Grid lengths above the model's maximum positions are clipped to it. Each phase's fit is cached
    per (platform, model, units, dtype, grid) when ``platform`` is given by name, so a colocated
    instance and a prefill-only instance on the same units share their prefill fit. Every op
    runs on the instance's units (pinned), and the energy counts only those units (plus bytes moved).

    Parameters
    ----------
    model : str
        A catalogue model (:func:`hetsim.list_models`).
    platform : str or Platform
    tp : int
        Tensor-parallel ranks, placed on the platform's first ``tp`` units (when ``units`` is not given).
    units : sequence of str, optional
        The instance's units by name, one tensor-parallel rank each (overrides ``tp``).
    dtype : str
    prefill_grid : sequence of int
        Prompt lengths (at least 3 distinct after clipping).
    decode_grid : sequence of (batch, context)
        At least 3 points, not all with the same batch.
    phases : sequence of {"prefill", "decode"}
        The phases to fit; a phase left out has NaN coefficients (an instance that never runs it).
    power : mapping, optional
        ``sim.power`` options for the instance's iterations (:class:`hetsim.sim.power.PowerOptions`),
        e.g. ``{"cap": "2400 W"}``: a cap on the instance's units' summed power, or a governor.
    """
    spec = model_config(model)
    plat = load_platform(platform)
    if units is None:
        if isinstance(tp, bool) or not isinstance(tp, int) or not 1 <= tp <= len(plat.units):
            raise field_error(ScenarioError, "serve.tp", tp,
                              f"an integer in 1..{len(plat.units)} (units of {plat.name})")
        units = tuple(u.name for u in plat.units[:tp])
    units = tuple(units)
    if not units or len(set(units)) != len(units) or any(u not in {x.name for x in plat.units} for u in units):
        raise field_error(ScenarioError, "serve.units", list(units), f"distinct unit names of {plat.name}")
    if dtype not in MODEL_DTYPES:
        raise field_error(ScenarioError, "serve.dtype", dtype, f"one of {', '.join(MODEL_DTYPES)}")
    if not phases or not set(phases) <= set(PHASES):
        raise field_error(ScenarioError, "phases", list(phases), "'prefill' and/or 'decode'")
    top = spec.max_positions
    pre = tuple(sorted({min(int(t), top) for t in prefill_grid if int(t) >= 1}))
    dec = tuple(sorted({(int(b), min(int(c), top - 1)) for b, c in decode_grid if int(b) >= 1 and int(c) >= 1}))
    if len(pre) < 3:
        raise field_error(ScenarioError, "serve.prefill_grid", list(prefill_grid), "3 distinct lengths >= 1")
    if len(dec) < 3 or len({b for b, _ in dec}) < 2:
        raise field_error(ScenarioError, "serve.decode_grid", list(decode_grid),
                          "3 distinct (batch, context) points with at least 2 batch sizes")
    fit = functools.partial(_phase_cached, platform) if isinstance(platform, str) else \
        functools.partial(_phase, plat)
    nan = (math.nan, math.nan, math.nan)
    if power is not None and not isinstance(power, Mapping):
        raise field_error(ScenarioError, "serve.power", power, "a mapping of sim.power options such as {cap: 2400 W}")
    options = json.dumps(dict(power) if power else None, sort_keys=True, default=str)
    fits = {phase: fit(model, units, dtype, phase, pre if phase == "prefill" else dec, options) for phase in PHASES
            if phase in phases}
    (pt, pen, pe, weights) = fits.get("prefill", (nan, nan, 0.0, None))
    (dt, den, de, dweights) = fits.get("decode", (nan, nan, 0.0, None))
    weights = weights if weights is not None else dweights
    cfg = spec.config
    n_heads = int(cfg["n_heads"])
    head_dim = int(cfg["d_model"]) // n_heads
    kv_per_token = 2.0 * int(cfg["n_layers"]) * int(cfg.get("n_kv_heads", n_heads)) * head_dim * DTYPE_BYTES[dtype]
    mems = {plat.unit(u).memory for u in units}
    capacity = sum(m.capacity_bytes for m in plat.memories if m.name in mems)
    return IterationModel(model=model, layout=f"{plat.name} {'+'.join(units)} {dtype}", prefill_time=pt, decode_time=dt,
                          prefill_energy=pen, decode_energy=den, max_rel_error=max(pe, de),
                          kv_bytes_per_token=kv_per_token, weight_bytes=weights,
                          kv_capacity_tokens=max(int((capacity - weights) // kv_per_token), 0))


@functools.lru_cache(maxsize=64)
def _phase_cached(platform: str, *key) -> tuple:
    return _phase(load_platform(platform), *key)


def _phase(plat: Platform, model: str, units: tuple[str, ...], dtype: str, phase: str, grid: tuple,
           power: str) -> tuple[tuple[float, float, float], tuple[float, float, float], float, float]:
    """One phase's (time coefficients, energy coefficients, worst relative time error, parameter bytes)."""
    if phase == "prefill":
        runs = [_run(model_graph(model, phase="prefill", batch=1, seq_len=t, dtype=dtype), plat, list(units), power)
                for t in grid]
        rows = np.array([[1.0, t, t * t] for t in grid])
    else:
        runs = [_run(model_graph(model, phase="decode", batch=b, seq_len=c, dtype=dtype), plat, list(units), power)
                for b, c in grid]
        rows = np.array([[1.0, b, b * c] for b, c in grid])
    time_coef, err = _fit(rows, np.array([r[0] for r in runs]))
    energy_coef, _ = _fit(rows, np.array([r[1] for r in runs]))
    return time_coef, energy_coef, err, runs[0][2]
