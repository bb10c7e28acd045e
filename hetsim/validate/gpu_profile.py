"""``hetsim calibrate --gpu-ops/--collectives/--trace``: fit a GPU profile to measurements.

Microbenchmarks need the device; these fits do not. They start from a GPU preset (``--base``,
by default the preset of the measured GPU) and replace the parts the measurements cover:

- ``--gpu-ops CSV`` (``shared/calibration/gpu_ops.csv``'s columns) and ``--trace JSON``
  (torch.profiler Chrome traces of real GPU runs, :mod:`hetsim.validate.kineto`) fit the GPU
  unit's kernel-level model (:func:`hetsim.validate.gpu_fit.fit_kernels`);
- ``--collectives CSV`` (``shared/calibration/collectives.csv``'s columns) fits the platform's
  NCCL constants (:func:`hetsim.validate.nccl_fit.fit_nccl`).

Each fit reports its cross-validated error: leave one model (or trace) out for kernels, leave one
size octave out for collectives. The profile names the data behind every fitted constant in the
sections' ``sources`` and in its ``manifest``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hetsim.validate.calibrate import CalibrationError

#: torch.profiler op kinds -> the kernel families of :mod:`hetsim.validate.gpu_fit`
_FAMILIES = {"matmul": "gemm", "norm": "norm", "embedding": "embedding"}
_ACTIVATIONS = ("silu", "gelu", "relu", "tanh", "sigmoid")


def trace_samples(paths: Sequence[str | Path], gpu: str) -> list:
    """:class:`~hetsim.validate.gpu_fit.Sample` per costable GPU op of the traces (group = file name).

    Matrix products, norms, embeddings, activations and adds are kept; a CPU-only trace has no GPU
    kernel times and is refused.
    """
    from hetsim.validate.gpu_fit import Sample
    from hetsim.validate.kineto import profiled_op, read_profiler_trace

    samples = []
    for path in paths:
        ops = read_profiler_trace(path)
        if any(p.device != "cuda" for p in ops):
            raise CalibrationError(f"--trace {str(path)!r}: got a trace without GPU kernels, expected a torch.profiler "
                                   "trace of a CUDA run (activities CPU and CUDA)")
        for p in ops:
            op = profiled_op(p)
            if op is None or p.seconds <= 0:
                continue
            name = op["target"].split(".")[1]
            family = _FAMILIES.get(op["op"]) or ("activation" if name in _ACTIVATIONS else
                                                 "residual_add" if name == "add" else None)
            if family is not None:
                samples.append(Sample(op, p.seconds, Path(path).name, family, gpu))
    return samples


def fit_gpu_profile(*, gpu: str | None = None, gpu_ops: str | Path | None = None,
                    traces: Sequence[str | Path] = (), collectives: str | Path | None = None,
                    cluster: str | None = None, base: str | None = None, name: str | None = None) -> tuple[dict, dict]:
    """The profile mapping fitted to the given measurements, and a report of the fits' errors.

    ``gpu`` (``a100`` or ``h100``) picks the rows of ``gpu_ops`` and the default ``base`` preset;
    ``cluster`` the rows of ``collectives`` (needed when the file holds several clusters).
    """
    from hetsim.spec.loader import preset_path, read_yaml
    from hetsim.validate import gpu_fit

    if gpu_ops is None and not traces and collectives is None:
        raise CalibrationError("calibrate: got no measurements, expected --gpu-ops, --trace or --collectives")
    if (gpu_ops is not None or traces) and gpu not in gpu_fit.PRESETS:
        raise CalibrationError(f"--gpu: got {gpu!r}, expected one of {', '.join(gpu_fit.PRESETS)} (the GPU whose "
                               "kernel times are fitted)")
    base = base or gpu_fit.PRESETS.get(gpu or "", None)
    if base is None:
        raise CalibrationError("--base: got nothing, expected the preset the profile starts from (or --gpu)")
    source = Path(base) if Path(base).suffix in (".yaml", ".yml") else preset_path(base)
    profile = dict(read_yaml(source, "--base"))
    profile["name"] = name or f"{profile['name']}-fitted"
    report: dict[str, Any] = {"base": str(base)}
    data: list[str] = []
    if gpu_ops is not None or traces:
        samples = [s for s in gpu_fit.read_gpu_ops(gpu_ops) if s.gpu == gpu] if gpu_ops is not None else []
        samples += trace_samples(traces, gpu)
        if not samples:
            raise CalibrationError(f"--gpu: got {gpu!r}, but the measurements hold no kernel of that GPU")
        report["kernels"] = _kernel_fit(profile, samples, str(source))
        data += [str(p) for p in ([gpu_ops] if gpu_ops is not None else []) + list(traces)]
    if collectives is not None:
        report["collectives"] = _nccl_fit(profile, collectives, cluster)
        data.append(str(collectives))
    manifest = dict(profile.get("manifest") or {})
    manifest.update(fitted_to=data, fitted_on=_dt.date.today().isoformat(), base=str(base))
    profile["manifest"] = manifest
    return profile, report


def _kernel_fit(profile: dict, samples: list, base: str) -> dict:
    from hetsim.spec.kernels import kernels_to_dict
    from hetsim.spec.loader import load_platform
    from hetsim.validate import gpu_fit

    platform = load_platform(base)
    kernels = gpu_fit.fit_kernels(samples, platform=platform)
    units = [u for u in profile["units"] if u.get("kind") == "gpu"]
    for unit in units:
        unit["kernels"] = kernels_to_dict(kernels)
    groups = sorted({s.group for s in samples})
    rows = gpu_fit.cross_validate(samples) if len(groups) > 1 else []
    return {"samples": len(samples), "groups": groups, "gpu_units": len(units),
            "cross_validated": [asdict(r) for r in rows]}


def _nccl_fit(profile: dict, path: str | Path, cluster: str | None) -> dict:
    from hetsim.spec.nccl import nccl_to_dict
    from hetsim.validate import nccl_fit

    samples = nccl_fit.read_collectives(path)
    clusters = sorted({s.cluster for s in samples})
    if cluster is None and len(clusters) == 1:
        cluster = clusters[0]
    if cluster not in clusters:
        raise CalibrationError(f"--cluster: got {cluster!r}, expected one of {', '.join(clusters)} (clusters of "
                               f"{str(path)!r})")
    samples = [s for s in samples if s.cluster == cluster]
    profile["collectives"] = nccl_to_dict(nccl_fit.fit_nccl(samples))
    rows = nccl_fit.cross_validate(samples)
    return {"cluster": cluster, "samples": len(samples), "cross_validated": [asdict(r) for r in rows]}
