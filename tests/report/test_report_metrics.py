"""Metrics against hand-computed numbers (see the timeline in conftest.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from hetsim.errors import SpecError
from hetsim.graph.schema import add_op, new_graph
from hetsim.report import (
    busy_s,
    critical_path,
    data_energy_j,
    energy_j,
    inputs_ready_s,
    peak_memory_bytes,
    summary,
    time_by_op_kind_s,
    unit_energy_j,
    utilization,
)
from hetsim.sim.trace import OpRun, PowerSample, Trace, TransferRun

SUMMARY_KEYS = {
    "makespan_s", "energy_j", "energy_by_unit_j", "data_energy_j", "peak_memory_bytes", "memory_capacity_bytes",
    "utilization", "busy_s", "ops", "transfers", "transfer_bytes", "flop", "achieved_flop_per_s",
    "critical_path_len", "platform", "graph", "phase", "batch", "seq_len", "dtype", "time_by_op_kind_s",
    "tokens", "energy_per_token_j", "mfu",
}


def test_busy_and_utilization(trace, platform):
    assert busy_s(trace, platform) == {"cpu": 3.0, "gpu": 1.75}
    assert utilization(trace, platform) == {"cpu": 0.75, "gpu": pytest.approx(0.4375)}


def test_idle_unit_is_present_with_zero(platform):
    t = Trace("duo", "g", 2.0, (OpRun("a", "cpu", 0.0, 1.0, "p0", 0.0, 0.0),), (), (), ())
    assert busy_s(t, platform) == {"cpu": 1.0, "gpu": 0.0}
    assert utilization(t, platform) == {"cpu": 0.5, "gpu": 0.0}


def test_zero_makespan_gives_zero_utilization(platform):
    t = Trace("duo", "g", 0.0, (OpRun("a", "cpu", 0.0, 0.0, "p0", 0.0, 0.0),), (), (), ())
    assert utilization(t, platform) == {"cpu": 0.0, "gpu": 0.0}


def test_unknown_unit_is_a_clear_error(platform):
    t = Trace("duo", "g", 1.0, (OpRun("a", "npu", 0.0, 1.0, "p0", 0.0, 0.0),), (), (), ())
    with pytest.raises(SpecError, match="'npu'"):
        busy_s(t, platform)


def test_unit_energy_integrates_piecewise_constant_power(trace, platform):
    # cpu: 300 W for 3 s then 100 W for 1 s; gpu has no samples: nominal static 50 W for 4 s
    assert unit_energy_j(trace, platform) == {"cpu": pytest.approx(1000.0), "gpu": pytest.approx(200.0)}


def test_unit_energy_static_then_busy(platform):
    t = Trace("duo", "g", 2.0, (), (), (PowerSample(0.0, "cpu", 100.0), PowerSample(1.0, "cpu", 300.0)), ())
    assert unit_energy_j(t, platform)["cpu"] == pytest.approx(400.0)


def test_unit_energy_counts_from_first_sample_and_last_of_equal_times(platform):
    t = Trace("duo", "g", 3.0, (), (), (
        PowerSample(1.0, "gpu", 999.0),  # superseded at the same instant: lasts 0 s
        PowerSample(1.0, "gpu", 200.0),
        PowerSample(2.0, "gpu", 10.0),
    ), ())
    assert unit_energy_j(t, platform)["gpu"] == pytest.approx(200.0 + 10.0)


def test_samples_past_makespan_count_nothing(platform):
    t = Trace("duo", "g", 1.0, (), (), (PowerSample(0.0, "cpu", 10.0), PowerSample(5.0, "cpu", 1e6)), ())
    assert unit_energy_j(t, platform)["cpu"] == pytest.approx(10.0)


def test_data_energy_per_memory_and_link(trace, platform):
    energy = data_energy_j(trace, platform)
    assert list(energy) == ["ddr", "hbm", "sram", "c2c"]
    assert energy["ddr"] == pytest.approx(3e9 * 10e-12)  # a + c on the cpu
    assert energy["hbm"] == pytest.approx(1.5e9 * 5e-12)  # b + d on the gpu
    assert energy["sram"] == 0.0
    assert energy["c2c"] == pytest.approx(1.5e9 * 20e-12)


def test_transfer_energy_counts_every_link_of_the_route(trace, platform):
    hop = replace(trace, transfers=(TransferRun("a", "b", "ddr", "hbm", ("c2c", "c2c"), 1.0, 1.5, 1e9),))
    assert data_energy_j(hop, platform)["c2c"] == pytest.approx(2 * 1e9 * 20e-12)


def test_energy_is_units_plus_data(trace, platform):
    assert energy_j(trace, platform) == pytest.approx(1000.0 + 200.0 + 0.03 + 0.0075 + 0.03)


def test_peak_memory(trace, platform):
    assert peak_memory_bytes(trace, platform) == {"ddr": 3e9, "hbm": 1e9, "sram": 0.0}


def test_critical_path_goes_through_transfer(trace, graph):
    # d waits for c's tensor (transfer ends 3.25) rather than b (2.5); c waits for a
    assert critical_path(trace, graph) == ["a", "c", "d"]


def test_critical_path_goes_through_unit_waiting():
    g = new_graph("wait")
    for op in ("x", "y", "z"):
        add_op(g, op)
    g.add_edge("x", "y", bytes=1)
    t = Trace("duo", "wait", 3.0, (
        OpRun("x", "gpu", 0.0, 0.5, "p0", 0, 0),
        OpRun("z", "cpu", 0.0, 2.0, "p0", 0, 0),
        OpRun("y", "cpu", 2.0, 3.0, "p0", 0, 0),
    ), (TransferRun("x", "y", "hbm", "ddr", ("c2c",), 0.5, 0.6, 1),), (), ())
    assert critical_path(t, g) == ["z", "y"]


def test_critical_path_prefers_late_transfer_over_early_producer():
    g = new_graph("t")
    for op in ("p", "q", "r"):
        add_op(g, op)
    g.add_edge("p", "r", bytes=1)
    g.add_edge("q", "r", bytes=1)
    t = Trace("duo", "t", 5.0, (
        OpRun("p", "cpu", 0.0, 2.0, "p0", 0, 0),  # ends later, but on r's unit: no transfer
        OpRun("q", "gpu", 0.0, 1.0, "p0", 0, 0),  # ends earlier, but its tensor arrives at 3
        OpRun("r", "cpu", 3.0, 5.0, "p0", 0, 0),
    ), (TransferRun("q", "r", "hbm", "ddr", ("c2c",), 1.0, 3.0, 1),), (), ())
    assert critical_path(t, g) == ["q", "r"]


def test_critical_path_ties_break_by_op_id():
    g = new_graph("tie")
    for op in ("m", "k", "z"):
        add_op(g, op)
    g.add_edge("m", "z", bytes=1)
    g.add_edge("k", "z", bytes=1)
    t = Trace("duo", "tie", 2.0, (
        OpRun("k", "cpu", 0.0, 1.0, "p0", 0, 0),
        OpRun("m", "gpu", 0.0, 1.0, "p0", 0, 0),
        OpRun("z", "gpu", 1.0, 2.0, "p0", 0, 0),
    ), (), (), ())
    # k and m both arrive at 1.0 (m is also z's previous op on the gpu): the smaller id wins
    assert critical_path(t, g) == ["k", "z"]


def test_critical_path_of_empty_trace_is_empty(graph):
    assert critical_path(Trace("duo", "g", 0.0, (), (), (), ()), graph) == []


def test_inputs_ready(trace, graph):
    assert inputs_ready_s(trace, graph) == {"a": 0.0, "c": 1.0, "b": 1.5, "d": 3.25}


def test_time_by_op_kind(trace, graph):
    assert time_by_op_kind_s(trace, graph) == {"elementwise": 0.75, "matmul": 3.0, "softmax": 1.0}
    assert time_by_op_kind_s(trace, None) == {"other": pytest.approx(4.75)}


def test_summary_keys_values_and_json(trace, platform, graph):
    s = summary(trace, platform, graph)
    assert set(s) == SUMMARY_KEYS
    assert json.loads(json.dumps(s, allow_nan=False)) == s
    assert s["makespan_s"] == 4.0
    assert s["energy_j"] == pytest.approx(energy_j(trace, platform))
    assert s["ops"] == 4 and s["transfers"] == 2
    assert s["transfer_bytes"] == 1.5e9
    assert s["flop"] == 10e9
    assert s["achieved_flop_per_s"] == pytest.approx(2.5e9)
    assert s["critical_path_len"] == 3
    assert s["memory_capacity_bytes"] == {"ddr": 10e9, "hbm": 20e9, "sram": 1e9}
    assert (s["platform"], s["graph"], s["phase"], s["batch"], s["seq_len"], s["dtype"]) == (
        "duo", "diamond", "prefill", 2, 16, "fp32")
