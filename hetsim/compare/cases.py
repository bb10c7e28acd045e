"""Graph entries of a comparison suite, expanded into cases: one graph on one platform (and seed).

Three kinds of entry, each a mapping; a list value expands as a grid over the entry's other lists::

    {generator: random_layered, n_tasks: [20, 40], ccr: [0.1, 1, 5], n_units: 4}   # × the suite's seeds
    {instance: scenarios/instances/topcuoglu2002.json}                              # a classic instance
    {model: gpt2-tiny, phase: prefill, batch: 1, seq_len: 64, dtype: bf16, platforms: [gh200]}

A generator's parameters are checked against its signature in :mod:`hetsim.graph.generators`
(names, and integers or numbers as its defaults say; ranges are the generator's to check when the
graph is built). Generated graphs and instances run on abstract units; models on the platforms.

Examples
--------
>>> [c.graph_id for c in graph_cases({"generator": "fft", "points": [2, 4], "n_units": 2}, "graphs[0]", (0,))]
['fft(points=2,n_units=2)#seed0', 'fft(points=4,n_units=2)#seed0']
>>> graph_cases({"generator": "fft", "points": "many", "n_units": 2}, "graphs[3]", (0,))
Traceback (most recent call last):
...
hetsim.errors.ScenarioError: graphs[3].points: got 'many', expected an integer >= 1
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hetsim.errors import ScenarioError, SpecError

MODEL_KEYS = ("model", "phase", "batch", "seq_len", "dtype", "platforms")


@dataclass(frozen=True)
class GraphCase:
    """One graph on one platform, described (built later by :mod:`hetsim.compare.runner`).

    ``kind`` is ``generator``, ``instance`` or ``model``; ``source`` is the generator name, the
    instance path or the model name; ``platform`` is the platform's name (``abstract`` for
    generated graphs and instances, which run on abstract units) and ``platform_spec`` the preset
    name or platform YAML path to load (models only); ``where`` is the suite field it came from.
    """

    graph_id: str
    family: str
    kind: str
    source: str
    params: Mapping[str, Any]
    platform: str
    platform_spec: str | None
    seed: int | None
    where: str

    @property
    def ccr(self) -> float | None:
        value = self.params.get("ccr")
        return float(value) if value is not None else None


def bad_value(where: str, value: Any, expected: str) -> ScenarioError:
    return ScenarioError(f"{where}: got {value!r}, expected {expected}")


def check_keys(section: Mapping, where: str, allowed: tuple[str, ...]) -> None:
    for key in section:
        if key not in allowed:
            raise ScenarioError(f"{where}.{key}: unknown field, expected one of {', '.join(allowed)}")


def check_int(value: Any, where: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise bad_value(where, value, f"an integer >= {low}")
    return value


def check_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad_value(where, value, "a number")
    return value


def _resolve(path: str, base: Path | None) -> str:
    """``path`` against the suite's folder first, then the working directory."""
    p = Path(path)
    if base is not None and not p.is_absolute() and (base / p).exists():
        return str(base / p)
    return str(p)


def _grid(entry: Mapping, keys: list[str], where: str) -> list[dict[str, Any]]:
    """Every combination of the list-valued fields of ``entry`` (in the entry's key order)."""
    axes = []
    for key in keys:
        values = entry[key] if isinstance(entry[key], list) else [entry[key]]
        if not values:
            raise bad_value(f"{where}.{key}", entry[key], "a value or a non-empty list")
        axes.append(values)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes)]


def _label(name: str, params: Mapping[str, Any]) -> str:
    return f"{name}({','.join(f'{k}={v}' for k, v in params.items())})"


def _generator_cases(entry: Mapping, where: str, seeds: tuple[int, ...]) -> list[GraphCase]:
    try:
        from hetsim.graph.generators import GENERATORS
    except ImportError:
        raise ScenarioError(f"{where}.generator: random DAG generators are not available "
                            "(hetsim.graph.generators is missing)") from None
    name = entry["generator"]
    if not isinstance(name, str) or name not in GENERATORS:
        raise bad_value(f"{where}.generator", name, f"one of {', '.join(sorted(GENERATORS))}")
    params = {p.name: p for p in inspect.signature(GENERATORS[name]).parameters.values() if p.name != "seed"}
    keys = [k for k in entry if k != "generator"]
    for key in keys:
        if key == "seed":
            raise ScenarioError(f"{where}.seed: set the suite's seeds instead")
        if key not in params:
            raise ScenarioError(f"{where}.{key}: unknown parameter of {name}, expected one of {', '.join(params)}")
    for key, p in params.items():
        if p.default is inspect.Parameter.empty and key not in entry:
            raise ScenarioError(f"{where}.{key}: missing, required by generator {name}")
    for key in keys:
        default = params[key].default
        for i, v in enumerate(entry[key] if isinstance(entry[key], list) else [entry[key]]):
            at = f"{where}.{key}" + (f"[{i}]" if isinstance(entry[key], list) else "")
            if isinstance(default, float):
                check_number(v, at)
            elif default is inspect.Parameter.empty or isinstance(default, int):
                check_int(v, at, low=0 if isinstance(default, int) else 1)
    return [GraphCase(f"{_label(name, combo)}#seed{seed}", name, "generator", name, MappingProxyType(combo), "abstract",
                      None, seed, where) for combo in _grid(entry, keys, where) for seed in seeds]


def _check_model_value(key: str, value: Any, at: str) -> None:
    from hetsim.graph.catalog import PHASES, list_models

    if key == "model" and value not in list_models():
        raise bad_value(at, value, f"one of {', '.join(list_models())}")
    if key == "phase" and value not in PHASES:
        raise bad_value(at, value, "'prefill' or 'decode'")
    if key in ("batch", "seq_len"):
        check_int(value, at)
    if key == "dtype" and not isinstance(value, str):
        raise bad_value(at, value, "a dtype name such as bf16")


def _model_cases(entry: Mapping, where: str, base: Path | None) -> list[GraphCase]:
    from hetsim.spec.loader import load_platform

    check_keys(entry, where, MODEL_KEYS)
    for key in ("seq_len", "platforms"):
        if key not in entry:
            raise ScenarioError(f"{where}.{key}: missing, this field is required")
    entry = {"phase": "prefill", "batch": 1, "dtype": "bf16", **entry}
    for key in ("model", "phase", "batch", "seq_len", "dtype"):
        many = isinstance(entry[key], list)
        for i, v in enumerate(entry[key] if many else [entry[key]]):
            _check_model_value(key, v, f"{where}.{key}" + (f"[{i}]" if many else ""))
    platforms = entry["platforms"] if isinstance(entry["platforms"], list) else [entry["platforms"]]
    if not platforms:
        raise bad_value(f"{where}.platforms", entry["platforms"], "a preset name or a non-empty list")
    resolved = []
    for i, p in enumerate(platforms):
        at = f"{where}.platforms[{i}]"
        if not isinstance(p, str):
            raise bad_value(at, p, "a preset name or a platform YAML path")
        p = _resolve(p, base) if p.endswith((".yaml", ".yml")) else p
        try:
            resolved.append((load_platform(p).name, p))
        except SpecError as exc:
            raise ScenarioError(f"{at}: {exc}") from None
    return [GraphCase(_label(combo["model"], params), combo["model"], "model", combo["model"],
                      MappingProxyType(params), name, spec, None, where)
            for combo in _grid(entry, ["model", "phase", "batch", "seq_len", "dtype"], where)
            for params in [{k: combo[k] for k in ("phase", "batch", "seq_len", "dtype")}]
            for name, spec in resolved]


def graph_cases(entry: Any, where: str, seeds: tuple[int, ...], base: Path | None = None) -> list[GraphCase]:
    """The cases of one graph entry (``where`` names it in errors; ``base`` resolves relative paths)."""
    if not isinstance(entry, Mapping):
        raise bad_value(where, entry, "a mapping with generator, instance or model")
    kinds = [k for k in ("generator", "instance", "model") if k in entry]
    if len(kinds) != 1:
        raise bad_value(where, dict(entry), "exactly one of generator, instance, model")
    if kinds[0] == "generator":
        return _generator_cases(entry, where, seeds)
    if kinds[0] == "model":
        return _model_cases(entry, where, base)
    check_keys(entry, where, ("instance",))
    path = entry["instance"]
    if not isinstance(path, str) or not Path(_resolve(path, base)).is_file():
        raise bad_value(f"{where}.instance", path, "an existing classic instance JSON file")
    stem = Path(path).stem
    return [GraphCase(stem, stem, "instance", _resolve(path, base), MappingProxyType({}), "abstract", None, None,
                      where)]
