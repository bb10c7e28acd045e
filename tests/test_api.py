"""The public API end to end: hetsim.simulate on captured graphs, and properties of its Result."""

from __future__ import annotations

import json

import pytest

import hetsim
from hetsim.report.chrome import check_chrome_trace
from hetsim.sim.launch import eager_launch_s, launched


@pytest.fixture(scope="module")
def tiny_prefill():
    return hetsim.model_graph("llama-tiny", phase="prefill", batch=2, seq_len=32, dtype="bf16")


@pytest.mark.parametrize("preset", ["gh200", "mobile-soc", "dgx-h100", "h100-sxm", "tpu-v4-2x2", "xeon-8480"])
def test_simulate_on_every_kind_of_platform(tiny_prefill, preset):
    graph = tiny_prefill
    if preset == "mobile-soc":
        graph = hetsim.model_graph("llama-tiny", phase="prefill", batch=2, seq_len=32, dtype="fp16")
    result = hetsim.simulate(graph, preset)
    platform = hetsim.load_platform(preset)
    queued = [u for u in platform.units if launched(u)]
    if not queued:  # nothing contends and nothing waits: the schedule's prediction is exact
        assert result.makespan_s == pytest.approx(result.schedule.makespan_s, rel=1e-9)
    else:  # static schedulers do not see the eager launch queue: GPUs may wait for their host
        host = sum(eager_launch_s(u) * sum(1 for r in result.trace.ops if r.unit == u.name) for u in queued)
        assert result.schedule.makespan_s * (1 - 1e-9) <= result.makespan_s <= result.schedule.makespan_s + host
    assert set(result.utilization) == {u.name for u in platform.units}
    assert all(0 <= u <= 1 + 1e-9 for u in result.utilization.values())
    # energy is at least every unit idling for the whole run
    idle = sum(u.nominal.static_power_w for u in platform.units) * result.makespan_s
    assert result.energy_j >= idle
    # the makespan is at least the longest chain of ops at their fastest on any unit
    assert result.makespan_s >= max(result.trace.ops, key=lambda r: r.duration_s).duration_s
    assert result.critical_path[-1] == max(result.trace.ops, key=lambda r: (r.end_s, r.op)).op


def test_same_inputs_give_the_same_trace(tiny_prefill):
    a = hetsim.simulate(tiny_prefill, "gh200")
    b = hetsim.simulate(hetsim.model_graph("llama-tiny", phase="prefill", batch=2, seq_len=32), "gh200")
    assert a.trace == b.trace


def test_weights_are_resident_on_the_units_that_read_them():
    graph = hetsim.model_graph("gpt2-tiny", phase="prefill", batch=1, seq_len=16, dtype="fp32")
    result = hetsim.simulate(graph, "h100-sxm")
    weights = {name: b for _, d in graph.nodes(data=True) for name, b in d["weights"].items()}
    (memory,) = result.peak_memory_bytes
    assert result.peak_memory_bytes[memory] >= sum(weights.values())
    # single device: every op on the GPU, nothing crosses a link
    assert set(result.schedule.assignment.values()) == {"gpu"} and result.trace.transfers == ()


def test_decode_is_memory_bound_and_prefill_compute_bound():
    decode = hetsim.simulate(hetsim.model_graph("llama-3-8b", phase="decode", batch=1, seq_len=1024), "h100-sxm")
    # one decode step streams all ~16 GB of bf16 weights: at least weights / HBM bandwidth
    weight_bytes = sum({k: v for _, d in decode.graph.nodes(data=True) for k, v in d["weights"].items()
                        if not k.startswith(("input_ids", "past_key_values"))}.values())
    assert weight_bytes == pytest.approx(16.06e9, rel=0.01)
    assert decode.makespan_s >= weight_bytes / 3.35e12
    assert decode.makespan_s < 3 * weight_bytes / 3.35e12


def test_write_chrome_trace_and_outputs(tmp_path, tiny_prefill):
    result = hetsim.simulate(tiny_prefill, "dgx-h100", scheduler="round_robin")
    path = result.write_chrome_trace(tmp_path / "t.json")
    trace = json.loads(path.read_text())
    check_chrome_trace(trace)
    links = {e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M" and e["pid"] == 2
             and e["name"] == "thread_name"}
    assert any(name.startswith("nvlink") for name in links)  # round robin spreads ops over the GPUs
    written = result.write_outputs(tmp_path / "out", gantt=False)
    summary = json.loads(written["summary"].read_text())
    assert summary["scheduler"] == "round_robin" and summary["makespan_s"] == result.makespan_s


def test_bad_inputs_to_simulate():
    graph = hetsim.model_graph("gpt2-tiny", phase="prefill", batch=1, seq_len=8)
    with pytest.raises(hetsim.HetsimError, match=r"sim\.colour: unknown option"):
        hetsim.simulate(graph, "h100-sxm", sim={"colour": "red"})
    with pytest.raises(hetsim.HetsimError, match=r"platform: got 'h1000'"):
        hetsim.simulate(graph, "h1000")
