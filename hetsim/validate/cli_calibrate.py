"""``hetsim calibrate``: measure this machine with microbenchmarks and write a device profile.

Wired into :mod:`hetsim.cli` by :func:`add_parser`. Progress goes to stderr (a rich progress bar);
``--json`` prints one JSON object on stdout. Bad input (``--device cuda`` without CUDA, a
``--threads`` below one, an output path that is not ``.yaml``) is one line and exit status 2,
before anything is measured or written.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser(prog="hetsim")
>>> _ = add_parser(parser.add_subparsers(dest="verb"))
>>> args = parser.parse_args(["calibrate", "--quick", "-o", "profiles/me.yaml"])
>>> args.device, args.threads, args.quick, args.output
('cpu', None, True, 'profiles/me.yaml')
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hetsim.validate.calibrate import CalibrationError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``calibrate`` verb on ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    p = subparsers.add_parser(
        "calibrate", help="measure this machine and write a device profile",
        description="Time single ATen ops over a grid of sizes (microbenchmarks only, no model is run) and fit "
                    "them into a device profile that loads as a platform: hetsim.load_platform(PATH).")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda / cuda:N")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch threads to measure with (default: all cores but one, at least one)")
    p.add_argument("--quick", action="store_true", help="reduced grid: under a minute, rougher curves")
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="profile to write, e.g. profiles/me.yaml")
    p.add_argument("--name", help="platform name in the profile (default: cpu-calibrated / gpu-calibrated)")
    p.add_argument("--targets", metavar="T1,T2", help="only these ATen targets, e.g. aten.add.Tensor (a partial "
                   "profile, for tests)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the summary on stdout")
    fit = p.add_argument_group(
        "fit a GPU profile to measurements instead (no device needed; see hetsim.validate.gpu_profile)")
    fit.add_argument("--gpu-ops", metavar="CSV", help="per-op kernel times, columns of shared/calibration/gpu_ops.csv")
    fit.add_argument("--trace", action="append", default=[], metavar="JSON",
                     help="a torch.profiler Chrome trace of a real GPU run (repeatable)")
    fit.add_argument("--gpu", help="the GPU of --gpu-ops/--trace: a100 or h100")
    fit.add_argument("--collectives", metavar="CSV", help="NCCL times, columns of shared/calibration/collectives.csv")
    fit.add_argument("--cluster", help="the cluster of --collectives to fit (when it holds several)")
    fit.add_argument("--base", metavar="PRESET", help="preset or platform YAML the profile starts from "
                     "(default: the --gpu's preset)")
    p.set_defaults(func=run)
    return p


def summary(profile: dict, path: Path) -> dict:
    """What a calibration produced, as plain data."""
    unit, memory = profile["units"][0], profile["memories"][0]
    manifest = profile.get("manifest", {})
    return {
        "output": str(path), "name": profile["name"], "device": manifest.get("device"),
        "threads": manifest.get("threads"), "grid": manifest.get("grid"),
        "microbenchmarks": manifest.get("microbenchmarks"), "duration_s": manifest.get("duration_s"),
        "peak_flop_per_s": unit["peak"], "bandwidth_bytes_per_s": memory["bandwidth"],
        "overhead_s": unit["overhead"], "curves": len(unit.get("curves", {})),
    }


def run(args: argparse.Namespace) -> int:
    """Handler of ``hetsim calibrate``; raises :class:`CalibrationError` on bad input."""
    from hetsim.validate.calibrate import calibrate, check_device, write_profile

    output = Path(args.output)
    if output.suffix not in (".yaml", ".yml"):
        raise CalibrationError(f"--output: got {args.output!r}, expected a path ending in .yaml or .yml")
    if output.exists() and output.is_dir():
        raise CalibrationError(f"--output: got {args.output!r}, which is a directory; expected a file path")
    if args.gpu_ops or args.trace or args.collectives:
        return run_fit(args, output)
    if args.threads is not None and args.threads < 1:
        raise CalibrationError(f"--threads: got {args.threads}, expected a positive whole number")
    device = check_device(args.device)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()] if args.targets else None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    columns = (TextColumn("calibrating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.description}"))
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def progress(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label[:60])

        profile = calibrate(device=device, threads=args.threads, quick=args.quick, progress=progress,
                            name=args.name, targets=targets)
    path = write_profile(profile, output)
    info = summary(profile, path)
    if args.json:
        print(json.dumps(info, sort_keys=True))
    else:
        peaks = ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in info["peak_flop_per_s"].items())
        print(f"wrote {path}: {info['microbenchmarks']} microbenchmarks in {info['duration_s']} s on "
              f"{info['device']} ({info['threads']} thread(s)); peak {peaks}; memory "
              f"{info['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s; overhead {info['overhead_s'] * 1e6:.1f} us; "
              f"{info['curves']} curves", file=sys.stdout)
    return 0


def run_fit(args: argparse.Namespace, output: Path) -> int:
    """``hetsim calibrate --gpu-ops/--trace/--collectives``: fit, print the cross-validated errors, write."""
    from hetsim.validate.calibrate import write_profile
    from hetsim.validate.gpu_profile import fit_gpu_profile

    profile, report = fit_gpu_profile(gpu=args.gpu, gpu_ops=args.gpu_ops, traces=args.trace,
                                      collectives=args.collectives, cluster=args.cluster, base=args.base,
                                      name=args.name)
    path = write_profile(profile, output)
    report["output"] = str(path)
    if args.json:
        print(json.dumps(report, sort_keys=True))
        return 0
    print(f"wrote {path} (from {report['base']})")
    kernels = report.get("kernels")
    if kernels:
        print(f"kernels: {kernels['samples']} samples of {len(kernels['groups'])} models/traces; "
              "leave-one-out |error| per family: median / p90 / worst")
        for r in kernels["cross_validated"]:
            print(f"  {r['gpu']} {r['family']:<13} n={r['n']:<5} {r['median']:.1%} / {r['p90']:.1%} / {r['worst']:.1%}")
    coll = report.get("collectives")
    if coll:
        print(f"collectives: cluster {coll['cluster']}, {coll['samples']} samples; leave-one-size-octave-out "
              "|error|: median / p90 / worst")
        for r in coll["cross_validated"]:
            print(f"  {r['collective']:<10} {r['scope']:<5} n={r['n']:<4} {r['median']:.1%} / {r['p90']:.1%} / "
                  f"{r['worst']:.1%}")
    return 0
