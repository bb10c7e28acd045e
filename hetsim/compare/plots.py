"""Plots of a comparison: mean SLR against CCR and against graph size, and scheduler run times.

Each function takes the rows of :func:`hetsim.compare.runner.run_suite` and returns PNG bytes
(or None when the rows hold nothing to plot), so the caller writes every file at once and
atomically. matplotlib is drawn through the Agg canvas: no pyplot state, no display needed.

Examples
--------
>>> rows = [{"scheduler": s, "family": "g", "ccr": c, "n_tasks": 10, "slr": 1 + c * k, "scheduler_time_s": 1e-3 * k,
...          "error": None} for k, s in enumerate(["heft", "cpop"], 1) for c in (0.5, 1.0)]
>>> slr_vs_ccr(rows)[:8] == b"\\x89PNG\\r\\n\\x1a\\n", slr_vs_size([]) is None
(True, True)
"""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

__all__ = ["PLOTS", "runtime", "slr_vs_ccr", "slr_vs_size"]

#: the reference scheduler: it runs on small cases only, so its means would not compare
_REFERENCE = "exact"


def _figure(width: float = 7.0, height: float = 4.5):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _labels(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["scheduler"] for r in rows))


def _style(i: int) -> dict[str, Any]:
    """Twenty colours, then the markers change too: every scheduler stays distinguishable."""
    from matplotlib import colormaps

    return {"color": colormaps["tab20"](i % 20), "marker": "osD^v<>"[i // 20 % 7]}


def _series(rows: list[dict[str, Any]], key: str) -> dict[str, dict[float, list[float]]]:
    """Scheduler → x → SLRs, over the completed heuristic rows that have ``key``."""
    points: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["error"] is None and r["slr"] is not None and r.get(key) is not None and r["scheduler"] != _REFERENCE:
            points[r["scheduler"]][float(r[key])].append(r["slr"])
    return points


def _draw(ax, points: dict[str, dict[float, list[float]]], labels: list[str], xlabel: str) -> None:
    xs = sorted({x for series in points.values() for x in series})
    for i, label in enumerate(labels):
        series = points.get(label)
        if series:
            x = sorted(series)
            ax.plot(x, [sum(series[v]) / len(series[v]) for v in x], label=label, **_style(i))
    if len(xs) > 1 and xs[0] > 0 and xs[-1] / xs[0] >= 10:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel="mean SLR (makespan / CP_min)")
    ax.grid(alpha=0.3)


def slr_vs_ccr(rows: list[dict[str, Any]]) -> bytes | None:
    """Mean SLR per scheduler against the communication-to-computation ratio (rows that give one)."""
    points = _series(rows, "ccr")
    if not points:
        return None
    fig = _figure(8.5, 4.5)
    ax = fig.add_subplot()
    _draw(ax, points, _labels(rows), "CCR (communication / computation)")
    ax.set_title("mean SLR vs CCR")
    fig.legend(loc="outside right upper", fontsize="small")
    return _png(fig)


def slr_vs_size(rows: list[dict[str, Any]]) -> bytes | None:
    """Mean SLR per scheduler against the number of tasks, one panel per graph family of several sizes."""
    families = list(dict.fromkeys(r["family"] for r in rows))
    panels = {f: _series([r for r in rows if r["family"] == f], "n_tasks") for f in families}
    panels = {f: p for f, p in panels.items() if len({x for s in p.values() for x in s}) > 1}
    if not panels:
        return None
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig = _figure(3.6 * cols + 1.8, 3.2 * nrows)
    labels = _labels(rows)
    for i, (family, points) in enumerate(panels.items()):
        ax = fig.add_subplot(nrows, cols, i + 1)
        _draw(ax, points, labels, "tasks")
        ax.set_title(family, fontsize="medium")
    handles, names = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right upper", fontsize="small")
    fig.suptitle("mean SLR vs graph size")
    return _png(fig)


def runtime(rows: list[dict[str, Any]]) -> bytes | None:
    """Each scheduler's run times, one box per scheduler, on a log scale."""
    times: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["error"] is None and r["scheduler_time_s"]:
            times[r["scheduler"]].append(r["scheduler_time_s"])
    if not times:
        return None
    labels = [s for s in _labels(rows) if s in times]
    fig = _figure(max(7.0, 0.55 * len(labels)), 4.5)
    ax = fig.add_subplot()
    ax.boxplot([times[s] for s in labels], tick_labels=labels, showfliers=True)
    ax.set_yscale("log")
    ax.set(title="scheduler run time", ylabel="seconds (wall clock)")
    ax.tick_params(axis="x", labelrotation=45)
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)


#: file name → plot function
PLOTS = {"slr_vs_ccr.png": slr_vs_ccr, "slr_vs_size.png": slr_vs_size, "runtime.png": runtime}
