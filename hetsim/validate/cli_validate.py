"""``hetsim validate``: run a catalogue model for real and compare it with the simulator's prediction.

::

    hetsim validate --model gpt2 --phase prefill --batch 1 --seq 128 \\
        --profile profiles/cpu-this-machine.yaml [--device cpu] [--threads 1] [--json] [--out DIR]

``--profile`` is a platform preset name or a platform YAML file. A calibrated profile carries a
manifest (device, torch version, threads) and is refused on another machine unless ``--force``
(then a warning says why); a platform without a manifest (a preset) is compared as it is, with a
note on stderr, since its figures were not measured here. The thread count defaults to the
profile's, else all cores but one.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``validate`` verb on ``subparsers`` (from :meth:`argparse.ArgumentParser.add_subparsers`)."""
    p = subparsers.add_parser(
        "validate", help="run a model for real and compare it with the simulated time",
        description="Build a catalogue model in fp32 with random weights, time it on this machine (end to end and "
                    "per op), simulate the same graph on a platform with every op on its one unit of the device's "
                    "kind, and report predicted vs measured.")
    p.add_argument("--model", required=True, metavar="NAME", help="catalogue model, e.g. gpt2 (see hetsim.list_models)")
    p.add_argument("--phase", default="prefill", metavar="PHASE", help="prefill (default) or decode")
    p.add_argument("--batch", type=int, default=1, metavar="B", help="sequences per batch (default 1)")
    p.add_argument("--seq", dest="seq_len", type=int, default=128, metavar="T",
                   help="prompt length (prefill) or KV-cache length (decode); default 128")
    p.add_argument("--profile", required=True, metavar="FILE",
                   help="platform to predict with: a calibrated profile YAML or a preset name")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="measurement threads (default: the profile's, else all cores but one)")
    p.add_argument("--force", action="store_true",
                   help="use a profile measured on another device or torch version (with a warning)")
    p.add_argument("--min-run-time", type=float, default=0.5, metavar="SECONDS",
                   help="seconds of end-to-end timing, and of per-op passes (default 0.5)")
    p.add_argument("--repeats", type=int, default=7, metavar="N",
                   help="at least this many timed blocks and per-op passes (default 7)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the report on stdout")
    p.add_argument("--out", metavar="DIR", help="write validation.json, ops.csv and scatter.png into DIR")
    p.set_defaults(func=run_validate)
    return p


def run_validate(args: argparse.Namespace) -> int:
    """Run the ``validate`` verb; :class:`~hetsim.errors.HetsimError` propagates to the caller (exit 2)."""
    from rich.console import Console

    from hetsim.spec.loader import load_platform
    from hetsim.validate.compare import validate_model

    err = Console(stderr=True)
    platform = load_platform(args.profile)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with err.status("starting", spinner="dots") as status:
            report = validate_model(args.model, platform=platform, phase=args.phase, batch=args.batch,
                                    seq_len=args.seq_len, device=args.device, threads=args.threads,
                                    force=args.force, min_run_time=args.min_run_time, repeats=args.repeats,
                                    progress=lambda m: status.update(m))
    if not platform.manifest:
        print(f"hetsim: note: platform {platform.name!r} has no manifest (not a calibrated profile): predicted "
              "with its nominal figures, not checked against this machine", file=sys.stderr)
    for w in caught:
        print(f"hetsim: warning: {w.message}", file=sys.stderr)
    written = report.write(args.out) if args.out else {}
    if args.json:
        out = report.to_dict()
        out["outputs"] = {k: str(v) for k, v in written.items()}
        print(json.dumps(out, sort_keys=True))
        return 0
    print_report(report, console=Console())
    if args.out:
        err.print(f"outputs written to {args.out}")
    return 0


def _pct(value: float | None) -> str:
    return "—" if value is None or value != value else f"{value:+.0%}"


def print_report(report: Any, *, console: Any = None, top: int = 10) -> None:
    """Print a :class:`~hetsim.validate.compare.ValidationReport` as rich tables."""
    from rich.console import Console
    from rich.table import Table

    from hetsim.report.tables import format_seconds as fs

    console = console or Console()
    mape = report.per_op_mape
    console.print(f"[bold]{report.name}[/] {report.phase} batch {report.batch} seq {report.seq_len} on "
                  f"{report.platform}:{report.unit} ({'calibrated' if report.calibrated else 'not calibrated'}), "
                  f"{report.device}, {report.threads} thread(s)", highlight=False)
    console.print(f"measured {fs(report.measured_s)} (IQR {report.measurement_iqr:.1%}), predicted "
                  f"{fs(report.predicted_s)}: error {_pct(report.e2e_error)}; Σ per-op measured "
                  f"{fs(report.sum_per_op_measured_s)} (error vs it {_pct(report.op_sum_error)}); per-op MAPE "
                  f"{'—' if mape != mape else f'{mape:.0%}'} over {report.per_op_mape_count} ops > 50 µs",
                  highlight=False)
    kinds = Table(title="per op kind")
    for col in ("kind", "ops", "measured", "predicted", "error"):
        kinds.add_column(col, justify="left" if col == "kind" else "right")
    for kind, row in report.by_kind.items():
        kinds.add_row(kind, str(row["count"]), fs(row["measured_s"]), fs(row["predicted_s"]), _pct(row["error"]))
    console.print(kinds)
    ops = Table(title=f"top {top} ops by measured time")
    for col in ("op", "kind", "measured", "predicted", "error"):
        ops.add_column(col, justify="right" if col in ("measured", "predicted", "error") else "left")
    for o in sorted(report.ops, key=lambda o: -(o.measured_s or 0.0))[:top]:
        ops.add_row(o.op, o.kind, fs(o.measured_s or 0.0), fs(o.predicted_s), _pct(o.error))
    console.print(ops)
