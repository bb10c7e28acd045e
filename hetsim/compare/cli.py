"""``hetsim compare``: run a comparison suite and write its results, summary and plots.

Wired into :mod:`hetsim.cli` by :func:`add_parser`. The suite is checked and every graph built
before anything runs; the output folder is written only once everything is computed, each file
atomically. ``--json`` prints the summary as one JSON object on stdout; progress goes to stderr.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser(prog="hetsim")
>>> _ = add_parser(parser.add_subparsers(dest="verb"))
>>> args = parser.parse_args(["compare", "suite.yaml", "--schedulers", "heft,cpop", "--seeds", "0,1"])
>>> args.suite, split_list(args.schedulers, "--schedulers"), parse_int_list(args.seeds, "--seeds")
('suite.yaml', ['heft', 'cpop'], [0, 1])
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from hetsim.errors import ScenarioError

#: the files of the output folder besides the plots
FILES = ("results.csv", "summary.csv", "summary.json")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``compare`` verb on ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    p = subparsers.add_parser(
        "compare", help="compare schedulers on a suite of graphs",
        description="Run every scheduler of a suite on every graph of it (generated DAGs, classic instances, "
                    "catalogue models on platform presets) and write results.csv (one row per graph x "
                    "scheduler), summary.csv / summary.json (per scheduler: mean SLR, speedup, efficiency, "
                    "energy, scheduler time, wins, gap to the optimum) and plots.")
    p.add_argument("suite", help="suite YAML file, e.g. scenarios/compare/classic.yaml")
    p.add_argument("--out", metavar="DIR", help="output folder (default: the suite's outputs.dir)")
    p.add_argument("--schedulers", metavar="A,B", help="only these schedulers, e.g. heft,cpop (replaces the suite's)")
    p.add_argument("--seeds", metavar="0,1", help="these seeds for the generated graphs (replaces the suite's)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the summary on stdout")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.set_defaults(func=run)
    return p


def split_list(text: str | None, flag: str) -> list[str] | None:
    """``"a,b"`` → ``["a", "b"]`` (None stays None); an empty list is an error."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ScenarioError(f"{flag}: got {text!r}, expected a comma-separated list")
    return items


def parse_int_list(text: str | None, flag: str) -> list[int] | None:
    """``"0,1"`` → ``[0, 1]``; anything but integers is a one-line error."""
    items = split_list(text, flag)
    try:
        return None if items is None else [int(t) for t in items]
    except ValueError:
        raise ScenarioError(f"{flag}: got {text!r}, expected comma-separated integers") from None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return out.getvalue()


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def render(rows: list[dict], summary: dict, *, plots: bool = True) -> dict[str, bytes]:
    """Every output file's name → content, computed before anything is written."""
    from hetsim.compare.plots import PLOTS
    from hetsim.compare.runner import COLUMNS

    per = summary["schedulers"]
    keys = list(next(iter(per.values()))) if per else []
    files = {
        "results.csv": _csv(list(COLUMNS), [[r[c] for c in COLUMNS] for r in rows]).encode(),
        "summary.csv": _csv(["scheduler", *keys], [[name, *(s[k] for k in keys)] for name, s in per.items()]).encode(),
    }
    if plots:
        for name, draw in PLOTS.items():
            png = draw(rows)
            if png is not None:
                files[name] = png
    return files


def write(out_dir: Path, files: dict[str, bytes], summary: dict) -> dict[str, str]:
    """Write ``files`` and ``summary.json`` into ``out_dir`` atomically; drop plots of an earlier run."""
    from hetsim.compare.plots import PLOTS
    from hetsim.report._atomic import atomic_write

    outputs = {name: str(out_dir / name) for name in [*files, "summary.json"]}
    text = json.dumps(_json_safe(dict(summary, outputs=outputs)), indent=2, sort_keys=True, allow_nan=False) + "\n"
    for name, content in {**files, "summary.json": text.encode()}.items():
        atomic_write(out_dir / name, lambda tmp, content=content: tmp.write_bytes(content))
    for stale in set(PLOTS) - set(files):
        (out_dir / stale).unlink(missing_ok=True)
    return outputs


def _fmt(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def print_table(summary: dict) -> None:
    """The per-scheduler summary as a rich table on stdout: best mean SLR first, the reference last.

    Columns with nothing to show (energy on abstract units, gaps without exact) are left out.
    """
    from rich.console import Console
    from rich.table import Table

    from hetsim.report.tables import format_energy, format_seconds

    per = summary["schedulers"]
    columns = {"runs": lambda s: str(s["runs"]), "err": lambda s: str(s["errors"]),
               "SLR": lambda s: _fmt(s["mean_slr"], ".3f"), "speedup": lambda s: _fmt(s["mean_speedup"], ".2f"),
               "eff.": lambda s: _fmt(s["mean_efficiency"], ".2f"),
               "energy": lambda s: _fmt(s["mean_energy_j"] and format_energy(s["mean_energy_j"]), ""),
               "time": lambda s: _fmt(s["mean_scheduler_time_s"] and format_seconds(s["mean_scheduler_time_s"]), ""),
               "wins": lambda s: _fmt(s["wins"], "d"), "gap opt.": lambda s: _fmt(s["mean_gap_to_optimum"], ".2%"),
               "gap bound": lambda s: _fmt(s["mean_gap_to_bound"], ".2%")}
    optional = {"energy": "mean_energy_j", "gap opt.": "mean_gap_to_optimum", "gap bound": "mean_gap_to_bound"}
    shown = [c for c in columns if c not in optional or any(s[optional[c]] is not None for s in per.values())]
    counts = {"gap opt.": "optimum_cases", "gap bound": "bound_cases"}  # how many cases the gaps average over
    heading = {c: f"{c} (n={max(s[counts[c]] for s in per.values())})" if c in counts else c for c in shown}
    table = Table(title=f"suite {summary['suite']}: {summary['cases']} cases, {summary['rows']} runs, "
                  f"{summary['errors']} errors (means over completed runs)")
    table.add_column("scheduler", no_wrap=True)
    for col in shown:
        table.add_column(heading[col], justify="right", no_wrap=True)
    order = sorted(per, key=lambda k: (per[k]["wins"] is None, per[k]["mean_slr"] is None, per[k]["mean_slr"] or 0))
    for label in order:
        table.add_row(label, *(columns[c](per[label]) for c in shown))
    console = Console()
    if not console.is_terminal:  # piped to a file: no terminal width to respect
        console.width = 120
    console.print(table)


def run(args: argparse.Namespace) -> int:
    """Handler of ``hetsim compare``; bad input raises a one-line :class:`ScenarioError`."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from hetsim.compare.runner import run_suite, summarize
    from hetsim.compare.suite import load_suite

    suite = load_suite(args.suite, schedulers=split_list(args.schedulers, "--schedulers"),
                       seeds=parse_int_list(args.seeds, "--seeds"))
    out_dir = Path(args.out or suite.outputs["dir"])
    if out_dir.exists() and not out_dir.is_dir():
        raise ScenarioError(f"--out: got {str(out_dir)!r}, which is a file; expected a folder")
    err = Console(stderr=True)
    columns = (TextColumn("comparing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.description}"))
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("building graphs", total=None)

        def progress(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label[:60])

        rows = run_suite(suite, progress=progress)
    summary = summarize(rows, suite)
    files = render(rows, summary, plots=suite.outputs["plots"] and not args.no_plots)
    summary = _json_safe(dict(summary, outputs=write(out_dir, files, summary)))
    if args.json:
        print(json.dumps(summary, sort_keys=True, allow_nan=False))
    else:
        print_table(summary)
        err.print(f"outputs written to {out_dir}")
    return 0
