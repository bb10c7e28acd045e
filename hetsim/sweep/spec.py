"""Sweep files: load, check and expand a YAML grid / random search over scenario overrides.

::

    name: cap_batch
    base: ../quickstart.yaml          # a scenario file (relative to this file), or `scenario: {...}` inline
    grid:                             # the cartesian product of --set style overrides
      sim.power.cap: [400 W, 600 W, 1000 W]
      workload.batch: [1, 2, 4]
    random: {samples: 20, seed: 0, space: {workload.seq_len: [128, 4096]}}
    metrics: [makespan_s, energy_j, energy_per_token_j]
    outputs: {dir: out/sweeps/cap_batch}

A random ``space`` entry is ``[lo, hi]`` (two numbers: a uniform integer when both are integers,
else a uniform float), ``{choice: [a, b, ...]}``, or a list of non-numbers to choose from. With
both ``grid`` and ``random``, every grid cell is crossed with the same ``samples`` random draws.

Examples
--------
>>> spec = parse_sweep({"scenario": {"platform": "h100-sxm", "workload": {"model": "gpt2-tiny", "seq_len": 8}},
...                     "grid": {"workload.batch": [1, 2], "sim.contention": ["none", "fair"]}})
>>> [p.overrides for p in expand(spec)][:2]
[(('workload.batch', 1), ('sim.contention', 'none')), (('workload.batch', 1), ('sim.contention', 'fair'))]
>>> len(expand(spec)), spec.out_dir
(4, 'out/sweeps/sweep')
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import random as _random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hetsim.errors import ScenarioError
from hetsim.scenario import apply_overrides, parse_scenario

#: Version of a row's layout in results.jsonl; bumped when rows gain fields (2: serving rows keep
#: their latency, throughput and chip count in ``summary`` for the plots).
ROW_FORMAT = 2
SWEEP_KEYS = ("name", "base", "scenario", "grid", "random", "metrics", "outputs")
RANDOM_KEYS = ("samples", "seed", "space")
DEFAULT_METRICS = ("makespan_s", "energy_j", "energy_per_token_j", "peak_memory_bytes", "utilization")
#: Keys of ``Result.summary`` a sweep may keep as columns (``key.sub`` picks one entry of a mapping).
KNOWN_METRICS = (
    "makespan_s", "energy_j", "tokens", "energy_per_token_j", "energy_by_unit_j", "data_energy_j",
    "peak_memory_bytes", "memory_capacity_bytes", "utilization", "busy_s", "ops", "transfers", "transfer_bytes",
    "flop", "achieved_flop_per_s", "critical_path_len", "time_by_op_kind_s", "predicted_makespan_s", "mfu",
    # serving scenarios (a ``serve:`` section)
    "ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "tpot_p50_s", "tpot_p90_s", "tpot_p99_s", "e2e_p50_s", "e2e_p90_s",
    "e2e_p99_s", "throughput_tokens_per_s", "throughput_requests_per_s", "goodput_requests_per_s",
    "slo_attainment", "preemptions",
)
#: Scenario outputs a sweep point never writes (only summary.json), to keep points fast.
POINT_OUTPUTS = {"trace": False, "gantt": False, "ops_csv": False, "power": False}


class SweepError(ScenarioError):
    """A sweep file is invalid (one line naming the field)."""


@dataclass(frozen=True)
class Point:
    """One scenario of a sweep: its stable id and its ``(key.path, value)`` overrides."""

    id: str
    overrides: tuple[tuple[str, Any], ...]

    def sets(self) -> list[str]:
        """The overrides as ``--set`` strings (values JSON-encoded, which YAML reads back)."""
        return [f"{key}={json.dumps(value)}" for key, value in self.overrides]


@dataclass(frozen=True)
class RandomSpec:
    """Random search: ``samples`` draws with ``seed`` over ``space`` (key -> ("range", lo, hi) | ("choice", values))."""

    samples: int
    seed: int
    space: tuple[tuple[str, tuple], ...]


@dataclass(frozen=True)
class SweepSpec:
    """A checked sweep: the base scenario mapping, the grid / random search, metrics and output folder."""

    name: str
    base: Mapping[str, Any]
    base_dir: str
    grid: tuple[tuple[str, tuple], ...]
    random: RandomSpec | None
    metrics: tuple[str, ...]
    out_dir: str

    def fingerprint(self) -> str:
        """A hash of what a point's row depends on besides its overrides: the base scenario and the metrics.

        Rows in ``results.jsonl`` with another fingerprint are stale (the base changed, or rows were
        written by a version whose row format, :data:`ROW_FORMAT`, differs) and are run again.
        """
        text = json.dumps({"base": self.base, "base_dir": self.base_dir, "metrics": self.metrics, "rows": ROW_FORMAT},
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def point_id(overrides: tuple[tuple[str, Any], ...]) -> str:
    """A stable 12-hex-digit id of a point's overrides (independent of key order).

    Examples
    --------
    >>> a = point_id((("workload.batch", 2), ("sim.contention", "fair")))
    >>> a == point_id((("sim.contention", "fair"), ("workload.batch", 2))), len(a)
    (True, 12)
    """
    text = json.dumps(sorted(overrides, key=lambda kv: kv[0]), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _grid(raw: Any) -> tuple[tuple[str, tuple], ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise SweepError(f"grid: got {raw!r}, expected a non-empty mapping key.path -> list of values")
    out = []
    for key, values in raw.items():
        if not isinstance(key, str) or not key:
            raise SweepError(f"grid: got key {key!r}, expected a scenario field path such as workload.batch")
        if not isinstance(values, list) or not values:
            raise SweepError(f"grid.{key}: got {values!r}, expected a non-empty list of values")
        out.append((key, tuple(values)))
    return tuple(out)


def _dimension(key: str, raw: Any) -> tuple:
    where = f"random.space.{key}"
    if isinstance(raw, Mapping) and set(raw) == {"choice"} and isinstance(raw["choice"], list) and raw["choice"]:
        return ("choice", tuple(raw["choice"]))
    if isinstance(raw, list) and len(raw) == 2 and all(map(_is_number, raw)):
        lo, hi = raw
        if lo > hi:
            raise SweepError(f"{where}: got {raw!r}, expected [lo, hi] with lo <= hi")
        return ("range", lo, hi)
    if isinstance(raw, list) and raw and not any(map(_is_number, raw)):
        return ("choice", tuple(raw))
    raise SweepError(f"{where}: got {raw!r}, expected [lo, hi] (two numbers), {{choice: [values]}}, "
                     "or a list of non-numeric values")


def _random_spec(raw: Any) -> RandomSpec:
    if not isinstance(raw, Mapping):
        raise SweepError(f"random: got {raw!r}, expected {{samples: N, seed: S, space: {{key.path: [lo, hi]}}}}")
    for key in raw:
        if key not in RANDOM_KEYS:
            raise SweepError(f"random.{key}: unknown field, expected one of {', '.join(RANDOM_KEYS)}")
    samples, seed, space = raw.get("samples"), raw.get("seed", 0), raw.get("space")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise SweepError(f"random.samples: got {samples!r}, expected a positive integer")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SweepError(f"random.seed: got {seed!r}, expected an integer")
    if not isinstance(space, Mapping) or not space:
        raise SweepError(f"random.space: got {space!r}, expected a non-empty mapping key.path -> [lo, hi]")
    return RandomSpec(samples, seed, tuple((str(k), _dimension(str(k), v)) for k, v in space.items()))


def _metrics(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return DEFAULT_METRICS
    if not isinstance(raw, list) or not raw or not all(isinstance(m, str) for m in raw):
        raise SweepError(f"metrics: got {raw!r}, expected a non-empty list of summary keys")
    for metric in raw:
        if metric.split(".")[0] not in KNOWN_METRICS:
            raise SweepError(f"metrics: got {metric!r}, expected one of {', '.join(KNOWN_METRICS)}")
    return tuple(raw)


def _base(data: Mapping, folder: Path) -> tuple[dict, Path]:
    if ("base" in data) == ("scenario" in data):
        raise SweepError("base: expected exactly one of base (a scenario file) or scenario (an inline mapping)")
    if "scenario" in data:
        if not isinstance(data["scenario"], Mapping):
            raise SweepError(f"scenario: got {data['scenario']!r}, expected an inline scenario mapping")
        return copy.deepcopy(dict(data["scenario"])), folder
    raw = data["base"]
    path = folder / raw if isinstance(raw, str) else None
    if path is None or not path.is_file():
        raise SweepError(f"base: got {raw!r}, expected a scenario YAML file (relative to the sweep file)")
    try:
        scenario = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SweepError(f"base: {raw!r} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(scenario, Mapping):
        raise SweepError(f"base: {raw!r} holds {scenario!r}, expected a scenario mapping")
    if "variants" in scenario:
        raise SweepError(f"base: {raw!r} has variants, expected a scenario without them (put them in grid)")
    return dict(scenario), path.parent


def parse_sweep(data: Any, *, folder: str | Path = ".", default_name: str = "sweep") -> SweepSpec:
    """Check a sweep mapping (paths relative to ``folder``) and return a :class:`SweepSpec`.

    Also applies each swept key, and the first point's overrides together, to the base scenario
    and parses the result, so a key naming no scenario field fails here, before anything runs.
    """
    if not isinstance(data, Mapping):
        raise SweepError(f"sweep: got {data!r}, expected a mapping with keys {', '.join(SWEEP_KEYS)}")
    for key in data:
        if key not in SWEEP_KEYS:
            raise SweepError(f"sweep.{key}: unknown field, expected one of {', '.join(SWEEP_KEYS)}")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise SweepError(f"name: got {name!r}, expected a non-empty string")
    base, base_dir = _base(data, Path(folder))
    if data.get("grid") is None and data.get("random") is None:
        raise SweepError("grid: missing, expected a grid and/or a random search")
    grid = _grid(data["grid"]) if "grid" in data else ()
    rand = _random_spec(data["random"]) if "random" in data else None
    outputs = data.get("outputs") or {}
    if not isinstance(outputs, Mapping) or set(outputs) - {"dir"} or not isinstance(outputs.get("dir", ""), str):
        raise SweepError(f"outputs: got {outputs!r}, expected {{dir: FOLDER}}")
    spec = SweepSpec(name, base, str(base_dir), grid, rand, _metrics(data.get("metrics")),
                     outputs.get("dir") or f"out/sweeps/{name}")
    _check_keys(spec)
    return spec


def _check_keys(spec: SweepSpec) -> None:
    """Every swept key must name a scenario field: apply it alone, then the first point whole."""
    try:
        scenario_of(spec, Point("", ()))
    except ScenarioError as exc:
        raise SweepError(f"base: {exc}") from None
    grid_keys = {k for k, _ in spec.grid}
    for key, _ in spec.random.space if spec.random else ():
        if key in grid_keys:
            raise SweepError(f"random.space.{key}: also in grid, expected each key in one of them")
    first = expand(spec)[0]
    sections = [("grid", k) for k, _ in spec.grid] + [("random.space", k) for k, _ in
                                                       (spec.random.space if spec.random else ())]
    values = dict(first.overrides)
    for section, key in sections:
        try:
            scenario_of(spec, Point("", ((key, values[key]),)))
        except ScenarioError as exc:
            raise SweepError(f"{section}.{key}: {exc}") from None
    try:
        scenario_of(spec, first)
    except ScenarioError as exc:
        raise SweepError(f"first point ({', '.join(first.sets())}): {exc}") from None


def scenario_of(spec: SweepSpec, point: Point):
    """The checked :class:`~hetsim.scenario.Scenario` of one point (only summary.json as output)."""
    data = apply_overrides(dict(spec.base), point.sets())
    data["outputs"] = {**(data.get("outputs") or {}), **POINT_OUTPUTS}
    return parse_scenario(data, base=Path(spec.base_dir), default_name=spec.name)


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep YAML file (one-line :class:`SweepError` when it is missing or bad)."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep: got {str(path)!r}, expected an existing sweep YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SweepError(f"sweep: {str(path)!r} is not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_sweep(data, folder=path.parent, default_name=path.stem)


def _draw(rng: _random.Random, dim: tuple) -> Any:
    if dim[0] == "choice":
        return rng.choice(dim[1])
    _, lo, hi = dim
    if isinstance(lo, int) and isinstance(hi, int):
        return rng.randint(lo, hi)
    return rng.uniform(lo, hi)


def expand(spec: SweepSpec) -> list[Point]:
    """The points of a sweep in a stable order: grid cells (row-major) × random draws.

    Points with identical overrides (a random search can repeat itself) appear once.
    """
    cells = [tuple(zip([k for k, _ in spec.grid], combo, strict=True))
             for combo in itertools.product(*(values for _, values in spec.grid))]
    draws: list[tuple] = [()]
    if spec.random is not None:
        rng = _random.Random(spec.random.seed)
        draws = [tuple((key, _draw(rng, dim)) for key, dim in spec.random.space) for _ in range(spec.random.samples)]
    points, seen = [], set()
    for cell in cells:
        for draw in draws:
            overrides = cell + draw
            pid = point_id(overrides)
            if pid not in seen:
                seen.add(pid)
                points.append(Point(pid, overrides))
    return points


__all__ = ["Point", "RandomSpec", "SweepError", "SweepSpec", "expand", "load_sweep", "parse_sweep", "point_id",
           "scenario_of"]
