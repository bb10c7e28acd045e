"""Scheduler scaling: each static scheduler's run time against graph size, up to 10,000 tasks.

Graphs: ``random_layered`` DAGs (Topcuoglu et al. 2002 §5.1; CCR 1, α 1, β 0.5, seed 0) of
100 … 10,000 tasks on 16 abstract units. Every registered static scheduler but ``exact`` runs on
each, one at a time in one thread; online policies (which decide inside the engine) are left
out. Only the scheduler's call is timed, in a forked child so that a run past ``--timeout`` can
be stopped; building the graph and its cost table is reported apart. A scheduler's series stops
after the first size that takes longer than ``--cutoff`` seconds. Sizes under a second are timed
``--repeat`` times and the median reported.

Writes ``sched_scaling.json`` and ``sched_scaling.png`` (log-log) into ``--out`` (default
``docs/``), prints a markdown table, and HEFT's time on the 10,000-task DAG (goal: under 10 s).

Usage: python benchmarks/sched_scaling.py [--sizes 100,300,1000,3000,10000] [--max-size N]
       [--schedulers heft,cpop] [--cutoff 20] [--timeout 300] [--repeat 3] [--out docs]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread, before numpy loads
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import platform as host  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from hetsim.cost.model import CostModel  # noqa: E402
from hetsim.graph.generators import random_layered  # noqa: E402
from hetsim.graph.instances import instance_graph  # noqa: E402
from hetsim.sched import get_scheduler, list_schedulers  # noqa: E402
from hetsim.spec.abstract import abstract_platform  # noqa: E402

SIZES = (100, 300, 1000, 3000, 10_000)
UNITS = 16
GOAL_S = 10.0


def static_schedulers() -> list[str]:
    """Registered schedulers that return a Schedule before the simulation (exact left out)."""
    try:
        from hetsim.sched.online import is_online
    except ImportError:  # no online policies registered in this version
        def is_online(policy) -> bool:
            return False
    return [n for n in list_schedulers() if n != "exact" and not is_online(get_scheduler(n))]


def build(n_tasks: int):
    t0 = time.perf_counter()
    graph, units = instance_graph(random_layered(n_tasks, UNITS, ccr=1.0, seed=0), name=f"layered{n_tasks}")
    cost = CostModel(graph, abstract_platform(units))
    return graph, cost, time.perf_counter() - t0


def _timed(name: str, graph, cost, conn) -> None:
    gc.collect()
    t0 = time.perf_counter()
    get_scheduler(name)(graph, cost)
    conn.send(time.perf_counter() - t0)


def time_once(name: str, graph, cost, timeout_s: float) -> float | None:
    """Seconds one call of scheduler ``name`` took, in a forked child; None past ``timeout_s``."""
    ctx = multiprocessing.get_context("fork")  # the child shares the graph and cost table, copy-on-write
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_timed, args=(name, graph, cost, child))
    proc.start()
    took = parent.recv() if parent.poll(timeout_s) else None
    if took is None:
        proc.kill()
    proc.join()
    if took is None and proc.exitcode not in (0, -9):
        raise RuntimeError(f"scheduler {name!r} failed (exit {proc.exitcode}); run it alone to see why")
    return took


def plot(results: dict, sizes: list[int], path: Path) -> None:
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.5, 5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (name, series) in enumerate(results.items()):
        x = [s for s in sizes if series["seconds"].get(str(s)) is not None]
        ax.plot(x, [series["seconds"][str(s)] for s in x], marker="osD^v"[i // 20 % 5],
                color=colormaps["tab20"](i % 20), label=name)
    ax.axhline(GOAL_S, color="grey", linestyle=":", linewidth=1)
    ax.set(xscale="log", yscale="log", xlabel="tasks (random layered DAG, CCR 1)", ylabel="scheduler run time (s)",
           title=f"scheduler run time vs graph size, {UNITS} units, one thread")
    ax.grid(alpha=0.3, which="both")
    fig.legend(loc="outside right upper", fontsize="small")
    fig.savefig(path)


def table(results: dict, sizes: list[int]) -> str:
    def cell(series: dict, s: int) -> str:
        value = series["seconds"].get(str(s))
        if value is not None:
            return f"{value:.3g}"
        return f"> {series['timeout_s']:g}" if series.get("timed_out_at") == s else "–"

    lines = ["| scheduler | " + " | ".join(f"{s:,}" for s in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cell(series, s) for s in sizes) + " |" for name, series in results.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="task counts, comma-separated")
    parser.add_argument("--max-size", type=int, help="drop the sizes above this (a quick check)")
    parser.add_argument("--schedulers", help="only these, comma-separated (default: every static one but exact)")
    parser.add_argument("--cutoff", type=float, default=20.0, help="stop a series after a size slower than this (s)")
    parser.add_argument("--timeout", type=float, default=300.0, help="stop one run after this many seconds")
    parser.add_argument("--repeat", type=int, default=3, help="runs of sizes under a second; the median is reported")
    parser.add_argument("--out", default="docs", help="folder for sched_scaling.json and sched_scaling.png")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    sizes = [s for s in sizes if args.max_size is None or s <= args.max_size]
    names = args.schedulers.split(",") if args.schedulers else static_schedulers()
    results = {n: {"seconds": {}, "timeout_s": args.timeout, "stopped_after": None, "timed_out_at": None}
               for n in names}
    build_s = {}
    for size in sizes:
        graph, cost, build_s[size] = build(size)
        print(f"{size} tasks, {graph.number_of_edges()} edges, {UNITS} units: graph + cost table {build_s[size]:.2f} s",
              flush=True)
        for name in names:
            series = results[name]
            if series["stopped_after"] is not None or series["timed_out_at"] is not None:
                continue
            took = time_once(name, graph, cost, args.timeout)
            if took is not None and took < 1.0 and args.repeat > 1:
                took = statistics.median([took] + [time_once(name, graph, cost, args.timeout)
                                                   for _ in range(args.repeat - 1)])
            if took is None:
                series["timed_out_at"] = size
                print(f"  {name:<12} > {args.timeout:g} s (stopped)", flush=True)
                continue
            series["seconds"][str(size)] = round(took, 4)
            print(f"  {name:<12} {took:9.3f} s", flush=True)
            if took > args.cutoff:
                series["stopped_after"] = size
        del graph, cost
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    heft_10k = results.get("heft", {}).get("seconds", {}).get("10000")
    report = {"graph": f"random_layered(n_tasks, n_units={UNITS}, ccr=1.0, alpha=1.0, beta=0.5, seed=0)",
              "sizes": sizes, "build_s": {str(k): round(v, 3) for k, v in build_s.items()}, "cutoff_s": args.cutoff,
              "machine": {"python": host.python_version(), "processor": host.processor() or host.machine(),
                          "cpus": os.cpu_count()},
              "heft_10000_s": heft_10k, "heft_goal_s": GOAL_S, "schedulers": results}
    (out / "sched_scaling.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(results, sizes, out / "sched_scaling.png")
    print()
    print(table(results, sizes))
    print()
    if heft_10k is None:
        print("HEFT on the 10,000-task DAG: not measured (size not run, or HEFT stopped earlier)")
    else:
        verdict = "meets" if heft_10k < GOAL_S else "misses"
        print(f"HEFT on the 10,000-task DAG, {UNITS} units: {heft_10k:.2f} s ({verdict} the {GOAL_S:g} s goal)")
    print(f"wrote {out / 'sched_scaling.json'} and {out / 'sched_scaling.png'}")


if __name__ == "__main__":
    main()
