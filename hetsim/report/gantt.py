"""Gantt chart of a Trace: one row per unit and per link, plus a power-over-time panel.

matplotlib is imported only when a chart is drawn, and always through the Agg canvas, so
drawing never touches the user's pyplot state or needs a display.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from hetsim.errors import SpecError
from hetsim.report._atomic import atomic_write
from hetsim.report.tables import format_seconds

if TYPE_CHECKING:
    import networkx as nx

    from hetsim.sim.trace import Trace
    from hetsim.spec.types import Platform

__all__ = ["plot_gantt"]

#: above this many slices the bars lose their edge lines (they would hide the colours)
MANY_SLICES = 20_000
_TRANSFER_COLOR = "#7f7f7f"


def _time_scale(makespan_s: float) -> tuple[float, str]:
    if makespan_s >= 1.0:
        return 1.0, "s"
    if makespan_s >= 1e-3:
        return 1e3, "ms"
    return 1e6, "µs"


def plot_gantt(trace: Trace, platform: Platform, path: str | Path, graph: nx.DiGraph | None = None) -> Path:
    """Draw the Gantt and power chart of ``trace`` and save it as a PNG at ``path`` (written atomically).

    Rows are the platform's units then its links; ops are coloured by op kind (graph node
    attribute ``op``, ``"op"`` without a graph), transfers grey on the rows of the links they
    cross. Each row is drawn with one ``broken_barh`` per colour, so a chart of a hundred thousand
    ops draws in about a second. The lower panel steps each unit's power over time.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    scale, unit_label = _time_scale(trace.makespan_s)
    nodes = graph.nodes if graph is not None else {}
    rows = [u.name for u in platform.units] + [link.name for link in platform.links]
    row_of = {("unit", name): i for i, name in enumerate(rows[:len(platform.units)])}
    row_of.update({("link", link.name): len(platform.units) + i for i, link in enumerate(platform.links)})

    def row(name: str, what: str) -> int:
        if (what, name) not in row_of:
            raise SpecError(f"trace: got {what} {name!r}, expected a {what} of platform {platform.name!r}")
        return row_of[(what, name)]

    bars: dict[tuple[int, str], list[tuple[float, float]]] = defaultdict(list)
    for run in trace.ops:
        kind = str(nodes[run.op].get("op", "op")) if run.op in nodes else "op"
        bars[(row(run.unit, 'unit'), kind)].append((run.start_s * scale, run.duration_s * scale))
    for t in trace.transfers:
        for link in t.links:
            bars[(row(link, 'link'), "transfer")].append((t.start_s * scale, t.duration_s * scale))
    kinds = sorted({kind for _, kind in bars if kind != "transfer"})

    fig = Figure(figsize=(12, 2.0 + 0.45 * len(rows) + 2.5), layout="constrained")
    FigureCanvasAgg(fig)
    gantt, power = fig.subplots(2, 1, sharex=True, height_ratios=[max(len(rows), 2), 3])
    cmap = colormaps["tab20" if len(kinds) > 10 else "tab10"]
    palette = {kind: cmap(i % cmap.N) for i, kind in enumerate(kinds)}
    palette["transfer"] = _TRANSFER_COLOR
    many = sum(len(v) for v in bars.values()) > MANY_SLICES
    for (y, kind), spans in sorted(bars.items()):
        gantt.broken_barh(spans, (y - 0.4, 0.8), facecolors=palette[kind],
                          edgecolors="none" if many else "white", linewidth=0 if many else 0.3)
    gantt.set_yticks(range(len(rows)), rows)
    gantt.set_ylim(len(rows) - 0.5, -0.5)
    handles = [Patch(color=palette[kind], label=kind) for kind in kinds]
    if trace.transfers:
        handles.append(Patch(color=_TRANSFER_COLOR, label="transfer"))
    if handles:
        gantt.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    title = f"{trace.graph} on {trace.platform} — makespan {format_seconds(trace.makespan_s)}"
    gantt.set_title(title)

    samples: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for sample in trace.power:
        samples[sample.unit].append((sample.time_s, sample.power_w))
    for unit in platform.units:
        points = sorted(samples.get(unit.name) or [(0.0, unit.nominal.static_power_w)], key=lambda p: p[0])
        times = [t * scale for t, _ in points] + [trace.makespan_s * scale]
        watts = [w for _, w in points] + [points[-1][1]]
        power.step(times, watts, where="post", label=unit.name)
    power.set_ylabel("power (W)")
    power.set_xlabel(f"time ({unit_label})")
    power.set_ylim(bottom=0)
    power.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    power.set_xlim(0, max(trace.makespan_s * scale, 1e-12))
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
