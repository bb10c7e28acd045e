"""Sweep plots: latency-vs-throughput series, the serving-aware Pareto front, the PNGs (rows built by hand)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hetsim.sweep import plots
from hetsim.sweep.plots import (
    ALL_POINTS,
    latency_series,
    pareto_axes,
    pareto_front,
    pareto_fronts,
    pareto_points,
    plot_latency_throughput,
    plot_pareto,
    swept_keys,
)

PNG = b"\x89PNG\r\n\x1a\n"


def serving(pid: str, overrides: dict, *, thr: float, ttft: float, e2e: float | None = None,
            ept: float | None = 0.5, units: int | None = None, where: str = "summary") -> dict:
    """A serving point's row; ``where`` puts the latency values in ``summary`` or (older rows) ``metrics``."""
    values = {"throughput_requests_per_s": thr, "ttft_p99_s": ttft, "e2e_p99_s": e2e if e2e is not None else 10 * ttft,
              "energy_per_token_j": ept}
    if units is not None:
        values["units"] = units
    row = {"id": pid, "overrides": overrides, "metrics": {}, "summary": {"makespan_s": 100.0, "energy_j": 1e4},
           "wall_s": 0.1, "error": None}
    row[where].update(values)
    return row


def graph_row(pid: str, makespan: float, energy: float, error: str | None = None) -> dict:
    """An op-graph point's row (no serving keys)."""
    return {"id": pid, "overrides": {"scheduler": pid}, "metrics": {"makespan_s": makespan},
            "summary": {"makespan_s": makespan, "energy_j": energy}, "wall_s": 0.1, "error": error}


def rate_sweep() -> list[dict]:
    """2 platforms x 2 tp x 3 rates, listed with the rates out of order; one failed point."""
    rows = []
    for platform, slow in (("dgx-h100", 1.0), ("mi300x-8", 1.5)):
        for tp in (2, 4):
            for rate in (4.0, 1.0, 2.0):
                ttft = slow * rate / tp
                rows.append(serving(f"{platform}-{tp}-{rate:g}",
                                    {"platform": platform, "serve.tp": tp, "serve.rate_per_s": rate},
                                    thr=0.95 * rate, ttft=ttft, units=tp))
    rows.append({"id": "broken", "overrides": {"platform": "dgx-h100", "serve.tp": 8, "serve.rate_per_s": 1.0},
                 "metrics": {}, "wall_s": 0.1, "error": "out of memory"})
    return rows


KEYS = ["platform", "serve.tp", "serve.rate_per_s"]


# --- series ----------------------------------------------------------------------------------------

def test_series_group_every_swept_key_but_the_rate_and_sort_by_throughput():
    series = latency_series(rate_sweep(), KEYS)
    assert list(series) == ["platform=dgx-h100, serve.tp=2", "platform=dgx-h100, serve.tp=4",
                            "platform=mi300x-8, serve.tp=2", "platform=mi300x-8, serve.tp=4"]
    # the failed tp=8 point makes no series; each line is its three rates by throughput
    assert series["platform=dgx-h100, serve.tp=4"] == [(0.95, 0.25, 2.5), (1.9, 0.5, 5.0), (3.8, 1.0, 10.0)]
    mi = series["platform=mi300x-8, serve.tp=2"]
    assert [p[0] for p in mi] == pytest.approx([0.95, 1.9, 3.8])
    assert [p[1] for p in mi] == pytest.approx([0.75, 1.5, 3.0])


def test_without_a_swept_rate_every_point_is_its_own_series():
    rows = [serving(f"p{tp}", {"platform": "dgx-h100", "serve.tp": tp}, thr=4.0 - tp / 10, ttft=1 / tp)
            for tp in (2, 4, 8)]
    series = latency_series(rows, ["platform", "serve.tp"])
    assert series == {f"platform=dgx-h100, serve.tp={tp}": [(4.0 - tp / 10, 1 / tp, 10 / tp)] for tp in (2, 4, 8)}


def test_only_the_rate_swept_is_one_series_and_floats_are_short():
    rows = [serving(f"r{i}", {"serve.rate_per_s": rate}, thr=rate, ttft=rate / 10)
            for i, rate in enumerate((3.0, 0.5, 1.25))]
    assert latency_series(rows, ["serve.rate_per_s"]) == {ALL_POINTS: [(0.5, 0.05, 0.5), (1.25, 0.125, 1.25),
                                                                       (3.0, 0.3, 3.0)]}
    rows = [serving("x", {"serve.prompt.mean": 1 / 3, "serve.rate_per_s": 1.0}, thr=1.0, ttft=0.1)]
    assert list(latency_series(rows, ["serve.prompt.mean", "serve.rate_per_s"])) == ["serve.prompt.mean=0.333333"]


def test_values_come_from_metrics_when_the_summary_lacks_them_and_missing_throughput_is_skipped():
    old = serving("old", {"serve.tp": 2}, thr=1.0, ttft=0.2, where="metrics")
    no_thr = serving("nothr", {"serve.tp": 4}, thr=1.0, ttft=0.1)
    del no_thr["summary"]["throughput_requests_per_s"]
    nan_e2e = serving("nan", {"serve.tp": 8}, thr=2.0, ttft=0.1)
    nan_e2e["summary"]["e2e_p99_s"] = math.nan
    assert latency_series([old, no_thr, nan_e2e], ["serve.tp"]) == {"serve.tp=2": [(1.0, 0.2, 2.0)],
                                                                     "serve.tp=8": [(2.0, 0.1, None)]}


def test_swept_keys_from_rows_keep_first_seen_order():
    assert swept_keys(rows=rate_sweep()) == KEYS


# --- Pareto ----------------------------------------------------------------------------------------

def test_pareto_axes_pick_serving_axes_only_for_serving_rows():
    graph = [graph_row("eft", 1.0, 5.0)]
    assert pareto_axes(graph) == [("makespan_s", "energy_j")]
    assert pareto_axes(rate_sweep()) == [("ttft_p99_s", "energy_per_token_j"), ("ttft_p99_s", "units")]
    no_units = [serving("a", {}, thr=1.0, ttft=0.1)]
    assert pareto_axes(no_units) == [("ttft_p99_s", "energy_per_token_j")]
    no_ept = [serving("a", {}, thr=1.0, ttft=0.1, ept=None)]
    assert pareto_axes(no_ept) == [("ttft_p99_s", "energy_j")]
    assert pareto_axes([serving("a", {}, thr=1.0, ttft=0.1) | {"error": "boom"}]) == [("makespan_s", "energy_j")]


def test_chips_vs_ttft_front_by_hand():
    # (chips, p99 TTFT): a (2, 0.9) b (4, 0.4) c (4, 0.6) d (8, 0.1) e (8, 0.3) f (8, 0.1, later id)
    # fewer chips and lower TTFT: d is the fastest; b is faster than a with fewer chips than d; a has the fewest.
    # b beats c (same chips, faster), d beats e; f ties d on both values (the front keeps the first id of equals).
    table = {"a": (2, 0.9), "b": (4, 0.4), "c": (4, 0.6), "d": (8, 0.1), "e": (8, 0.3), "f": (8, 0.1)}
    rows = [serving(pid, {"serve.tp": units}, thr=1.0, ttft=ttft, units=units) for pid, (units, ttft) in table.items()]
    rows.append(serving("err", {"serve.tp": 1}, thr=1.0, ttft=0.01, units=1) | {"error": "out of memory"})
    pts = pareto_points(rows, "ttft_p99_s", "units")
    assert sorted(p[0] for p in pts) == ["a", "b", "c", "d", "e", "f"]  # the failed point is not a candidate
    assert pareto_front(pts) == ["d", "b", "a"]  # by TTFT: fastest first, each with fewer chips than the last


def test_chips_vs_ttft_fronts_are_per_offered_load():
    fronts = pareto_fronts(rate_sweep(), "ttft_p99_s", "units")
    # at each rate: dgx-h100 tp 4 is fastest (ttft rate/4) and dgx-h100 tp 2 (rate/2) needs fewer chips; both
    # mi300x-8 points are slower at the same chip count; the failed tp 8 point is in no front
    assert fronts == {f"serve.rate_per_s={r}": [f"dgx-h100-4-{r}", f"dgx-h100-2-{r}"] for r in (4, 1, 2)}
    # without grouping the lightest load would win everywhere
    assert pareto_front(pareto_points(rate_sweep(), "ttft_p99_s", "units")) == ["dgx-h100-4-1", "dgx-h100-2-1"]
    graph = [graph_row("eft", 1.0, 5.0), graph_row("heft", 2.0, 3.0), graph_row("met", 2.5, 4.0)]
    assert pareto_fronts(graph, "makespan_s", "energy_j") == {ALL_POINTS: ["eft", "heft"]}


def test_pareto_front_helpers_stay_importable_from_the_runner():
    from hetsim.sweep import pareto_front as from_package
    from hetsim.sweep.runner import __all__ as runner_all
    from hetsim.sweep.runner import pareto_front as from_runner
    from hetsim.sweep.runner import plot_pareto as plot_from_runner

    assert from_runner is from_package is plots.pareto_front and plot_from_runner is plots.plot_pareto
    assert {"pareto_front", "plot_pareto", "plot_latency_throughput"} <= set(runner_all)


# --- the PNGs --------------------------------------------------------------------------------------

def is_png(path: Path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG


def test_serving_rows_write_both_pngs(tmp_path):
    rows = rate_sweep()
    assert plot_latency_throughput(rows, tmp_path / "lt.png", None) == tmp_path / "lt.png"
    assert plot_pareto(rows, tmp_path / "pareto.png") == tmp_path / "pareto.png"
    assert is_png(tmp_path / "lt.png") and is_png(tmp_path / "pareto.png")


def test_a_serving_pareto_with_units_has_two_panels(tmp_path, monkeypatch):
    panels = []
    real = plots._pareto_panel

    def spy(ax, pts, fronts, x, y, labels=None):
        panels.append((x, y, len(pts), list(fronts)))
        real(ax, pts, fronts, x, y, labels)

    monkeypatch.setattr(plots, "_pareto_panel", spy)
    plot_pareto(rate_sweep(), tmp_path / "p.png")
    rates = ["serve.rate_per_s=4", "serve.rate_per_s=1", "serve.rate_per_s=2"]
    assert panels == [("ttft_p99_s", "energy_per_token_j", 12, rates), ("ttft_p99_s", "units", 12, rates)]
    panels.clear()
    plot_pareto([graph_row("eft", 1.0, 5.0), graph_row("heft", 2.0, 3.0)], tmp_path / "g.png")
    assert panels == [("makespan_s", "energy_j", 2, [ALL_POINTS])]
    assert is_png(tmp_path / "p.png") and is_png(tmp_path / "g.png")


def test_non_serving_rows_give_no_latency_plot(tmp_path):
    rows = [graph_row("eft", 1.0, 5.0), graph_row("heft", 2.0, 3.0)]
    assert plot_latency_throughput(rows, tmp_path / "lt.png", None) is None
    assert not (tmp_path / "lt.png").exists()
    assert plot_pareto(rows, tmp_path / "pareto.png") == tmp_path / "pareto.png" and is_png(tmp_path / "pareto.png")


def test_nothing_succeeded_writes_nothing(tmp_path):
    rows = [graph_row("eft", 1.0, 5.0, error="boom"), serving("s", {}, thr=1.0, ttft=0.1) | {"error": "boom"}]
    assert plot_pareto(rows, tmp_path / "p.png") is None and plot_latency_throughput(rows, tmp_path / "l.png") is None
    assert list(tmp_path.iterdir()) == []


# --- end to end ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_serving_sweep_writes_both_plots_from_its_rows(tmp_path):
    """Two loads of a tiny serving scenario: the rows carry what the plots read, and both PNGs are written."""
    from hetsim.sweep import run_sweep

    scenario = {"platform": "h100-sxm", "workload": {"model": "llama-tiny"},
                "serve": {"requests": 50, "prompt": {"dist": "uniform", "lo": 16, "hi": 128},
                          "output": {"dist": "fixed", "value": 16}, "token_budget": 256,
                          "prefill_grid": [16, 64, 128, 256], "decode_grid": [[1, 32], [8, 128], [16, 64], [32, 255]]}}
    out = tmp_path / "sweep"
    spec = {"name": "rate", "scenario": scenario, "grid": {"serve.rate_per_s": [100, 1000000]},
            "metrics": ["makespan_s"], "outputs": {"dir": str(out)}}
    rows = run_sweep(spec, workers=2, progress=False)
    assert rows.errors == 0, [r["error"] for r in rows]
    for row in rows:
        assert {"throughput_requests_per_s", "ttft_p99_s", "e2e_p99_s", "energy_per_token_j", "tp",
                "platform"} <= set(row["summary"])
    (label, points), = latency_series(rows, ["serve.rate_per_s"]).items()
    assert label == ALL_POINTS and len(points) == 2 and points[0][1] < points[1][1]  # more load, later TTFT
    assert is_png(out / "pareto.png") and is_png(out / "latency_throughput.png")
