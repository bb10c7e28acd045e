"""Hand-computable fixtures: a two-unit platform, a four-op graph and the trace of one run.

Timeline (seconds)::

    cpu  a [0, 1]  c [1, 3]
    c2c        a->b [1, 1.5]          c->d [3, 3.25]
    gpu            b [1.5, 2.5]                 d [3.25, 4]
"""

from __future__ import annotations

import pytest

from hetsim.graph.schema import add_op, new_graph
from hetsim.sim.trace import MemorySample, OpRun, PowerSample, Trace, TransferRun
from hetsim.spec.loader import platform_from_dict

PLATFORM = {
    "name": "duo",
    "memories": [
        {"name": "ddr", "capacity": "10 GB", "bandwidth": "100 GB/s", "energy_per_byte": "10 pJ/B"},
        {"name": "hbm", "capacity": "20 GB", "bandwidth": "1 TB/s", "energy_per_byte": "5 pJ/B"},
        {"name": "sram", "capacity": "1 GB", "bandwidth": "10 TB/s"},
    ],
    "units": [
        {"name": "cpu", "kind": "cpu", "memory": "ddr", "peak": {"fp32": "1 TFLOP/s"},
         "power_states": [
             {"name": "p0", "freq": "3 GHz", "voltage": "1 V", "static_power": "100 W", "dynamic_power": "200 W"},
             {"name": "p1", "freq": "1 GHz", "voltage": "0.8 V", "static_power": "60 W", "dynamic_power": "50 W"},
         ]},
        {"name": "gpu", "kind": "gpu", "memory": "hbm", "peak": {"fp32": "10 TFLOP/s"},
         "power_states": [
             {"name": "p0", "freq": "2 GHz", "voltage": "1 V", "static_power": "50 W", "dynamic_power": "250 W"},
         ]},
    ],
    "links": [{"name": "c2c", "a": "ddr", "b": "hbm", "bandwidth": "100 GB/s", "energy_per_byte": "20 pJ/B"}],
}


@pytest.fixture
def platform():
    return platform_from_dict(PLATFORM)


@pytest.fixture
def graph():
    g = new_graph("diamond", phase="prefill", batch=2, seq_len=16, dtype="fp32")
    add_op(g, "a", op="matmul", flop=1e9, module="layers.0.attn")
    add_op(g, "b", op="softmax", flop=2e9, module="layers.0.attn")
    add_op(g, "c", op="matmul", flop=3e9, module="layers.0.mlp")
    add_op(g, "d", op="elementwise", flop=4e9, module="layers.0.mlp")
    g.add_edge("a", "b", bytes=1e9)
    g.add_edge("a", "c", bytes=1e9)
    g.add_edge("b", "d", bytes=1e9)
    g.add_edge("c", "d", bytes=0.5e9)
    return g


@pytest.fixture
def trace():
    return Trace(
        platform="duo",
        graph="diamond",
        makespan_s=4.0,
        ops=(
            OpRun("a", "cpu", 0.0, 1.0, "p0", 1e9, 1e9),
            OpRun("c", "cpu", 1.0, 3.0, "p0", 3e9, 2e9),
            OpRun("b", "gpu", 1.5, 2.5, "p0", 2e9, 1e9),
            OpRun("d", "gpu", 3.25, 4.0, "p0", 4e9, 0.5e9),
        ),
        transfers=(
            TransferRun("a", "b", "ddr", "hbm", ("c2c",), 1.0, 1.5, 1e9),
            TransferRun("c", "d", "ddr", "hbm", ("c2c",), 3.0, 3.25, 0.5e9),
        ),
        power=(
            PowerSample(0.0, "cpu", 300.0),
            PowerSample(3.0, "cpu", 100.0),
        ),
        memory=(
            MemorySample(0.0, "ddr", 1e9),
            MemorySample(1.0, "ddr", 3e9),
            MemorySample(1.5, "hbm", 1e9),
            MemorySample(3.0, "ddr", 2e9),
        ),
    )
