"""Power over time: each unit's power and the package total as steps, plus optional panels.

The top panel steps every unit's power (:func:`~hetsim.report.metrics.power_steps`) and their
sum (:func:`~hetsim.report.metrics.package_power_steps`), with the platform's power budget as a
dashed line when it has one. Further panels (frequency, temperature, ...) are passed in as
:class:`Panel` values; :func:`trace_series` builds the ones a trace records. matplotlib is
imported only when drawing, through the Agg canvas.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hetsim.report._atomic import atomic_write
from hetsim.report.gantt import _time_scale
from hetsim.report.metrics import energy_j, package_power_steps, power_steps
from hetsim.report.tables import format_energy, format_quantity

if TYPE_CHECKING:
    from hetsim.sim.trace import Trace
    from hetsim.spec.types import Platform

__all__ = ["Panel", "plot_power", "trace_series"]

_PACKAGE_COLOR = "black"


@dataclass(frozen=True)
class Panel:
    """One extra panel below the power panel: named series of ``(time_s, value)`` points.

    ``steps`` draws each value as held until the next point (a frequency, a power state);
    otherwise the points are joined by lines (a temperature sampled along its curve).

    Examples
    --------
    >>> Panel("frequency (MHz)", {"gpu": [(0.0, 1830.0), (0.5, 1400.0)]}).series["gpu"][1]
    (0.5, 1400.0)
    """

    label: str
    series: Mapping[str, Sequence[tuple[float, float]]] = field(default_factory=dict)
    steps: bool = True


def _per_unit(samples: Sequence, value: str, scale: float = 1.0) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for sample in samples:
        series[sample.unit].append((float(sample.time_s), float(getattr(sample, value)) * scale))
    return {unit: sorted(points, key=lambda p: p[0]) for unit, points in series.items()}


def trace_series(trace: Trace) -> list[Panel]:
    """The extra panels ``trace`` has data for: each unit's clock (MHz) and temperature (°C).

    Traces record them only when the engine manages power (``Trace.frequency``) or models heat
    (``Trace.temperature``); otherwise the list is empty.
    """
    panels = []
    if trace.frequency:
        panels.append(Panel("frequency (MHz)", _per_unit(trace.frequency, "freq_hz", 1e-6), steps=True))
    if trace.temperature:
        panels.append(Panel("temperature (°C)", _per_unit(trace.temperature, "celsius"), steps=False))
    return panels


def _held_to(points: Sequence[tuple[float, float]], end_s: float) -> list[tuple[float, float]]:
    """Step points with a last point at ``end_s`` so the final value shows to the end."""
    kept = [(t, v) for t, v in points if t <= end_s]
    if kept and kept[-1][0] < end_s:
        kept.append((end_s, kept[-1][1]))
    return kept


def plot_power(trace: Trace, platform: Platform, path: str | Path, *,
               extra: Sequence[Panel] = (), cap_w: float | None = None) -> Path:
    """Draw power over time and save it as a PNG at ``path`` (written atomically).

    Parameters
    ----------
    trace, platform
        The run and the platform it ran on.
    path : str or Path
        Where the PNG goes.
    extra : sequence of Panel
        Panels drawn below the power panel on the same time axis, e.g. ``trace_series(trace)``.
    cap_w : float, optional
        The power cap the run was under (``sim.power.cap``), drawn as a dashed line instead of
        the platform's ``power_budget_w``; the trace does not record it.

    Returns
    -------
    Path
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scale, unit_label = _time_scale(trace.makespan_s)
    end = trace.makespan_s
    fig = Figure(figsize=(12, 3.5 + 2.2 * len(extra)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1 + len(extra), 1, sharex=True, squeeze=False)[:, 0]
    power = axes[0]
    colors = {u.name: f"C{i % 10}" for i, u in enumerate(platform.units)}  # a unit keeps its colour in every panel
    per_unit = power_steps(trace, platform)
    for unit, steps in per_unit.items():
        power.step([t * scale for t, _ in steps], [w for _, w in steps], where="post", label=unit, color=colors[unit])
    package = package_power_steps(trace, platform, per_unit)
    power.step([t * scale for t, _ in package], [w for _, w in package], where="post", label="package",
               color=_PACKAGE_COLOR, linewidth=1.6)
    limit, what = (cap_w, "cap") if cap_w is not None else (platform.power_budget_w, "budget")
    if limit is not None:
        power.axhline(limit, color=_PACKAGE_COLOR, linestyle="--", linewidth=0.8,
                      label=f"{what} {format_quantity(limit, 'W')}")
    total = energy_j(trace, platform)
    average = total / end if end > 0 else 0.0
    power.set_title(f"{trace.graph} on {trace.platform} — energy {format_energy(total)}, "
                    f"average {format_quantity(average, 'W')}")
    power.set_ylabel("power (W)")
    power.set_ylim(bottom=0)
    for ax, panel in zip(axes[1:], extra, strict=True):
        for name, points in panel.series.items():
            shown = _held_to(points, end) if panel.steps else [(t, v) for t, v in points if t <= end]
            xs, ys = [t * scale for t, _ in shown], [v for _, v in shown]
            if panel.steps:
                ax.step(xs, ys, where="post", label=name, color=colors.get(name))
            else:
                ax.plot(xs, ys, label=name, color=colors.get(name))
        ax.set_ylabel(panel.label)
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    axes[-1].set_xlabel(f"time ({unit_label})")
    axes[-1].set_xlim(0, max(end * scale, 1e-12))
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
