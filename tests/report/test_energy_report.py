"""Energy accounting: trace.json's power counters integrate to the reported energy, per-op energy,
energy per token, the idle floor, and power.png.

What the integral test compares, exactly: trace.json's ``"power <unit>"`` counter of each unit,
integrated as steps over [0, makespan] (each value times the gap to the next sample, in µs), must
equal that unit's ``energy_by_unit_j`` in the summary within 0.1 %; the ``"package power"``
counter, integrated the same way, plus every memory's and link's ``data_energy_j`` (energy per
byte moved, which is not power over time and so not in the counters) must equal ``energy_j``.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import replace
from itertools import pairwise

import pytest
from hetsim_testing import two_unit_dict

import hetsim
from hetsim.cost.model import CostModel
from hetsim.graph.schema import add_op, new_graph
from hetsim.report import check_chrome_trace, write_outputs
from hetsim.report.chrome import PACKAGE_COUNTER, chrome_trace
from hetsim.report.metrics import (
    busy_energy_j,
    data_energy_j,
    op_energy_j,
    package_power_steps,
    summary,
    tokens,
    unit_energy_j,
)
from hetsim.sim.trace import OpRun, PowerSample

PNG = b"\x89PNG\r\n\x1a\n"


def fork_graph(phase: str = "prefill", batch: int = 2, seq_len: int = 8) -> object:
    """a feeds b and c, which both feed d: EFT spreads it over both units of two_unit_dict."""
    g = new_graph("fork", phase=phase, batch=batch, seq_len=seq_len, dtype="fp32")
    add_op(g, "a", op="matmul", flop=2e9, bytes_read=1e8, bytes_written=1e8, dtype="fp32")
    add_op(g, "b", op="matmul", flop=4e9, bytes_read=1e8, bytes_written=1e8, dtype="fp32")
    add_op(g, "c", op="elementwise", flop=1e8, bytes_read=3e8, bytes_written=1e8, dtype="fp32")
    add_op(g, "d", op="matmul", flop=1e9, bytes_read=2e8, bytes_written=1e8, dtype="fp32")
    for src, dst in (("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")):
        g.add_edge(src, dst, bytes=1e8)
    return g


WORKLOADS = {
    "fork on two units": lambda: hetsim.simulate(fork_graph(), two_unit_dict()),
    "fork on a shared memory": lambda: hetsim.simulate(fork_graph("decode"), two_unit_dict(shared=True)),
    "llama-tiny prefill on gh200": lambda: hetsim.simulate(
        hetsim.model_graph("llama-tiny", phase="prefill", batch=1, seq_len=128), "gh200"),
    "llama-tiny decode on mobile-soc": lambda: hetsim.simulate(
        hetsim.model_graph("llama-tiny", phase="decode", batch=2, seq_len=128, dtype="fp16"), "mobile-soc"),
}


@pytest.fixture(scope="module", params=sorted(WORKLOADS))
def result(request):
    return WORKLOADS[request.param]()


def _counters(obj: dict) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for e in obj["traceEvents"]:
        if e["ph"] == "C" and e["pid"] == 3:
            series[e["name"]].append((e["ts"], e["args"]["W"]))
    return {name: sorted(points) for name, points in series.items()}


def _integral_j(points: list[tuple[float, float]]) -> float:
    """∫ of a step counter from its first to its last sample, µs stamps -> joules."""
    return math.fsum(w * (t1 - t0) for (t0, w), (t1, _) in pairwise(points)) / 1e6


def test_reported_energy_equals_the_integral_of_the_power_counters(result, tmp_path):
    written = result.write_outputs(tmp_path, gantt=False)
    obj = json.loads(written["trace"].read_text())
    check_chrome_trace(obj)
    s = json.loads(written["summary"].read_text())
    counters = _counters(obj)
    makespan_us = result.makespan_s * 1e6
    assert set(counters) == {f"power {u.name}" for u in result.platform.units} | {PACKAGE_COUNTER}
    for points in counters.values():  # every counter covers exactly [0, makespan]
        assert points[0][0] == 0.0 and points[-1][0] == pytest.approx(makespan_us, rel=1e-12)
    for unit, joules in s["energy_by_unit_j"].items():
        assert _integral_j(counters[f"power {unit}"]) == pytest.approx(joules, rel=1e-3)
    package_j = _integral_j(counters[PACKAGE_COUNTER])
    assert package_j == pytest.approx(math.fsum(s["energy_by_unit_j"].values()), rel=1e-3)
    assert package_j + math.fsum(s["data_energy_j"].values()) == pytest.approx(s["energy_j"], rel=1e-3)
    assert s["energy_j"] == pytest.approx(result.energy_j, rel=1e-12)


def test_energy_is_at_least_idle_power_times_makespan(result):
    platform = result.platform
    assert result.energy_j >= platform.idle_power_w * result.makespan_s
    by_unit = unit_energy_j(result.trace, platform)
    for unit in platform.units:
        assert by_unit[unit.name] >= unit.min_static_power_w * result.makespan_s * (1 - 1e-12)


def test_per_op_energies_sum_to_the_units_busy_energy(result):
    trace, platform, graph = result.trace, result.platform, result.graph
    per_op = op_energy_j(trace, platform)
    assert set(per_op) == {run.op for run in trace.ops}
    busy = busy_energy_j(trace, platform)
    cost = CostModel(graph, platform)
    by_unit: dict[str, list[float]] = defaultdict(list)
    by_hand: dict[str, list[float]] = defaultdict(list)
    for run in trace.ops:  # contention none: each op draws static + dynamic * activity for its duration
        state = platform.unit(run.unit).state(run.power_state)
        activity = cost.op_cost_at(run.op, run.unit, run.power_state).activity
        by_hand[run.unit].append(state.power_w(activity) * run.duration_s)
        by_unit[run.unit].append(per_op[run.op].unit_j)
    for unit in platform.units:
        assert math.fsum(by_unit[unit.name]) == pytest.approx(busy[unit.name], rel=1e-9, abs=1e-15)
        assert math.fsum(by_hand[unit.name]) == pytest.approx(busy[unit.name], rel=1e-9, abs=1e-15)
    data = data_energy_j(trace, platform)
    memory_j = math.fsum(data[m.name] for m in platform.memories)
    assert math.fsum(e.memory_j for e in per_op.values()) == pytest.approx(memory_j, rel=1e-9, abs=1e-15)
    idle_j = math.fsum(unit_energy_j(trace, platform).values()) - math.fsum(busy.values())
    link_j = math.fsum(data[link.name] for link in platform.links)
    assert math.fsum(e.total_j for e in per_op.values()) + idle_j + link_j == pytest.approx(result.energy_j,
                                                                                            rel=1e-9)


def test_summary_energy_per_token(result):
    s = result.summary
    attrs = result.graph.graph
    expected = attrs["batch"] if attrs["phase"] == "decode" else attrs["batch"] * attrs["seq_len"]
    assert s["tokens"] == expected
    assert s["energy_per_token_j"] == pytest.approx(s["energy_j"] / expected, rel=1e-12)


def test_energy_per_token_by_hand():
    # one 2 GFLOP fp32 matmul reading 0.5 GB, on two units sharing m0 (1 GB/s, 1 nJ/B): EFT puts it on
    # u1 (2 GFLOP/s): 1 s compute-bound (memory 0.5 s), activity 1 -> 10 + 90 W. u0 idles at 10 W.
    for phase, n_tokens in (("prefill", 6), ("decode", 2), ("train", 6)):
        g = new_graph("one", phase=phase, batch=2, seq_len=3, dtype="fp32")
        add_op(g, "mm", op="matmul", flop=2e9, bytes_read=0.5e9, dtype="fp32")
        r = hetsim.simulate(g, two_unit_dict(shared=True))
        assert r.makespan_s == pytest.approx(1.0)
        energy = 100.0 * 1.0 + 10.0 * 1.0 + 0.5e9 * 1e-9  # busy u1 + idle u0 + bytes read from m0
        assert r.energy_j == pytest.approx(energy)
        assert r.summary["tokens"] == n_tokens
        assert r.summary["energy_per_token_j"] == pytest.approx(energy / n_tokens)
        assert op_energy_j(r.trace, r.platform)["mm"].total_j == pytest.approx(100.5)


def test_tokens_unknown_without_phase_or_sizes(graph):
    assert tokens(new_graph("g")) is None  # no phase
    assert tokens(new_graph("g", phase="prefill", batch=2)) is None  # no seq_len
    assert tokens(graph) == 32  # the report fixture: prefill, batch 2, seq_len 16


def test_summary_without_tokens_prints_na(trace, platform):
    from io import StringIO

    from rich.console import Console

    from hetsim.report.tables import print_summary

    s = summary(trace, platform, new_graph("bare"))
    assert s["tokens"] is None and s["energy_per_token_j"] is None
    assert json.loads(json.dumps(s, allow_nan=False)) == s
    out = StringIO()
    print_summary(s, console=Console(file=out, width=120))
    assert "energy per token" in out.getvalue() and "n/a" in out.getvalue()
    with_tokens = StringIO()
    print_summary(summary(trace, platform, new_graph("g", phase="decode", batch=4)),
                  console=Console(file=with_tokens, width=120))
    assert "(4 tokens)" in with_tokens.getvalue()


def test_package_counter_of_the_report_fixture(trace, platform, graph):
    # cpu: 300 W until 3 s, then 100 W; gpu has no samples: its nominal static 50 W throughout
    assert package_power_steps(trace, platform) == [(0.0, 350.0), (3.0, 150.0), (4.0, 150.0)]
    obj = chrome_trace(trace, platform, graph)
    check_chrome_trace(obj)
    assert _counters(obj)[PACKAGE_COUNTER] == [(0.0, 350.0), (3e6, 150.0), (4e6, 150.0)]


def test_overlapping_ops_on_one_unit_share_its_power(trace, platform):
    # not something the engines produce; the split keeps per-op energy summing to busy energy
    crowded = replace(trace, ops=(OpRun("a", "cpu", 0.0, 2.0, "p0", 0.0, 0.0),
                                  OpRun("c", "cpu", 1.0, 3.0, "p0", 0.0, 0.0)),
                      power=(PowerSample(0.0, "cpu", 300.0), PowerSample(3.0, "cpu", 100.0)))
    per_op = op_energy_j(crowded, platform)
    assert per_op["a"].unit_j == pytest.approx(300.0 + 150.0)  # alone for 1 s, then half of 1 s
    assert per_op["c"].unit_j == pytest.approx(150.0 + 300.0)
    assert busy_energy_j(crowded, platform)["cpu"] == pytest.approx(900.0)
    assert unit_energy_j(crowded, platform)["cpu"] == pytest.approx(1000.0)


def test_ops_csv_carries_each_ops_energy(tmp_path, trace, platform, graph):
    write_outputs(trace, platform, graph, tmp_path, trace_json=False, gantt=False)
    rows = {r["op"]: r for r in csv.DictReader((tmp_path / "ops.csv").open())}
    # a: cpu at 300 W for 1 s, 1 GB at 10 pJ/B; b: gpu idle-power 50 W for 1 s, 1 GB at 5 pJ/B
    assert float(rows["a"]["energy_j"]) == pytest.approx(300.0 + 0.01)
    assert float(rows["a"]["memory_energy_j"]) == pytest.approx(0.01)
    assert float(rows["b"]["energy_j"]) == pytest.approx(50.0 + 0.005)
    per_op = op_energy_j(trace, platform)
    assert {op: float(r["energy_j"]) for op, r in rows.items()} == {op: e.total_j for op, e in per_op.items()}


def test_power_png_only_when_asked(tmp_path, trace, platform, graph):
    default = write_outputs(trace, platform, graph, tmp_path / "default", gantt=False)
    assert "power" not in default and not (tmp_path / "default" / "power.png").exists()
    written = write_outputs(trace, platform, graph, tmp_path / "power", gantt=False, power=True)
    assert written["power"].read_bytes()[:8] == PNG


def test_power_plot_takes_extra_panels(tmp_path, trace, platform):
    from hetsim.report.power_plot import Panel, plot_power, trace_series

    assert trace_series(trace) == []  # the fixture records neither clocks nor temperatures
    panels = [Panel("frequency (MHz)", {"cpu": [(0.0, 3000.0), (3.0, 1000.0)]}),
              Panel("temperature (°C)", {"cpu": [(0.0, 25.0), (2.0, 60.0), (4.0, 50.0)]}, steps=False)]
    path = plot_power(trace, platform, tmp_path / "p.png", extra=panels, cap_w=320.0)
    assert path.read_bytes()[:8] == PNG


def test_power_plot_draws_the_trace_clock_and_temperature(tmp_path):
    from hetsim.report.power_plot import plot_power, trace_series

    g = hetsim.model_graph("llama-tiny", phase="decode", batch=1, seq_len=64)
    r = hetsim.simulate(g, "gh200", sim={"power": {"governor": "ondemand", "interval": "5 us", "thermal": {
        "resistance": 0.1, "capacitance": 1e-5, "limit": 60}}})
    panels = trace_series(r.trace)
    assert [p.label for p in panels] == ["frequency (MHz)", "temperature (°C)"]
    assert set(panels[0].series) <= {"cpu", "gpu"} and panels[0].steps and not panels[1].steps
    assert plot_power(r.trace, r.platform, tmp_path / "p.png", extra=panels).read_bytes()[:8] == PNG
