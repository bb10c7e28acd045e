"""The eager launch queue and CUDA-graph replay, by hand (hetsim/sim/launch.py)."""

from __future__ import annotations

import dataclasses

import pytest

from hetsim.api import simulate
from hetsim.errors import ScenarioError
from hetsim.graph.schema import add_op, new_graph
from hetsim.sim.launch import EAGER_DISPATCH_S, GRAPH_LAUNCH_S
from hetsim.spec.loader import platform_from_dict

_PS = [{"name": "p0", "freq": "1 GHz", "voltage": "1 V", "static_power": "10 W", "dynamic_power": "90 W"}]


def _platform(kernels: bool = True):
    """A host CPU and a GPU (4 µs eager launch) joined by a PCIe-like link."""
    p = platform_from_dict({
        "name": "host+gpu",
        "memories": [{"name": "dram", "capacity": "64 GB", "bandwidth": "100 GB/s"},
                     {"name": "hbm", "capacity": "80 GB", "bandwidth": "2 TB/s"}],
        "units": [{"name": "cpu", "kind": "cpu", "memory": "dram", "peak": {"fp32": "1 TFLOP/s"}, "power_states": _PS},
                  {"name": "gpu", "kind": "gpu", "memory": "hbm", "peak": {"fp16": "300 TFLOP/s"},
                   "overhead": "4 us", "power_states": _PS}],
        "links": [{"name": "pcie", "a": "dram", "b": "hbm", "bandwidth": "32 GB/s", "latency": "1 us"}]})
    if not kernels:
        return p
    # any kernel model switches the launch queue on; these ops carry explicit costs, which win over it
    units = tuple(dataclasses.replace(u, kernels=object()) if u.kind == "gpu" else u for u in p.units)
    return dataclasses.replace(p, units=units)


def _chain(seconds: float, n: int = 3):
    g = new_graph("chain")
    for i in range(n):
        add_op(g, f"k{i}", op="matmul", cost={"gpu": seconds})  # matmuls: nothing to fuse
        if i:
            g.add_edge(f"k{i - 1}", f"k{i}", bytes=0)
    return g


def _run(graph, platform, execution):
    return simulate(graph, platform, "single", scheduler_options={"unit": "gpu"}, sim={"execution": execution})


#: host time per eager kernel on this platform: framework dispatch + the GPU's 4 µs launch
H = EAGER_DISPATCH_S + 4e-6


def test_tiny_kernels_are_bound_by_the_host():
    # kernel i is issued at H·(i+1) and runs 1 µs: the GPU idles between kernels
    r = _run(_chain(1e-6), _platform(), "eager")
    starts = sorted(run.start_s for run in r.trace.ops)
    assert starts == pytest.approx([H, 2 * H, 3 * H])
    assert r.makespan_s == pytest.approx(3 * H + 1e-6)


def test_big_kernels_are_bound_by_the_gpu():
    # 100 µs kernels: only the first launch shows, the host runs ahead of the GPU afterwards
    r = _run(_chain(100e-6), _platform(), "eager")
    assert r.makespan_s == pytest.approx(H + 300e-6)


def test_launches_are_on_the_host_track():
    r = _run(_chain(1e-6), _platform(), "eager")
    assert [(x.host, x.unit, x.op) for x in r.trace.launches] == [("cpu", "gpu", "k0"), ("cpu", "gpu", "k1"),
                                                                 ("cpu", "gpu", "k2")]
    assert [x.end_s for x in r.trace.launches] == pytest.approx([H, 2 * H, 3 * H])


def test_a_cuda_graph_is_launched_once():
    r = _run(_chain(1e-6, n=10), _platform(), "compiled")
    assert r.makespan_s == pytest.approx(GRAPH_LAUNCH_S + 10e-6)
    assert len(r.trace.launches) == 1 and r.trace.launches[0].op == ""


def test_units_without_a_kernel_model_keep_their_overhead_on_the_device():
    r = _run(_chain(1e-6), _platform(kernels=False), "eager")
    assert r.makespan_s == pytest.approx(3e-6) and r.trace.launches == ()


def test_unknown_execution_mode_is_one_line():
    with pytest.raises(ScenarioError, match=r"^sim.execution: got 'jit', expected one of eager, compiled, serving$"):
        _run(_chain(1e-6), _platform(), "jit")


def test_launches_show_on_the_host_track_of_trace_json(tmp_path):
    import json

    from hetsim.report.chrome import check_chrome_trace

    r = _run(_chain(1e-6), _platform(), "eager")
    obj = json.loads(r.write_chrome_trace(tmp_path / "trace.json").read_text())
    check_chrome_trace(obj)
    names = {e["args"]["name"] for e in obj["traceEvents"] if e.get("name") == "thread_name"}
    assert "cpu launches for gpu" in names
    launches = [e for e in obj["traceEvents"] if e.get("cat") == "launch"]
    assert [e["name"] for e in launches] == ["launch k0", "launch k1", "launch k2"]
