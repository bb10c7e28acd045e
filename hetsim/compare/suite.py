"""Comparison suites: a YAML file naming graphs, schedulers and seeds, expanded into cases.

::

    name: classic
    seeds: [0, 1]                     # every generated graph is drawn once per seed
    schedulers: [heft, cpop, {name: random, options: {seed: 3}, label: random3}]
                                      # default: every registered scheduler except exact
    exact: {max_tasks: 12, time_limit_s: 5}   # the CP-SAT optimum of graphs this small (default: off)
    graphs:
      - {generator: random_layered, n_tasks: [20, 40], ccr: [0.1, 1, 5], n_units: 4}  # lists: a grid
      - {instance: ../instances/topcuoglu2002.json}
      - {model: gpt2-tiny, phase: prefill, batch: 1, seq_len: 64, platforms: [gh200, dgx-h100]}
    sim: {contention: none}
    outputs: {dir: out/compare, plots: true}

Generated graphs and classic instances run on abstract units (their costs are per task and
unit; they say nothing about energy); catalogue models run on real platform presets. Relative
paths resolve against the suite file's folder, then the working directory. Every problem is one
:class:`~hetsim.errors.ScenarioError` line naming the field path, e.g.
``graphs[1].ccr: got 'x', expected a number``.

Examples
--------
>>> s = parse_suite({"name": "demo", "schedulers": ["heft", "eft"],
...                  "graphs": [{"instance": "scenarios/instances/topcuoglu2002.json"}]})
>>> [c.graph_id for c in s.cases], [e.label for e in s.schedulers], s.exact
(['topcuoglu2002'], ['heft', 'eft'], None)
>>> parse_suite({"graphs": [{"instance": "x.json", "colour": 1}]})
Traceback (most recent call last):
...
hetsim.errors.ScenarioError: graphs[0].colour: unknown field, expected one of instance
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hetsim.compare.cases import GraphCase, bad_value, check_int, check_keys, check_number, graph_cases
from hetsim.errors import HetsimError, ScenarioError, SpecError

TOP_KEYS = ("name", "seeds", "schedulers", "exact", "graphs", "sim", "outputs")
EXACT_KEYS = ("max_tasks", "time_limit_s", "resolution", "workers")
OUTPUT_KEYS = ("dir", "plots")
SCHEDULER_KEYS = ("name", "options", "label")


@dataclass(frozen=True)
class SchedulerEntry:
    """One scheduler of a suite: its registry ``name``, ``options``, and the ``label`` rows use."""

    label: str
    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExactConfig:
    """When and how the exact (CP-SAT) scheduler gives the reference optimum.

    ``resolution`` None picks one per graph (see :func:`hetsim.compare.runner.exact_resolution`).
    """

    max_tasks: int = 12
    time_limit_s: float = 5.0
    resolution: float | None = None
    workers: int = 1


@dataclass(frozen=True)
class Suite:
    """A checked suite, expanded into :attr:`cases` (graph × platform × seed)."""

    name: str
    seeds: tuple[int, ...]
    schedulers: tuple[SchedulerEntry, ...]
    exact: ExactConfig | None
    cases: tuple[GraphCase, ...]
    sim: Mapping[str, Any]
    outputs: Mapping[str, Any]


def _scheduler_entry(item: Any, at: str, known: list[str]) -> SchedulerEntry:
    from hetsim.sched.registry import get_scheduler

    name, options, label = item, {}, item
    if isinstance(item, Mapping):
        check_keys(item, at, SCHEDULER_KEYS)
        name, options, label = item.get("name"), item.get("options") or {}, item.get("label", item.get("name"))
        if not isinstance(options, Mapping):
            raise bad_value(f"{at}.options", options, "a mapping of scheduler options")
    if name == "exact":
        raise bad_value(at, name, "a heuristic; configure the optimum under exact: {max_tasks, time_limit_s}")
    if not isinstance(name, str) or name not in known:
        raise bad_value(f"{at}.name" if isinstance(item, Mapping) else at, name, f"one of {', '.join(known)}")
    try:
        get_scheduler(name, options)  # unknown options fail now, not mid-run
    except HetsimError as exc:
        raise ScenarioError(f"{at}.{str(exc).removeprefix('scheduler.')}") from None
    except TypeError as exc:
        raise bad_value(f"{at}.options", dict(options), f"options {name!r} accepts ({exc})") from None
    if not isinstance(label, str) or not label or label == "exact":
        raise bad_value(f"{at}.label", label, "a non-empty string other than exact")
    return SchedulerEntry(label, name, MappingProxyType(dict(options)))


def parse_schedulers(value: Any, where: str = "schedulers") -> tuple[SchedulerEntry, ...]:
    """Check a scheduler list: names or ``{name, options, label}``; every name registered, no exact."""
    from hetsim.sched.registry import list_schedulers

    known = [n for n in list_schedulers() if n != "exact"]
    if value is None:
        return tuple(SchedulerEntry(n, n) for n in known)
    if not isinstance(value, list) or not value:
        raise bad_value(where, value, "a non-empty list of scheduler names or {name, options, label}")
    entries = [_scheduler_entry(item, f"{where}[{i}]", known) for i, item in enumerate(value)]
    labels = [e.label for e in entries]
    for i, label in enumerate(labels):
        if label in labels[:i]:
            raise bad_value(f"{where}[{i}]", label, "a scheduler listed once (give repeats a distinct label)")
    return tuple(entries)


def parse_seeds(value: Any, where: str = "seeds") -> tuple[int, ...]:
    """A non-empty list of distinct integers >= 0 (a single integer is a list of one)."""
    seeds = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(seeds, list) or not seeds:
        raise bad_value(where, value, "a non-empty list of integer seeds")
    out = tuple(check_int(s, f"{where}[{i}]", low=0) for i, s in enumerate(seeds))
    if len(set(out)) != len(out):
        raise bad_value(where, value, "distinct seeds")
    return out


def _exact(value: Any) -> ExactConfig | None:
    if value is None or value is False:
        return None
    if value is True:
        return ExactConfig()
    if not isinstance(value, Mapping):
        raise bad_value("exact", value, "false or a mapping {max_tasks, time_limit_s, resolution, workers}")
    check_keys(value, "exact", EXACT_KEYS)
    d = ExactConfig()
    res = value.get("resolution", "auto")
    if res != "auto" and (check_number(res, "exact.resolution") <= 0):
        raise bad_value("exact.resolution", res, "a positive number or 'auto'")
    limit = check_number(value.get("time_limit_s", d.time_limit_s), "exact.time_limit_s")
    if limit <= 0:
        raise bad_value("exact.time_limit_s", limit, "a positive number of seconds")
    workers = check_int(value.get("workers", d.workers), "exact.workers")
    return ExactConfig(check_int(value.get("max_tasks", d.max_tasks), "exact.max_tasks"), float(limit),
                       None if res == "auto" else float(res), workers)


def parse_suite(data: Any, *, base: Path | None = None, default_name: str = "compare",
                schedulers: list[str] | None = None, seeds: list[int] | None = None) -> Suite:
    """Check a suite mapping and expand it; ``schedulers`` / ``seeds`` replace the file's lists."""
    if not isinstance(data, Mapping):
        raise bad_value("suite", data, f"a mapping with keys {', '.join(TOP_KEYS)}")
    check_keys(data, "suite", TOP_KEYS)
    name = data.get("name") or default_name
    if not isinstance(name, str):
        raise bad_value("name", name, "a string")
    seed_list = parse_seeds(seeds if seeds is not None else data.get("seeds", [0]),
                            "--seeds" if seeds is not None else "seeds")
    entries = parse_schedulers(schedulers if schedulers is not None else data.get("schedulers"),
                               "--schedulers" if schedulers is not None else "schedulers")
    graphs = data.get("graphs")
    if not isinstance(graphs, list) or not graphs:
        raise bad_value("graphs", graphs, "a non-empty list of {generator: ...}, {instance: ...} or {model: ...}")
    cases = [c for i, g in enumerate(graphs) for c in graph_cases(g, f"graphs[{i}]", seed_list, base)]
    seen: dict[tuple, str] = {}
    for c in cases:
        key = (c.graph_id, c.platform)
        if key in seen:
            raise ScenarioError(f"{c.where}: graph {c.graph_id!r} already listed by {seen[key]}, expected each once")
        seen[key] = c.where
    sim = data.get("sim") or {}
    if not isinstance(sim, Mapping):
        raise bad_value("sim", sim, "a mapping of engine options")
    from hetsim.sim.engine import SimOptions

    check_keys(sim, "sim", tuple(SimOptions.__dataclass_fields__))
    SimOptions(**sim)
    outputs = dict(data.get("outputs") or {})
    check_keys(outputs, "outputs", OUTPUT_KEYS)
    outputs.setdefault("dir", f"out/{name}")
    outputs.setdefault("plots", True)
    if not isinstance(outputs["dir"], str) or not outputs["dir"]:
        raise bad_value("outputs.dir", outputs["dir"], "a folder path")
    if not isinstance(outputs["plots"], bool):
        raise bad_value("outputs.plots", outputs["plots"], "true or false")
    return Suite(name, seed_list, entries, _exact(data.get("exact")), tuple(cases), MappingProxyType(dict(sim)),
                 MappingProxyType(outputs))


def load_suite(path: str | Path, *, schedulers: list[str] | None = None, seeds: list[int] | None = None) -> Suite:
    """Read a suite YAML file and check it (one-line :class:`ScenarioError` when bad)."""
    from hetsim.spec.loader import read_yaml

    path = Path(path)
    if not path.is_file():
        raise bad_value("suite", str(path), "an existing suite YAML file")
    try:
        data = read_yaml(path, "suite")
    except SpecError as exc:
        raise ScenarioError(str(exc)) from None
    return parse_suite(data, base=path.parent, default_name=path.stem, schedulers=schedulers, seeds=seeds)
