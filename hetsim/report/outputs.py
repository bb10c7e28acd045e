"""Write the files of one run: ``summary.json``, ``ops.csv``, ``trace.json``, ``gantt.png``, ``power.png``.

Every file is written to a temporary name in the output directory and renamed into place, so a
reader (or a crash) never sees a half-written file.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

from hetsim.report._atomic import atomic_write
from hetsim.report.chrome import write_chrome_trace
from hetsim.report.metrics import inputs_ready_s, op_energy_j, summary

if TYPE_CHECKING:
    import networkx as nx

    from hetsim.sim.trace import Trace
    from hetsim.spec.types import Platform

__all__ = ["OPS_CSV_COLUMNS", "ops_csv", "write_outputs"]

OPS_CSV_COLUMNS = ("op", "unit", "start_s", "end_s", "duration_s", "op_kind", "module", "flop", "bytes",
                   "power_state", "inputs_ready_s", "energy_j", "memory_energy_j")


def ops_csv(trace: Trace, graph: nx.DiGraph, platform: Platform | None = None) -> str:
    """One CSV row per op run, in trace order, with the columns of :data:`OPS_CSV_COLUMNS`.

    ``inputs_ready_s`` is when the op's last input arrived (its producer's end, or the end of the
    transfer carrying it); ``start_s - inputs_ready_s`` is how long it then waited for its unit.
    ``energy_j`` is the energy charged to the op (:func:`~hetsim.report.metrics.op_energy_j`): its
    unit's power integrated over its run plus ``memory_energy_j``, the bytes it read and wrote
    times its memory's energy per byte. Link energy stays with the links. Both energy cells are
    empty without ``platform``.
    """
    ready = inputs_ready_s(trace, graph)
    energy = op_energy_j(trace, platform) if platform is not None else {}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(OPS_CSV_COLUMNS)
    for run in trace.ops:
        attrs = graph.nodes[run.op] if run.op in graph else {}
        op_energy = energy.get(run.op)
        joules = ["", ""] if op_energy is None else [repr(op_energy.total_j), repr(op_energy.memory_j)]
        writer.writerow([run.op, run.unit, repr(float(run.start_s)), repr(float(run.end_s)),
                         repr(float(run.duration_s)), attrs.get("op", "other"), attrs.get("module", ""),
                         repr(float(run.flop)), repr(float(run.bytes)), run.power_state, repr(ready[run.op]),
                         *joules])
    return out.getvalue()


def write_outputs(trace: Trace, platform: Platform, graph: nx.DiGraph, out_dir: str | Path, *,
                  trace_json: bool = True, gantt: bool = True, ops_csv: bool = True, power: bool = False,
                  summary_data: dict | None = None) -> dict[str, Path]:
    """Write the run's files into ``out_dir`` (created if needed); return ``{kind: path}``.

    ``summary_data`` replaces the computed summary (a caller that already has it, with extra keys).

    Kinds: ``summary`` (always), ``ops_csv``, ``trace``, ``gantt`` and ``power`` (``power.png``,
    :func:`~hetsim.report.power_plot.plot_power`, off by default) when asked for. Content is
    computed before anything is written, and each file is renamed into place only when complete.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    content = summary_data or summary(trace, platform, graph)
    summary_text = json.dumps(content, indent=2, sort_keys=True, allow_nan=False) + "\n"
    csv_text = _ops_csv(trace, graph, platform) if ops_csv else None
    written = {"summary": atomic_write(out / "summary.json", lambda tmp: tmp.write_text(summary_text, "utf-8"))}
    if csv_text is not None:
        written["ops_csv"] = atomic_write(out / "ops.csv", lambda tmp: tmp.write_text(csv_text, "utf-8"))
    if trace_json:
        written["trace"] = write_chrome_trace(trace, platform, out / "trace.json", graph)
    if gantt:
        from hetsim.report.gantt import plot_gantt

        written["gantt"] = plot_gantt(trace, platform, out / "gantt.png", graph)
    if power:
        from hetsim.report.power_plot import plot_power, trace_series

        written["power"] = plot_power(trace, platform, out / "power.png", extra=trace_series(trace))
    return written


_ops_csv = ops_csv  # the keyword argument of write_outputs shadows the function
