"""Scenarios: a YAML file naming platform + workload + scheduler + engine options + outputs.

::

    platform: gh200                 # preset name, platform YAML file, or inline mapping
    workload: {model: llama-3-8b, phase: prefill, batch: 1, seq_len: 2048, dtype: bf16}
    # or workload: {graph: my_graph.json}   (an OpGraph saved by hetsim.graph.io.save_graph)
    # workload.phase: train runs one training step; workload.parallel: {tp: 8, pp: 4, dp: 2,
    # microbatches: 8, units: [...]} splits it (tensor, pipeline 1F1B, data parallel; units
    # default to the platform's first accelerators). workload.backward: captured (the default
    # without tp: autograd's joint graph, hetsim.graph.catalog.model_training_graph, captured at
    # one microbatch of one replica) or estimated (the default with tp: backward ops built from
    # the forward graph with cited per-kind FLOP multipliers, hetsim.graph.training)
    scheduler: eft                  # or {name: eft, options: {...}}
    sim: {contention: none}
    outputs: {dir: out/quickstart, trace: true, gantt: true, ops_csv: true}

A top-level ``serve:`` section runs request-level serving (:func:`hetsim.serve.serve`) instead of
one op graph; ``workload.model``/``dtype`` name the model, ``platform`` the hardware, and the
output folder gets ``summary.json`` (the serving metrics) and ``requests.csv``. Its fields are in
:mod:`hetsim.serve.section`.

Relative platform, graph and trace paths are resolved against the scenario file's folder.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hetsim.errors import HetsimError, ScenarioError, SpecError

TOP_KEYS = ("name", "platform", "workload", "scheduler", "sim", "outputs", "serve")
WORKLOAD_KEYS = ("model", "graph", "phase", "batch", "seq_len", "dtype", "parallel", "backward")
BACKWARDS = ("captured", "estimated")
PARALLEL_KEYS = ("tp", "pp", "dp", "microbatches", "units")
OUTPUT_KEYS = ("dir", "trace", "gantt", "ops_csv", "power")


@dataclass(frozen=True)
class Scenario:
    """A checked scenario, ready to run."""

    name: str
    platform: Any
    workload: Mapping[str, Any]
    scheduler: str
    scheduler_options: Mapping[str, Any]
    sim: Mapping[str, Any]
    outputs: Mapping[str, Any]
    serve: Mapping[str, Any] | None = None  # the checked ``serve:`` section; None runs the op graph



def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a copy of ``data``.

    Examples
    --------
    >>> apply_overrides({"workload": {"batch": 1}}, ["workload.batch=8", "sim.contention=none"])
    {'workload': {'batch': 8}, 'sim': {'contention': 'none'}}
    """
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ScenarioError(f"--set: got {item!r}, expected key.path=value")
        parts = key.split(".")
        if parts[0] not in TOP_KEYS:
            known = ", ".join(TOP_KEYS)
            raise ScenarioError(f"--set {key}: unknown scenario field {parts[0]!r}, expected one of {known}")
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if child is None or (isinstance(child, str) and part == "scheduler"):
                child = {"name": child} if isinstance(child, str) else {}
                node[part] = child
            if not isinstance(child, dict):
                raise ScenarioError(f"--set {key}: {part!r} is not a mapping")
            node = child
        try:
            node[parts[-1]] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            raise ScenarioError(f"--set {key}: got {raw!r}, expected a YAML value") from None
    return data


def _mapping(data: Mapping, key: str, required: bool) -> dict:
    value = data.get(key)
    if value is None:
        if required:
            raise ScenarioError(f"{key}: missing, this field is required")
        return {}
    if not isinstance(value, Mapping):
        raise ScenarioError(f"{key}: got {value!r}, expected a mapping")
    return dict(value)


def check_keys(section: Mapping, name: str, allowed: tuple[str, ...]) -> None:
    for key in section:
        if key not in allowed:
            raise ScenarioError(f"{name}.{key}: unknown field, expected one of {', '.join(allowed)}")


def positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ScenarioError(f"{field}: got {value!r}, expected a positive integer")
    return value


def parse_scenario(data: Any, *, base: Path | None = None, default_name: str = "scenario") -> Scenario:
    """Check a scenario mapping and return a :class:`Scenario` (one-line errors)."""
    if not isinstance(data, Mapping):
        raise ScenarioError(f"scenario: got {data!r}, expected a mapping with keys {', '.join(TOP_KEYS)}")
    check_keys(data, "scenario", TOP_KEYS)
    if data.get("platform") is None:
        raise ScenarioError("platform: missing, this field is required")
    platform = data["platform"]
    if isinstance(platform, str) and platform.endswith((".yaml", ".yml")) and base is not None:
        candidate = base / platform
        platform = str(candidate) if candidate.is_file() else platform
    workload = _mapping(data, "workload", required=True)
    check_keys(workload, "workload", WORKLOAD_KEYS)
    if data.get("serve") is not None:
        from hetsim.serve.section import parse_serve

        serve = parse_serve(data["serve"], base)
        for key in ("graph", "parallel"):
            if key in workload:
                raise ScenarioError(f"workload.{key}: got {workload[key]!r}, expected no workload.{key} with "
                                    "serve: (give workload.model, and serve.tp for tensor parallelism)")
        if not workload.get("model") or not isinstance(workload["model"], str):
            raise ScenarioError(f"workload.model: got {workload.get('model')!r}, expected a model name "
                                "(serve: needs one)")
        workload.setdefault("dtype", "bf16")
        return _finish(data, name_default=default_name, platform=platform, workload=workload, serve=serve)
    if "parallel" in workload:
        workload["parallel"] = _parallel(workload["parallel"])
    if "graph" in workload:
        if "model" in workload or not isinstance(workload["graph"], str):
            raise ScenarioError(f"workload.graph: got {workload['graph']!r}, expected a graph JSON path "
                                "(and no workload.model)")
        graph = Path(workload["graph"])
        workload["graph"] = str(base / graph if base is not None and not graph.is_absolute() else graph)
        return _finish(data, name_default=default_name, platform=platform, workload=workload)
    if not workload.get("model"):
        raise ScenarioError("workload.model: missing, this field is required (or give workload.graph)")
    workload.setdefault("phase", "prefill")
    workload["batch"] = positive_int(workload.get("batch", 1), "workload.batch")
    if "seq_len" not in workload:
        raise ScenarioError("workload.seq_len: missing, this field is required")
    workload["seq_len"] = positive_int(workload["seq_len"], "workload.seq_len")
    workload.setdefault("dtype", "bf16")
    _backward(workload)
    return _finish(data, name_default=default_name, platform=platform, workload=workload)


def _backward(workload: dict) -> None:
    """``workload.backward``: checked, and defaulted for ``phase: train`` (captured unless tp or pp split it)."""
    par = workload.get("parallel") or {}
    split = par.get("tp", 1) > 1
    if workload["phase"] != "train":
        if "backward" in workload:
            raise ScenarioError(f"workload.backward: got {workload['backward']!r}, expected it only with "
                                "workload.phase: train")
        return
    backward = workload.setdefault("backward", "estimated" if split else "captured")
    if backward not in BACKWARDS:
        raise ScenarioError(f"workload.backward: got {backward!r}, expected one of {', '.join(BACKWARDS)}")
    if backward == "captured" and split:
        raise ScenarioError("workload.backward: got 'captured', expected 'estimated' with tensor parallelism "
                            "(the tensor-parallel transform splits forward-built training steps only)")
    share = par.get("dp", 1) * (par.get("microbatches", 1) if par.get("pp", 1) > 1 else 1)
    if backward == "captured" and workload["batch"] % share:
        raise ScenarioError(f"workload.batch: got {workload['batch']}, expected a multiple of "
                            f"dp x microbatches ({share}): each microbatch of each replica is captured at its size")


def positive_number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ScenarioError(f"{field}: got {value!r}, expected a positive number")
    return float(value)


def _parallel(raw: Any) -> dict:
    """``workload.parallel``: ``{tp, pp, dp, microbatches, units}``, every key optional."""
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"workload.parallel: got {raw!r}, expected a mapping such as {{tp: 2}}")
    check_keys(raw, "workload.parallel", PARALLEL_KEYS)
    out = {key: positive_int(raw.get(key, 1), f"workload.parallel.{key}") for key in ("tp", "pp", "dp")}
    out["microbatches"] = positive_int(raw.get("microbatches", out["pp"]), "workload.parallel.microbatches")
    total = out["tp"] * out["pp"] * out["dp"]
    units = raw.get("units")
    if units is not None and (not isinstance(units, list) or len(units) != total
                              or not all(isinstance(u, str) for u in units)):
        raise ScenarioError(f"workload.parallel.units: got {units!r}, expected a list of {total} unit names")
    out["units"] = units
    return out


def parallel_units(parallel: Mapping[str, Any], platform) -> list[str]:
    """The units of a parallel layout: as listed, else the platform's first tp × pp × dp accelerators."""
    names = [u.name for u in platform.units]
    if parallel["units"] is not None:
        for unit in parallel["units"]:
            if unit not in names:
                raise ScenarioError(f"workload.parallel.units: got {unit!r}, expected units of {platform.name!r} "
                                    f"({', '.join(names)})")
        return list(parallel["units"])
    accelerators = [u.name for u in platform.units if u.kind != "cpu"]
    total = parallel["tp"] * parallel.get("pp", 1) * parallel.get("dp", 1)
    if total > len(accelerators):
        got = (f"workload.parallel.tp: got {total}" if total == parallel["tp"] else
               f"workload.parallel: got tp x pp x dp = {parallel['tp']} x {parallel['pp']} x {parallel['dp']} = "
               f"{total} units")
        raise ScenarioError(f"{got}, expected at most {len(accelerators)} (the accelerators of {platform.name!r})")
    return accelerators[:total]


def layout(graph, workload: Mapping[str, Any], platform, *, captured: bool = False):
    """The graph a workload runs: a training step when ``phase: train``, split as ``parallel`` says.

    ``captured``: ``graph`` is already a training step captured at one microbatch of one replica
    (:func:`captured_step`), so pipeline stages and replicas copy it without slicing it again.
    """
    from hetsim.graph.data_parallel import data_parallel
    from hetsim.graph.parallel import tensor_parallel
    from hetsim.graph.pipeline import pipeline_parallel
    from hetsim.graph.training import training_step

    train = workload.get("phase") == "train"
    if train and not captured:
        graph = training_step(graph)
    par = workload.get("parallel")
    if not par:
        return graph
    tp, pp, dp = par["tp"], par["pp"], par["dp"]
    if not train and pp * dp > 1:
        key = "pp" if pp > 1 else "dp"
        raise ScenarioError(f"workload.parallel.{key}: got {par[key]}, expected 1 unless workload.phase is train")
    if tp * pp * dp == 1 and not train:
        return graph
    units = parallel_units(par, platform)
    groups = [[units[(r * pp + s) * tp:(r * pp + s + 1) * tp] for s in range(pp)] for r in range(dp)]
    if not train:
        return tensor_parallel(graph, groups[0][0])
    if captured and pp == 1:  # one stage of one unit: replicas of the captured step as it is
        return data_parallel(graph, [replica[0][0] for replica in groups], slice_batch=False) if dp > 1 else graph
    graph = pipeline_parallel(graph, groups[0], microbatches=par["microbatches"], slice_batch=not captured)
    if dp > 1:
        first = [u for stage in groups[0] for u in stage]
        graph = data_parallel(graph, [dict(zip(first, [u for stage in replica for u in stage], strict=True))
                                      for replica in groups], slice_batch=not captured)
    return graph


def captured_step(workload: Mapping[str, Any]):
    """A ``phase: train`` step captured from autograd's joint graph at one microbatch of one replica.

    :func:`layout` (``captured=True``) then lays it out over pipeline stages and replicas.
    """
    from hetsim.graph.catalog import model_training_graph

    par = workload.get("parallel") or {}
    m = par.get("microbatches", 1) if par.get("pp", 1) > 1 else 1
    return model_training_graph(workload["model"], batch=workload["batch"] // (par.get("dp", 1) * m),
                                seq_len=workload["seq_len"], dtype=workload["dtype"])


def _finish(data: Mapping, *, name_default: str, platform: Any, workload: dict,
            serve: Mapping[str, Any] | None = None) -> Scenario:
    sched = data.get("scheduler", "eft")
    if isinstance(sched, str):
        sched_name, sched_options = sched, {}
    elif isinstance(sched, Mapping) and isinstance(sched.get("name"), str):
        check_keys(sched, "scheduler", ("name", "options"))
        sched_name, sched_options = sched["name"], _mapping(sched, "options", required=False)
    else:
        raise ScenarioError(f"scheduler: got {sched!r}, expected a name or {{name: ..., options: {{...}}}}")
    outputs = _mapping(data, "outputs", required=False)
    check_keys(outputs, "outputs", OUTPUT_KEYS)
    name = str(data.get("name") or name_default)
    outputs.setdefault("dir", f"out/{name}")
    outputs.setdefault("power", False)
    for key in ("trace", "gantt", "ops_csv", "power"):
        value = outputs.setdefault(key, True)
        if not isinstance(value, bool):
            raise ScenarioError(f"outputs.{key}: got {value!r}, expected true or false")
    return Scenario(name, platform, workload, sched_name, sched_options, _mapping(data, "sim", False), outputs,
                    serve)


def _read(path: Path) -> Any:
    """A scenario file's YAML content (one-line ScenarioError when missing or malformed)."""
    from hetsim.spec.loader import read_yaml

    if not path.is_file():
        raise ScenarioError(f"scenario: got {str(path)!r}, expected an existing scenario YAML file")
    try:
        return read_yaml(path, "scenario")
    except SpecError as exc:
        raise ScenarioError(str(exc)) from None


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read a scenario YAML file, apply ``--set`` overrides, and check it."""
    path = Path(path)
    data = _read(path)
    if isinstance(data, dict):
        data = apply_overrides(data, overrides or [])
    return parse_scenario(data, base=path.parent, default_name=path.stem)


def load_variants(path: str | Path, overrides: list[str] | None = None) -> list[tuple[str, Scenario]]:
    """The scenario of a file, or one per combination of its ``variants``.

    ``variants: {sim.power.cap: [400 W, 600 W, 1000 W]}`` runs the scenario once per value (a grid
    when several keys are given), each as if given ``--set key=value``, into its own output folder.
    Returns (label, scenario) pairs; the label is ``""`` without variants.
    """
    import itertools
    import json

    path = Path(path)
    data = _read(path)
    variants = data.pop("variants", None) if isinstance(data, dict) else None
    if variants is None:
        return [("", load_scenario(path, overrides))]
    if not isinstance(variants, Mapping) or not variants or not all(
            isinstance(k, str) and isinstance(v, list) and v for k, v in variants.items()):
        raise ScenarioError(f"variants: got {variants!r}, expected a mapping key.path -> non-empty list of values")
    out = []
    for combo in itertools.product(*variants.values()):
        label = ", ".join(f"{key}={value}" for key, value in zip(variants, combo, strict=True))
        sets = [*(overrides or []), *(f"{key}={json.dumps(value)}" for key, value in zip(variants, combo, strict=True))]
        scenario = parse_scenario(apply_overrides(data, sets), base=path.parent, default_name=path.stem)
        folder = "".join(c if c.isalnum() or c in "-_." else "_" for c in label.replace(", ", "__"))
        outputs = dict(scenario.outputs, dir=str(Path(scenario.outputs["dir"]) / folder))
        out.append((label, Scenario(f"{scenario.name}[{label}]", scenario.platform, scenario.workload,
                                    scenario.scheduler, scenario.scheduler_options, scenario.sim, outputs,
                                    scenario.serve)))
    return out


def run_scenario(scenario: Scenario, *, out_dir: str | Path | None = None, progress=None):
    """Build the graph and platform, simulate, write the outputs; return (Result, written paths).

    A ``serve:`` scenario runs :func:`hetsim.serve.run.run_serve` instead and returns a
    :class:`hetsim.serve.run.ServeRun` (with
    ``.summary``, ``.makespan_s`` and ``.energy_j`` like a Result).
    """
    if scenario.serve is not None:
        from hetsim.serve.run import run_serve

        return run_serve(scenario, out_dir=out_dir, progress=progress)
    from hetsim.api import simulate
    from hetsim.graph.catalog import model_graph
    from hetsim.graph.io import load_graph
    from hetsim.spec.loader import load_platform

    step = progress or (lambda message: None)
    step("loading platform")
    platform = load_platform(scenario.platform)
    w = scenario.workload
    if "graph" in w:
        step(f"loading graph {w['graph']}")
        graph = load_graph(w["graph"])
    else:
        step(f"capturing {w['model']} {w['phase']} (batch {w['batch']}, seq {w['seq_len']})")
        if w.get("backward") == "captured":
            graph = captured_step(w)
        else:
            phase = "prefill" if w["phase"] == "train" else w["phase"]
            graph = model_graph(w["model"], phase=phase, batch=w["batch"], seq_len=w["seq_len"], dtype=w["dtype"])
    if w.get("parallel") or w.get("phase") == "train":
        step("building the training step and the parallel layout")
        graph = layout(graph, w, platform, captured=w.get("backward") == "captured")
    step(f"scheduling {graph.number_of_nodes()} ops with {scenario.scheduler} and simulating")
    result = simulate(graph, platform, scenario.scheduler, scheduler_options=scenario.scheduler_options,
                      sim=scenario.sim)
    outputs = scenario.outputs
    target = Path(out_dir or outputs["dir"])
    step(f"writing outputs to {target}")
    written = result.write_outputs(target, trace_json=outputs["trace"], gantt=outputs["gantt"],
                                   ops_csv=outputs["ops_csv"], power=outputs["power"])
    return result, written


__all__ = ["HetsimError", "Scenario", "apply_overrides", "check_keys", "load_scenario", "load_variants",
           "parse_scenario", "positive_int", "positive_number", "run_scenario"]
