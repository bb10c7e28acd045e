"""Predicted vs measured: simulate a module on a platform, run it for real, compare.

:func:`validate` captures a torch module (:func:`hetsim.capture`), simulates its graph with
every op on the platform's one unit of the device's kind (scheduler ``single``), times the
real module (:func:`hetsim.validate.measure.measure`) and returns a :class:`ValidationReport`:
end-to-end error, per-op errors keyed by op id, and errors summed per op kind.

A platform carrying a calibration manifest is checked against this machine first
(:func:`hetsim.validate.manifest.check_manifest`): a profile measured on another device or
torch version is refused unless ``force``. Presets have no manifest and are compared as they
are; the report's ``calibrated`` says which case it was.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hetsim.errors import SpecError
from hetsim.spec.types import Platform
from hetsim.validate.measure import Measurement, _check_device, _check_threads, measure

#: ops measured below this are left out of the per-op MAPE (timer noise and dispatch dominate)
MAPE_MIN_MEASURED_S = 50e-6
OPS_CSV_COLUMNS = ("op", "kind", "target", "module", "flop", "bytes", "measured_s", "predicted_s", "error")


def _rel(predicted: float, measured: float | None) -> float | None:
    if measured is None or measured <= 0:
        return None
    return (predicted - measured) / measured


@dataclass(frozen=True)
class OpComparison:
    """One op: its measured median and predicted time (seconds); ``error`` is (p − m) / m."""

    op: str
    kind: str
    target: str
    module: str
    flop: float
    bytes: float
    measured_s: float | None
    predicted_s: float

    @property
    def error(self) -> float | None:
        return _rel(self.predicted_s, self.measured_s)

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "kind": self.kind, "target": self.target, "module": self.module, "flop": self.flop,
                "bytes": self.bytes, "measured_s": self.measured_s, "predicted_s": self.predicted_s,
                "error": self.error}


def _json_ready(value: Any) -> Any:
    """NaN and infinities become ``None`` (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


@dataclass(frozen=True)
class ValidationReport:
    """Predicted vs measured for one module, shape and platform. Times in seconds.

    Attributes
    ----------
    measured_s : float
        Median end-to-end time of the real (eager) forward.
    measurement_iqr : float
        Interquartile range of that measurement relative to its median.
    predicted_s : float
        Simulated makespan (every op on :attr:`unit`).
    sum_per_op_measured_s : float
        Sum of the per-op medians of every node of the exported graph (graph ops and the few
        nodes capture leaves out, see :attr:`unmatched_measured_s`).
    ops : tuple of OpComparison
        One row per graph op, in execution order.
    calibrated : bool
        Whether the platform carried a manifest (and so was checked against this machine).
    """

    name: str
    phase: str
    batch: int
    seq_len: int
    platform: str
    unit: str
    device: str
    threads: int
    calibrated: bool
    measured_s: float
    measurement_iqr: float
    predicted_s: float
    sum_per_op_measured_s: float
    interpreter_s: float
    unmatched_measured_s: float
    ops: tuple[OpComparison, ...] = field(repr=False)
    manifest: Mapping[str, Any] = field(repr=False, default_factory=lambda: MappingProxyType({}))
    measurement: Measurement | None = field(repr=False, compare=False, default=None)
    result: Any = field(repr=False, compare=False, default=None)

    @property
    def e2e_error(self) -> float:
        """(predicted − measured) / measured: positive when the simulator is pessimistic."""
        return (self.predicted_s - self.measured_s) / self.measured_s

    @property
    def op_sum_error(self) -> float:
        """(predicted − Σ per-op measured) / Σ per-op measured: the error without framework overhead."""
        return (self.predicted_s - self.sum_per_op_measured_s) / self.sum_per_op_measured_s

    def _mape_ops(self) -> list[OpComparison]:
        return [o for o in self.ops if o.measured_s is not None and o.measured_s > MAPE_MIN_MEASURED_S]

    @property
    def per_op_mape(self) -> float:
        """Mean |error| over ops measured above :data:`MAPE_MIN_MEASURED_S` (NaN when none is)."""
        errors = [abs(o.error) for o in self._mape_ops()]
        return math.fsum(errors) / len(errors) if errors else math.nan

    @property
    def per_op_mape_count(self) -> int:
        return len(self._mape_ops())

    @property
    def by_kind(self) -> dict[str, dict[str, float]]:
        """Op kind → count, summed measured and predicted seconds, and their relative error."""
        out: dict[str, dict[str, Any]] = {}
        for o in self.ops:
            if o.measured_s is None:
                continue
            row = out.setdefault(o.kind, {"count": 0, "measured_s": 0.0, "predicted_s": 0.0})
            row["count"] += 1
            row["measured_s"] += o.measured_s
            row["predicted_s"] += o.predicted_s
        for row in out.values():
            row["error"] = _rel(row["predicted_s"], row["measured_s"])
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["measured_s"]))

    def to_dict(self, *, ops: bool = True) -> dict[str, Any]:
        """JSON-ready report (NaN becomes ``None``); ``ops=False`` leaves the per-op rows out."""
        out = {"name": self.name, "phase": self.phase, "batch": self.batch, "seq_len": self.seq_len,
               "platform": self.platform, "unit": self.unit, "device": self.device, "threads": self.threads,
               "calibrated": self.calibrated, "measured_s": self.measured_s,
               "measurement_iqr": self.measurement_iqr, "predicted_s": self.predicted_s,
               "e2e_error": self.e2e_error, "sum_per_op_measured_s": self.sum_per_op_measured_s,
               "op_sum_error": self.op_sum_error, "interpreter_s": self.interpreter_s,
               "unmatched_measured_s": self.unmatched_measured_s, "per_op_mape": self.per_op_mape,
               "per_op_mape_count": self.per_op_mape_count, "per_op_mape_min_measured_s": MAPE_MIN_MEASURED_S,
               "op_count": len(self.ops), "by_kind": self.by_kind, "manifest": dict(self.manifest)}
        if ops:
            out["ops"] = [o.to_dict() for o in self.ops]
        return _json_ready(out)

    def ops_csv(self) -> str:
        """The per-op table as CSV text (columns :data:`OPS_CSV_COLUMNS`)."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(OPS_CSV_COLUMNS)
        for o in self.ops:
            d = o.to_dict()
            writer.writerow(["" if d[c] is None else d[c] for c in OPS_CSV_COLUMNS])
        return buf.getvalue()

    def write(self, out_dir: str | Path, *, scatter: bool = True) -> dict[str, Path]:
        """Write ``validation.json``, ``ops.csv`` and ``scatter.png`` into ``out_dir``, each atomically.

        Everything is rendered before the first file is written, so a failure leaves no file.
        """
        from hetsim.report._atomic import atomic_write

        out = Path(out_dir)
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        table = self.ops_csv()
        png = None
        if scatter:
            from hetsim.validate.plot import scatter_png

            png = scatter_png(self)
        written = {"validation.json": atomic_write(out / "validation.json", lambda tmp: tmp.write_text(text)),
                   "ops.csv": atomic_write(out / "ops.csv", lambda tmp: tmp.write_text(table))}
        if png is not None:
            written["scatter.png"] = atomic_write(out / "scatter.png", lambda tmp: tmp.write_bytes(png))
        return written


def device_unit(platform: Platform, device: str) -> str:
    """The platform's first unit of the device's kind (``gpu`` for CUDA, else ``cpu``)."""
    kind = "gpu" if device.startswith("cuda") else "cpu"
    for u in platform.units:
        if u.kind == kind:
            return u.name
    raise SpecError(f"platform {platform.name!r}: has no {kind} unit, expected one to validate device {device!r} "
                    f"against (units: {', '.join(f'{u.name} ({u.kind})' for u in platform.units)})")


def _threads_and_manifest(platform: Platform, device: str, threads: int | None, force: bool
                          ) -> tuple[int, dict[str, Any]]:
    """The thread count to measure with, and this machine's manifest (checked if the platform has one)."""
    from hetsim.validate.manifest import check_manifest, current_manifest

    profile = dict(platform.manifest)
    profile_threads = profile.get("threads")
    if threads is None and isinstance(profile_threads, int) and profile_threads >= 1:
        threads = profile_threads
    threads = _check_threads(threads)
    here = current_manifest(device, threads)
    if profile:
        check_manifest(profile, here, force=force, what=platform.name)
        if isinstance(profile_threads, int) and profile_threads != threads:
            warnings.warn(f"{platform.name}.manifest.threads: profile measured with {profile_threads} threads, "
                          f"validating with {threads}", stacklevel=3)
    return threads, here


def validate(module: Any, args: tuple[Any, ...], platform: str | Path | Mapping | Platform, *,
             kwargs: Mapping[str, Any] | None = None, device: str = "cpu", threads: int | None = None,
             name: str | None = None, force: bool = False, unit: str | None = None, phase: str = "",
             batch: int | None = None, seq_len: int | None = None, min_run_time: float = 0.5, repeats: int = 7,
             progress: Callable[[str], None] | None = None) -> ValidationReport:
    """Simulate ``module(*args, **kwargs)`` on ``platform``, run it for real, and compare.

    Parameters
    ----------
    module : torch.nn.Module
        Run with its real weights (on ``device``, in eval mode for inference).
    args, kwargs
        Real inputs on ``device``.
    platform : str, path, mapping or Platform
        A calibrated profile (YAML with a manifest) or any platform; see :func:`hetsim.load_platform`.
    device : str
        ``"cpu"`` or ``"cuda[:N]"``; picks the platform unit (the first of kind cpu or gpu).
    threads : int, optional
        Measurement threads; default the profile manifest's ``threads``, else all cores but one.
    name : str, optional
        Graph name (default the module's class name).
    force : bool
        Use a profile measured elsewhere anyway (with a warning).
    unit : str, optional
        Platform unit to simulate on, instead of the first of the device's kind.
    phase, batch, seq_len
        Graph attributes passed to :func:`hetsim.capture`.
    min_run_time, repeats
        Measurement effort, see :func:`~hetsim.validate.measure.measure`.
    progress : callable, optional
        Called with a short line at each step.

    Returns
    -------
    ValidationReport
    """
    from hetsim.api import simulate
    from hetsim.graph.capture import capture
    from hetsim.spec.loader import load_platform

    say = progress or (lambda _msg: None)
    platform = load_platform(platform)
    _check_device(device)
    unit = unit if unit is not None else device_unit(platform, device)
    platform.unit(unit)
    threads, here = _threads_and_manifest(platform, device, threads, force)
    kwargs = dict(kwargs or {})
    say("capturing the graph")
    graph = capture(module, tuple(args), kwargs, name=name, phase=phase, batch=batch, seq_len=seq_len)
    say(f"simulating {graph.number_of_nodes()} ops on {platform.name}:{unit}")
    result = simulate(graph, platform, "single", scheduler_options={"unit": unit}, sim={"track_memory": False})
    say(f"measuring on {device} with {threads} thread{'s' if threads != 1 else ''}")
    m = measure(module, tuple(args), kwargs, device=device, threads=threads, min_run_time=min_run_time,
                repeats=repeats)
    predicted = {run.op: run.duration_s for run in result.trace.ops}
    rows = []
    for run in sorted(result.trace.ops, key=lambda r: (r.start_s, r.end_s)):
        data = graph.nodes[run.op]
        rows.append(OpComparison(op=run.op, kind=str(data["op"]), target=str(data.get("target", "")),
                                 module=str(data.get("module", "")), flop=float(data.get("flop", 0)),
                                 bytes=float(data.get("bytes_read", 0) + data.get("bytes_written", 0)),
                                 measured_s=m.op_median_s.get(run.op), predicted_s=run.duration_s))
    unmatched = math.fsum(t for op, t in m.op_median_s.items() if op not in predicted)
    g = graph.graph
    return ValidationReport(name=str(g.get("name", name or type(module).__name__)), phase=str(g.get("phase", phase)),
                            batch=int(g.get("batch", 0)), seq_len=int(g.get("seq_len", 0)), platform=platform.name,
                            unit=unit, device=device, threads=threads, calibrated=bool(platform.manifest),
                            measured_s=m.e2e_median_s, measurement_iqr=m.e2e_iqr_fraction,
                            predicted_s=result.makespan_s, sum_per_op_measured_s=m.sum_op_median_s,
                            interpreter_s=m.interpreter_median_s, unmatched_measured_s=unmatched, ops=tuple(rows),
                            manifest=MappingProxyType(here), measurement=m, result=result)


def model_inputs(name: str, *, phase: str, batch: int, seq_len: int, device: str = "cpu",
                 model: Any = None) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Real inputs of catalogue model ``name``, as :func:`hetsim.model_graph` captures it.

    Token ids are uniform over the vocabulary; a decode step gets one token per sequence and a
    KV cache of ``seq_len`` past tokens filled with standard normal values (never uninitialised
    memory, whose NaNs or denormals would time differently).
    """
    import torch

    from hetsim.graph.capture_models import _family
    from hetsim.graph.catalog import model_config

    spec = model_config(name)
    vocab = int(spec.config["vocab_size"])
    ids = torch.randint(0, vocab, (batch, seq_len if phase == "prefill" else 1)).to(device)
    if phase == "prefill":
        return (ids,), {}
    _, config_cls, empty_cache = _family(spec)
    config = model.config if model is not None else config_cls(**spec.config)
    cache = [tuple(torch.randn(t.shape).to(device) for t in kv)
             for kv in empty_cache(config, batch, seq_len, device="meta", dtype=torch.float32)]
    return (ids,), {"past_key_values": cache}


def validate_model(name: str, *, platform: str | Path | Mapping | Platform, phase: str = "prefill", batch: int = 1,
                   seq_len: int = 128, device: str = "cpu", threads: int | None = None, force: bool = False,
                   seed: int = 0, min_run_time: float = 0.5, repeats: int = 7,
                   progress: Callable[[str], None] | None = None) -> ValidationReport:
    """:func:`validate` catalogue model ``name``, built in fp32 with random weights (nothing is downloaded).

    ``phase``, ``batch`` and ``seq_len`` mean what they mean for :func:`hetsim.model_graph`
    (decode: one new token per sequence against a KV cache of ``seq_len`` tokens). Weights and
    inputs are drawn from ``seed`` without touching the caller's random state. An unknown model
    or workload raises the catalogue's one-line :class:`~hetsim.errors.GraphError`.
    """
    import torch

    from hetsim.graph.catalog import _check_workload, build_model, model_config

    spec = model_config(name)
    _check_workload(spec, phase, batch, seq_len)
    _check_device(device)
    say = progress or (lambda _msg: None)
    say(f"building {name} (fp32, random weights) on {device}")
    cuda = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        model = build_model(name, device=device, dtype="fp32")
        args, kwargs = model_inputs(name, phase=phase, batch=batch, seq_len=seq_len, device=device, model=model)
    return validate(model, args, platform, kwargs=kwargs, device=device, threads=threads, name=name, force=force,
                    phase=phase, batch=batch, seq_len=seq_len, min_run_time=min_run_time, repeats=repeats,
                    progress=progress)
