"""Plots of a sweep's rows: a Pareto front (``pareto.png``) and latency vs throughput (``latency_throughput.png``).

A row is what :func:`hetsim.sweep.runner.run_point` returns: ``{id, overrides, metrics, summary,
wall_s, error}``. A value is read from the row's ``summary`` first, then from its ``metrics``.
A *serving* row (a scenario with a ``serve:`` section) has ``ttft_p99_s``; the latency plot also
needs its ``throughput_requests_per_s``. Rows with an error are never plotted.

* :func:`plot_pareto` — op-graph sweeps: makespan vs energy. Serving sweeps: p99 TTFT vs energy
  per token and, when the rows have ``units`` (chips the deployment uses), a second panel of
  p99 TTFT vs chips. Each panel marks the Pareto front (both values minimised), one front per
  offered load when ``serve.rate_per_s`` is swept.
* :func:`plot_latency_throughput` — serving sweeps only: p99 TTFT and p99 end-to-end latency
  against throughput (requests/s), one line per series (see :func:`latency_series`).

The pure helpers (:func:`pareto_front`, :func:`pareto_points`, :func:`pareto_fronts`,
:func:`latency_series`, :func:`series_label`) hold the logic; the ``plot_*`` functions only
draw, with headless matplotlib (:class:`matplotlib.figure.Figure`, no pyplot).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hetsim.sweep.spec import SweepSpec

#: The swept key that sets a serving sweep's offered load; points differing only in it form one series.
LOAD_KEY = "serve.rate_per_s"
#: Label of the one series of a sweep whose only swept key is :data:`LOAD_KEY`.
ALL_POINTS = "all points"
#: Most series :func:`plot_latency_throughput` names in a legend (a larger random search gets none).
MAX_LEGEND = 24


def row_value(row: Mapping[str, Any], key: str) -> Any:
    """A row's value of ``key``: from its ``summary``, else from its ``metrics``, else None.

    Examples
    --------
    >>> row_value({"summary": {"energy_j": 2.0}, "metrics": {"ttft_p99_s": 0.1}}, "ttft_p99_s")
    0.1
    >>> row_value({"summary": {}}, "units") is None
    True
    """
    value = (row.get("summary") or {}).get(key)
    return (row.get("metrics") or {}).get(key) if value is None else value


def _number(value: Any) -> float | None:
    """``value`` as a finite float, else None (missing, NaN, a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def is_serving(row: Mapping[str, Any]) -> bool:
    """Whether a row is a successful serving point (it has a p99 TTFT).

    Examples
    --------
    >>> is_serving({"summary": {"ttft_p99_s": 0.2}}), is_serving({"summary": {"makespan_s": 1.0}})
    (True, False)
    >>> is_serving({"summary": {"ttft_p99_s": 0.2}, "error": "boom"})
    False
    """
    return not row.get("error") and _number(row_value(row, "ttft_p99_s")) is not None


def _format(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def series_label(overrides: Mapping[str, Any], keys: Sequence[str]) -> str:
    """The legend label of a point: ``key=value`` of each of ``keys`` the point sets, comma-separated.

    Floats are written with ``%g``; with no such key the label is :data:`ALL_POINTS`.

    Examples
    --------
    >>> series_label({"platform": "dgx-h100", "serve.tp": 4, "serve.rate_per_s": 2.5}, ["platform", "serve.tp"])
    'platform=dgx-h100, serve.tp=4'
    >>> series_label({"serve.rate_per_s": 2.5}, [])
    'all points'
    """
    parts = [f"{key}={_format(overrides[key])}" for key in keys if key in overrides]
    return ", ".join(parts) or ALL_POINTS


def swept_keys(spec: SweepSpec | None = None, rows: Iterable[Mapping[str, Any]] = ()) -> list[str]:
    """The swept keys in the sweep file's order: a spec's grid then random-space keys.

    Without a spec, the keys the rows' ``overrides`` set, in first-seen order.

    Examples
    --------
    >>> swept_keys(rows=[{"overrides": {"platform": "a", "serve.tp": 2}}, {"overrides": {"platform": "b"}}])
    ['platform', 'serve.tp']
    """
    if spec is not None:
        return [k for k, _ in spec.grid] + [k for k, _ in (spec.random.space if spec.random else ())]
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row.get("overrides") or {}))
    return list(keys)


def latency_series(rows: Iterable[Mapping[str, Any]],
                   keys: Sequence[str]) -> dict[str, list[tuple[float, float, float | None]]]:
    """Serving points grouped into latency-vs-throughput series.

    Points are grouped by their values of every swept key in ``keys`` except :data:`LOAD_KEY`
    (``serve.rate_per_s``), so one series is one configuration at increasing offered load. When
    the load is not swept every point is its own series. Rows without a p99 TTFT or a throughput,
    and rows with an error, are left out.

    Parameters
    ----------
    rows : iterable of mapping
        Sweep rows (``{id, overrides, summary, metrics, error}``).
    keys : sequence of str
        The sweep's swept keys (:func:`swept_keys`).

    Returns
    -------
    dict
        ``{label: [(throughput_requests_per_s, ttft_p99_s, e2e_p99_s), ...]}``: labels as made by
        :func:`series_label`, in the rows' order; each list sorted by throughput (then TTFT).
        ``e2e_p99_s`` is None where a row lacks it.

    Examples
    --------
    >>> def row(platform, rate, thr, ttft):
    ...     return {"overrides": {"platform": platform, "serve.rate_per_s": rate},
    ...             "summary": {"throughput_requests_per_s": thr, "ttft_p99_s": ttft, "e2e_p99_s": 2 * ttft}}
    >>> latency_series([row("a", 4, 3.9, 0.5), row("a", 1, 1.0, 0.1), row("b", 1, 1.0, 0.2)],
    ...                ["platform", "serve.rate_per_s"])
    {'platform=a': [(1.0, 0.1, 0.2), (3.9, 0.5, 1.0)], 'platform=b': [(1.0, 0.2, 0.4)]}
    """
    group_keys = [k for k in keys if k != LOAD_KEY]
    series: dict[str, list[tuple[float, float, float | None]]] = {}
    for row in rows:
        if not is_serving(row):
            continue
        throughput = _number(row_value(row, "throughput_requests_per_s"))
        if throughput is None:
            continue
        point = (throughput, _number(row_value(row, "ttft_p99_s")), _number(row_value(row, "e2e_p99_s")))
        series.setdefault(series_label(row.get("overrides") or {}, group_keys), []).append(point)
    return {label: sorted(points, key=lambda p: (p[0], p[1])) for label, points in series.items()}


def pareto_front(points: Iterable[tuple[str, float, float]]) -> list[str]:
    """Ids of the points no other point beats on both values (both minimised), by the first value.

    Examples
    --------
    >>> pareto_front([("a", 1.0, 5.0), ("b", 2.0, 3.0), ("c", 2.5, 4.0), ("d", 3.0, 1.0)])
    ['a', 'b', 'd']
    """
    front, best = [], float("inf")
    for pid, _, second in sorted(points, key=lambda p: (p[1], p[2], p[0])):
        if second < best:
            front.append(pid)
            best = second
    return front


def pareto_points(rows: Iterable[Mapping[str, Any]], x: str, y: str) -> list[tuple[str, float, float]]:
    """``(id, x, y)`` of each successful row with finite values of both keys (as :func:`pareto_front` takes).

    Examples
    --------
    >>> rows = [{"id": "a", "summary": {"ttft_p99_s": 0.3, "units": 2}},
    ...         {"id": "b", "summary": {"ttft_p99_s": 0.1}},
    ...         {"id": "c", "summary": {"ttft_p99_s": 0.2, "units": 8}, "error": "out of memory"}]
    >>> pareto_points(rows, "ttft_p99_s", "units")
    [('a', 0.3, 2.0)]
    """
    out = []
    for row in rows:
        if row.get("error"):
            continue
        xv, yv = _number(row_value(row, x)), _number(row_value(row, y))
        if xv is not None and yv is not None:
            out.append((row["id"], xv, yv))
    return out


#: Axis labels and display scales of the keys :func:`plot_pareto` plots.
AXES = {"makespan_s": ("makespan (ms)", 1e3), "energy_j": ("energy (J)", 1.0),
         "ttft_p99_s": ("p99 TTFT (s)", 1.0), "energy_per_token_j": ("energy per token (J)", 1.0),
         "units": ("chips", 1.0)}


def pareto_axes(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The ``(x, y)`` keys of each panel :func:`plot_pareto` draws for these rows.

    Serving rows (any successful row with ``ttft_p99_s``): ``("ttft_p99_s", "energy_per_token_j")``
    (``energy_j`` when no row has energy per token), plus ``("ttft_p99_s", "units")`` when a
    serving row has ``units``. Otherwise ``[("makespan_s", "energy_j")]``.

    Examples
    --------
    >>> pareto_axes([{"summary": {"makespan_s": 1.0, "energy_j": 2.0}}])
    [('makespan_s', 'energy_j')]
    >>> pareto_axes([{"summary": {"ttft_p99_s": 0.2, "energy_per_token_j": 0.5, "units": 4}}])
    [('ttft_p99_s', 'energy_per_token_j'), ('ttft_p99_s', 'units')]
    """
    serving = [r for r in rows if is_serving(r)]
    if not serving:
        return [("makespan_s", "energy_j")]
    has = {key: any(_number(row_value(r, key)) is not None for r in serving) for key in ("energy_per_token_j", "units")}
    panels = [("ttft_p99_s", "energy_per_token_j" if has["energy_per_token_j"] else "energy_j")]
    if has["units"]:
        panels.append(("ttft_p99_s", "units"))
    return panels


def pareto_fronts(rows: Iterable[Mapping[str, Any]], x: str, y: str) -> dict[str, list[str]]:
    """Pareto fronts of ``(x, y)`` (both minimised), one per offered load.

    Points at different ``serve.rate_per_s`` are not compared (a lighter load always has the
    lower latency), so the successful rows are grouped by that swept value, each group's front
    taken with :func:`pareto_front`. When the load is not swept there is one group,
    :data:`ALL_POINTS`.

    Returns
    -------
    dict
        ``{"serve.rate_per_s=1": [ids by x], ...}`` in the rows' order of loads.

    Examples
    --------
    >>> def row(pid, rate, ttft, units):
    ...     return {"id": pid, "overrides": {"serve.rate_per_s": rate}, "summary": {"ttft_p99_s": ttft, "units": units}}
    >>> pareto_fronts([row("a", 1, 0.2, 2), row("b", 1, 0.1, 4), row("c", 8, 0.9, 4), row("d", 1, 0.3, 4)],
    ...               "ttft_p99_s", "units")
    {'serve.rate_per_s=1': ['b', 'a'], 'serve.rate_per_s=8': ['c']}
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(series_label(row.get("overrides") or {}, [LOAD_KEY]), []).append(row)
    fronts = {label: pareto_front(pareto_points(group, x, y)) for label, group in groups.items()}
    return {label: front for label, front in fronts.items() if front}


def _pareto_panel(ax: Any, pts: list[tuple[str, float, float]], fronts: Mapping[str, list[str]], x: str, y: str,
                  labels: Mapping[str, str] | None = None) -> None:
    """Scatter ``pts`` on ``ax`` and draw each front as a step line (``labels``: annotate a lone front's points)."""
    (xlabel, xs), (ylabel, ys) = AXES.get(x, (x, 1.0)), AXES.get(y, (y, 1.0))
    ax.scatter([p[1] * xs for p in pts], [p[2] * ys for p in pts], s=12, color="0.6", label="points")
    by_id = {p[0]: p for p in pts}
    for i, (group, front) in enumerate(fronts.items()):
        best = sorted((by_id[pid] for pid in front), key=lambda p: p[1])
        name = "Pareto front" if group == ALL_POINTS else f"Pareto front, {group}"
        ax.plot([p[1] * xs for p in best], [p[2] * ys for p in best], "o-", drawstyle="steps-post",
                color="C3" if len(fronts) == 1 else f"C{i % 10}", label=f"{name} ({len(best)})")
        for pid, px, py in best if labels and len(fronts) == 1 else ():
            ax.annotate(labels.get(pid, pid), (px * xs, py * ys), textcoords="offset points", xytext=(4, 4),
                        fontsize=7)
    if y == "units":
        from matplotlib.ticker import MaxNLocator

        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8 if len(fronts) > 1 else None)


def plot_pareto(rows: Iterable[Mapping[str, Any]], path: Path) -> Path | None:
    """Plot the successful points and their Pareto front (both axes minimised) to ``path``.

    The axes are chosen by :func:`pareto_axes`:

    * op-graph points: x = makespan (ms), y = energy (J), one panel, one front;
    * serving points: x = p99 TTFT (s), y = energy per token (J) (energy (J) when the rows lack
      it); when the rows have ``units``, a second panel x = p99 TTFT (s), y = chips, whose front
      is the deployments no other beats on both fewer chips and lower p99 TTFT. When
      ``serve.rate_per_s`` is swept each load gets its own front (:func:`pareto_fronts`, one
      colour each); otherwise the front's points are annotated with their swept values.

    Parameters
    ----------
    rows : iterable of mapping
        Sweep rows.
    path : Path
        The PNG to write.

    Returns
    -------
    Path or None
        ``path``, or None (nothing written) when no point succeeded.
    """
    rows = list(rows)
    axes = pareto_axes(rows)
    panels = [(x, y, pareto_points(rows, x, y), pareto_fronts(rows, x, y)) for x, y in axes]
    panels = [panel for panel in panels if panel[2]]
    if not panels:
        return None
    from matplotlib.figure import Figure

    labels = None
    if axes[0][0] == "ttft_p99_s":
        keys = [k for k in swept_keys(rows=rows) if k != LOAD_KEY]
        labels = {r["id"]: series_label(r.get("overrides") or {}, keys) for r in rows if "id" in r}
    fig = Figure(figsize=(6 * len(panels), 4.5), tight_layout=True)
    for i, (x, y, pts, fronts) in enumerate(panels, start=1):
        _pareto_panel(fig.add_subplot(1, len(panels), i), pts, fronts, x, y, labels)
    fig.savefig(path, dpi=120)
    return path


def _log_if_wide(ax: Any, values: Iterable[float | None], axis: str) -> None:
    """Use a log scale on ``axis`` when the positive values span more than 50x (latency past saturation)."""
    finite = [v for v in values if v is not None and v > 0]
    if finite and max(finite) > 50 * min(finite):
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def plot_latency_throughput(rows: Iterable[Mapping[str, Any]], path: Path,
                            spec: SweepSpec | None = None) -> Path | None:
    """Plot p99 latency against throughput of a sweep's serving points to ``path``.

    Two panels side by side, both with x = throughput (requests/s, measured): p99 TTFT (s) and
    p99 end-to-end latency (s). One line per series of :func:`latency_series`: the points that
    differ only in ``serve.rate_per_s``, sorted by throughput, labelled with the other swept
    keys (``platform=dgx-h100, serve.tp=4``); when the load is not swept each point is its own
    marker (no legend past :data:`MAX_LEGEND` series). A panel's y axis is logarithmic when its
    values span more than 50x.

    Parameters
    ----------
    rows : iterable of mapping
        Sweep rows.
    path : Path
        The PNG to write.
    spec : SweepSpec, optional
        The sweep, for its swept keys in file order (default: the keys of the rows' overrides).

    Returns
    -------
    Path or None
        ``path``, or None (nothing written) when no row is a serving point with a throughput.
    """
    rows = list(rows)
    series = latency_series(rows, swept_keys(spec, rows))
    if not series:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.8), layout="constrained")
    panels = fig.subplots(1, 2, sharex=True)
    for ax, column, title in ((panels[0], 1, "p99 TTFT (s)"), (panels[1], 2, "p99 end-to-end latency (s)")):
        for i, (label, points) in enumerate(series.items()):
            pts = [(p[0], p[column]) for p in points if p[column] is not None]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-" if len(pts) > 1 else "o",
                    color=f"C{i % 10}", markersize=4, label=label)
        _log_if_wide(ax, [p[column] for points in series.values() for p in points], "y")
        ax.set_xlabel("throughput (requests/s)")
        ax.set_ylabel(title)
        ax.grid(True, alpha=0.3)
    handles, labels = panels[0].get_legend_handles_labels()
    if len(labels) <= MAX_LEGEND:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(labels)), fontsize=8)
    fig.savefig(path, dpi=120)
    return path


__all__ = ["ALL_POINTS", "LOAD_KEY", "MAX_LEGEND", "is_serving", "latency_series", "pareto_axes", "pareto_front",
           "pareto_fronts", "pareto_points", "plot_latency_throughput", "plot_pareto", "row_value", "series_label",
           "swept_keys"]
