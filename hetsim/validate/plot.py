"""Scatter of predicted vs measured op times (log-log, y = x line), coloured by op kind.

matplotlib is imported only when a chart is drawn, always through the Agg canvas, so drawing
never touches pyplot state or needs a display.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hetsim.validate.compare import ValidationReport


def scatter_png(report: ValidationReport, *, dpi: int = 120) -> bytes:
    """PNG bytes of the per-op scatter of ``report`` (ops with a positive measured and predicted time).

    Dotted lines mark ±2× around y = x; the title carries the end-to-end error and the per-op MAPE.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from hetsim.report.tables import format_seconds

    points: dict[str, list[tuple[float, float]]] = {}
    for o in report.ops:
        if o.measured_s and o.measured_s > 0 and o.predicted_s > 0:
            points.setdefault(o.kind, []).append((o.measured_s, o.predicted_s))
    fig = Figure(figsize=(7, 6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    cmap = colormaps["tab20" if len(points) > 10 else "tab10"]
    values = [v for pts in points.values() for p in pts for v in p]
    for i, (kind, pts) in enumerate(sorted(points.items())):
        ax.scatter([m for m, _ in pts], [p for _, p in pts], s=14, color=cmap(i % cmap.N), label=f"{kind} ({len(pts)})",
                   alpha=0.8, edgecolors="none")
    lo, hi = (min(values) / 2, max(values) * 2) if values else (1e-6, 1e-3)
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8, label="y = x")
    for factor in (0.5, 2.0):
        ax.plot([lo, hi], [lo * factor, hi * factor], color="grey", linewidth=0.6, linestyle=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured (s)")
    ax.set_ylabel("predicted (s)")
    mape = report.per_op_mape
    mape_text = "n/a" if mape != mape else f"{mape:.0%} over {report.per_op_mape_count} ops"
    what = " ".join(p for p in (report.name, report.phase, f"b{report.batch}", f"s{report.seq_len}") if p)
    ax.set_title(f"{what} on {report.platform}:{report.unit}\n"
                 f"e2e {format_seconds(report.predicted_s)} predicted vs {format_seconds(report.measured_s)} "
                 f"measured ({report.e2e_error:+.0%}); per-op MAPE {mape_text}", fontsize="medium")
    if points:
        ax.legend(loc="upper left", fontsize="small")
    ax.grid(True, which="major", linewidth=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def plot_scatter(report: ValidationReport, path: str | Path) -> Path:
    """Write :func:`scatter_png` of ``report`` to ``path`` atomically."""
    from hetsim.report._atomic import atomic_write

    png = scatter_png(report)
    return atomic_write(path, lambda tmp: tmp.write_bytes(png))
