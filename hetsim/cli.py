"""The ``hetsim`` command.

Every verb has ``--help``; ``--json`` prints exactly one JSON object on stdout while progress and
logs go to stderr. Bad input prints one line ``hetsim: error: ...`` on stderr and exits with
status 2, without a traceback and without leaving half-written files.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from hetsim.errors import HetsimError

EXIT_USAGE = 2


def _cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console

    from hetsim.scenario import load_variants, run_scenario

    scenarios = load_variants(args.scenario, args.set)
    err = Console(stderr=True)
    summaries = []
    for label, scenario in scenarios:
        out = str(Path(args.out) / Path(scenario.outputs["dir"]).name) if args.out and label else args.out
        with err.status(f"starting {label}", spinner="dots") as status:
            result, written = run_scenario(scenario, out_dir=out, progress=lambda m, s=status: s.update(m))
        summary = dict(result.summary, outputs={k: str(v) for k, v in written.items()})
        summaries.append(dict(summary, variant=label) if label else summary)
        err.print(f"outputs written to {out or scenario.outputs['dir']}")
    if args.json:
        print(json.dumps(summaries[0] if len(summaries) == 1 and not scenarios[0][0] else {"variants": summaries},
                         sort_keys=True))
    elif any("ttft_p99_s" in row for row in summaries):
        _print_serve(summaries, Console())
    elif len(summaries) == 1 and not scenarios[0][0]:
        from hetsim.report.tables import print_summary

        print_summary(summaries[0], console=Console())
    else:
        _print_variants(summaries, Console())
    return 0


def _print_variants(summaries: list[dict], console) -> None:
    """One row per variant: makespan, energy, average power, the fullest memory."""
    from rich.table import Table

    from hetsim.report.tables import format_energy, format_seconds

    table = Table(title=f"{summaries[0].get('graph', '')} on {summaries[0].get('platform', '')}")
    for column in ("variant", "makespan", "energy", "average power", "peak memory"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for row in summaries:
        makespan, energy = row.get("makespan_s", 0.0), row.get("energy_j", 0.0)
        peak = max(row.get("peak_memory_bytes", {}).values(), default=0.0)
        table.add_row(row["variant"], format_seconds(makespan), format_energy(energy),
                      f"{energy / makespan:.1f} W" if makespan else "-", f"{peak / 1e9:.2f} GB")
    console.print(table)


def _print_serve(summaries: list[dict], console) -> None:
    """Serving runs: TTFT/TPOT percentiles, throughput, goodput, energy per token (a column per variant)."""
    from rich.table import Table

    from hetsim.report.tables import format_seconds

    def num(value, fmt: str, unit: str = "") -> str:
        if value is None:
            return "-"
        return format_seconds(value) if unit == " s" else format(value, fmt) + unit

    first = summaries[0]
    layout = first.get("layout", f"tp {first.get('tp', '')}")
    table = Table(title=f"serving {first.get('model', '')} on {first.get('platform', '')} ({layout})")
    table.add_column("metric", style="bold")
    for row in summaries:
        table.add_column(row.get("variant", "value"), justify="right")
    rows = (("requests", "requests", "d", ""), ("units", "units", "d", ""), ("TTFT p50", "ttft_p50_s", ".4f", " s"),
            ("TTFT p99", "ttft_p99_s", ".4f", " s"), ("TPOT p50", "tpot_p50_s", ".4f", " s"),
            ("TPOT p99", "tpot_p99_s", ".4f", " s"), ("e2e p99", "e2e_p99_s", ".3f", " s"),
            ("throughput", "throughput_tokens_per_s", ".1f", " tok/s"),
            ("goodput", "goodput_requests_per_s", ".2f", " req/s"), ("SLO attainment", "slo_attainment", ".1%", ""),
            ("energy per token", "energy_per_token_j", ".4f", " J"), ("preemptions", "preemptions", "d", ""),
            ("KV transfer mean", "kv_transfer_mean_s", ".4f", " s"),
            ("fit max error", "fit_max_rel_error", ".1%", ""))
    for label, key, fmt, unit in rows:
        table.add_row(label, *(num(row.get(key), fmt, unit) for row in summaries))
    console.print(table)


def _cmd_presets(args: argparse.Namespace) -> int:
    from hetsim.spec.loader import list_presets, load_platform

    rows = {}
    for name in list_presets():
        p = load_platform(name)
        rows[name] = {"description": p.description, "units": [f"{u.name} ({u.kind})" for u in p.units],
                      "memories": [m.name for m in p.memories], "power_budget_w": p.power_budget_w}
    if args.json:
        print(json.dumps(rows, sort_keys=True))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="platform presets")
    for col in ("name", "units", "description"):
        table.add_column(col)
    for name, row in rows.items():
        table.add_row(name, ", ".join(row["units"]), row["description"])
    Console().print(table)
    return 0


def _cmd_schedulers(args: argparse.Namespace) -> int:
    from hetsim.sched.registry import list_schedulers

    rows = list_schedulers()
    if args.json:
        print(json.dumps(rows, sort_keys=True))
        return 0
    width = max(map(len, rows))
    for name, text in rows.items():
        print(f"{name:<{width}}  {text}")
    return 0


def _cmd_schedule(args: argparse.Namespace) -> int:
    from hetsim.api import simulate
    from hetsim.graph.instances import load_instance
    from hetsim.spec.abstract import abstract_platform

    graph, units = load_instance(args.instance)
    result = simulate(graph, abstract_platform(units, name=graph.graph["name"]), args.scheduler)
    schedule, simulated = result.schedule, result.makespan_s
    tasks = {op: {"unit": schedule.assignment[op], "start": schedule.start[op], "finish": schedule.finish[op]}
             for op in sorted(graph, key=lambda o: (schedule.start[o], o))}
    if args.json:
        print(json.dumps({"scheduler": args.scheduler, "makespan": schedule.makespan_s, "simulated_makespan": simulated,
                          "tasks": tasks}))
        return 0
    print(f"{args.scheduler}: makespan {schedule.makespan_s:g} (simulated {simulated:g})")
    for op, row in tasks.items():
        print(f"  {op:>8}  {row['unit']:<8} {row['start']:>10g} {row['finish']:>10g}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``hetsim`` command."""
    parser = argparse.ArgumentParser(prog="hetsim", description="Simulate Transformer workloads on heterogeneous "
                                     "hardware (CPU, GPU, TPU, NPU).")
    from hetsim import __version__

    parser.add_argument("--version", action="version", version=f"hetsim {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    run = verbs.add_parser("run", help="run a scenario YAML file", description="Run a scenario: platform + workload "
                           "+ scheduler + engine options + outputs.")
    run.add_argument("scenario", help="scenario YAML file, e.g. scenarios/quickstart.yaml")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a scenario field, e.g. --set workload.batch=8 (repeatable)")
    run.add_argument("--json", action="store_true", help="print one JSON object with the summary on stdout")
    run.add_argument("--out", metavar="DIR", help="output folder (default: the scenario's outputs.dir)")
    run.set_defaults(func=_cmd_run)
    presets = verbs.add_parser("presets", help="list the built-in platform presets")
    presets.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    presets.set_defaults(func=_cmd_presets)
    scheds = verbs.add_parser("schedulers", help="list the registered schedulers")
    scheds.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    scheds.set_defaults(func=_cmd_schedulers)
    sched = verbs.add_parser("schedule", help="schedule a classic instance (costs per task and unit)",
                             description="Schedule a classic instance JSON ({units, tasks, edges}, as in "
                             "Topcuoglu et al. 2002), check it, simulate it, and print each task's unit, start "
                             "and finish.")
    sched.add_argument("instance", help="instance JSON file, e.g. scenarios/instances/topcuoglu2002.json")
    sched.add_argument("--scheduler", default="heft", help="registered scheduler name (default heft)")
    sched.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    sched.set_defaults(func=_cmd_schedule)
    from hetsim.compare.cli import add_parser as add_compare_parser
    from hetsim.sweep.cli import add_parser as add_sweep_parser
    from hetsim.validate.cli_calibrate import add_parser as add_calibrate_parser
    from hetsim.validate.cli_validate import add_parser as add_validate_parser

    add_compare_parser(verbs)
    add_sweep_parser(verbs)
    add_calibrate_parser(verbs)
    add_validate_parser(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hetsim`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HetsimError as exc:
        print(f"hetsim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("hetsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`hetsim ... | head`): stop quietly, as other tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 1


if __name__ == "__main__":
    sys.exit(main())
