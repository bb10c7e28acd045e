"""``hetsim sweep``: run a sweep file's points in parallel and tabulate them.

Wired into :mod:`hetsim.cli` by :func:`add_parser`. The sweep file, the swept keys and the executor
options are checked before anything is written: bad input is one line and exit status 2 with no
output folder. Progress goes to stderr; ``--json`` prints one JSON object on stdout.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser(prog="hetsim")
>>> _ = add_parser(parser.add_subparsers(dest="verb"))
>>> args = parser.parse_args(["sweep", "s.yaml", "--executor", "dask", "--workers", "2"])
>>> args.sweep, args.executor, args.workers, args.address, args.json
('s.yaml', 'dask', 2, None, False)
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from hetsim.sweep.runner import EXECUTORS


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``sweep`` verb on ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    p = subparsers.add_parser(
        "sweep", help="run a parameter sweep (grid / random search) over a scenario",
        description="Run every point of a sweep file (a base scenario plus a grid and/or a random search of "
                    "--set style overrides) on a local process pool or a Dask cluster. Finished points are "
                    "appended to OUT/results.jsonl, so a rerun runs only the missing ones; OUT/results.csv and "
                    "OUT/pareto.png (makespan vs energy) are written at the end.")
    p.add_argument("sweep", help="sweep YAML file, e.g. scenarios/sweeps/cap_batch.yaml")
    p.add_argument("--executor", default="local", choices=EXECUTORS,
                   help="local: a process pool (default); dask: a Dask cluster (needs hetsim[sweep])")
    p.add_argument("--workers", type=int, metavar="N", help="processes (default: the number of CPUs)")
    p.add_argument("--address", metavar="ADDR", help="Dask scheduler address, e.g. tcp://host:8786 "
                   "(default with --executor dask: a local cluster started for this run)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: the sweep's outputs.dir)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the run's counts on stdout")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Handler of ``hetsim sweep``; raises :class:`~hetsim.sweep.spec.SweepError` on bad input."""
    from hetsim.sweep.runner import run_sweep
    from hetsim.sweep.spec import load_sweep

    spec = load_sweep(args.sweep)
    rows = run_sweep(spec, args.executor, workers=args.workers, address=args.address, out_dir=args.out)
    if args.json:
        print(json.dumps(rows.stats(), sort_keys=True))
        return 0
    _print(rows)
    return 0


def _print(rows) -> None:
    """The counts, then the Pareto-optimal points on the first axes :func:`~hetsim.sweep.plots.pareto_axes` picks.

    Makespan vs energy for op-graph points; p99 TTFT vs energy per token for serving points (one
    front per swept ``serve.rate_per_s``).
    """
    from rich.console import Console
    from rich.table import Table

    from hetsim.sweep.plots import AXES, pareto_axes, pareto_fronts, row_value

    console = Console()
    console.print(f"{rows.name}: {rows.points} points, ran {rows.ran}, skipped {rows.skipped} (already done), "
                  f"{rows.errors} errors; table {rows.table}")
    x, y = pareto_axes(rows)[0]
    fronts = pareto_fronts(rows, x, y)
    if not any(fronts.values()):
        return
    (xlabel, xs), (ylabel, ys) = AXES.get(x, (x, 1.0)), AXES.get(y, (y, 1.0))
    table = Table(title=f"Pareto front ({xlabel} vs {ylabel})")
    for column in ("id", "overrides", xlabel, ylabel):
        table.add_column(column, justify="left" if column in ("id", "overrides") else "right")
    by_id = {r["id"]: r for r in rows}
    for front in fronts.values():
        for pid in front:
            r = by_id[pid]
            table.add_row(pid, ", ".join(f"{k}={v}" for k, v in r["overrides"].items()),
                          f"{row_value(r, x) * xs:.4g}", f"{row_value(r, y) * ys:.4g}")
    console.print(table)
