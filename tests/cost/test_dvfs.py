"""DVFS in the cost model: compute time scales with 1/f, memory time does not (hardware.md §3.2).

No preset has a state at exactly half its nominal clock, so the platform here is the h100-sxm
preset with its GPU's V/f table replaced by two states: p0 (1830 MHz, 1.0 V, as the preset) and
``half`` (915 MHz at the 0.7 V floor of the §3.1 V(f) placeholder; static 75 W × 0.7, dynamic
520.5 W × 0.5 × 0.7²).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

import hetsim
from hetsim.cost.model import CostModel
from hetsim.spec.loader import load_platform, platform_from_dict, preset_path

HALF_STATES = [
    {"name": "p0", "freq": "1830 MHz", "voltage": "1.0 V", "static_power": "75 W", "dynamic_power": "520.5 W"},
    {"name": "half", "freq": "915 MHz", "voltage": "0.7 V", "static_power": "52.5 W", "dynamic_power": "127.5 W"},
]


@pytest.fixture(scope="module")
def platform():
    data = yaml.safe_load(preset_path("h100-sxm").read_text())
    (gpu,) = data["units"]
    gpu["power_states"] = HALF_STATES
    return platform_from_dict(data)


@pytest.fixture(scope="module")
def prefill():
    return hetsim.model_graph("llama-3-8b", phase="prefill", batch=1, seq_len=2048)


@pytest.fixture(scope="module")
def decode():
    return hetsim.model_graph("llama-3-8b", phase="decode", batch=1, seq_len=128)


def _large_gemms(graph) -> list[str]:
    """The MLP projections and the LM head: the large GEMMs of a prefill."""
    return [op for op, d in graph.nodes(data=True)
            if d["op"] == "matmul" and (".mlp." in d.get("module", "") or d.get("module") == "lm_head")]


def test_half_clock_doubles_a_compute_bound_prefill_gemm(platform, prefill):
    cost = CostModel(prefill, platform)
    gemms = _large_gemms(prefill)
    assert len(gemms) == 3 * 32 + 1
    for op in gemms:
        full, half = cost.op_cost_at(op, "gpu", "p0"), cost.op_cost_at(op, "gpu", "half")
        assert full.compute_s > full.memory_s  # compute-bound at the nominal clock
        assert half.compute_s == pytest.approx(2 * full.compute_s, rel=1e-12)
        assert half.memory_s == full.memory_s
        assert half.total_s / full.total_s == pytest.approx(2.0, rel=0.01)


def test_half_clock_barely_moves_a_memory_bound_decode_gemv(platform, decode):
    cost = CostModel(decode, platform)
    gemvs = [op for op, d in decode.nodes(data=True) if d["op"] == "matmul"]
    assert gemvs
    for op in gemvs:
        full, half = cost.op_cost_at(op, "gpu", "p0"), cost.op_cost_at(op, "gpu", "half")
        assert full.memory_s > 2 * full.compute_s  # memory-bound even once compute doubles
        # the GPU kernel model joins compute and memory time as a smooth maximum (its fitted overlap),
        # so a compute part up to 2/3 of the memory part still adds a few per cent
        assert abs(half.total_s / full.total_s - 1.0) < 0.1


def test_preset_states_scale_compute_by_the_clock_ratio(prefill):
    h100 = load_platform("h100-sxm")
    cost = CostModel(prefill, h100)
    (op, *_) = _large_gemms(prefill)
    full, low = cost.op_cost_at(op, "gpu", None), cost.op_cost_at(op, "gpu", "p2")  # 1830 vs 1000 MHz
    assert low.compute_s == pytest.approx(full.compute_s * 1830 / 1000, rel=1e-12)
    assert low.memory_s == full.memory_s


def test_decode_at_a_lower_fixed_clock_saves_energy_at_the_same_latency(platform, decode):
    nominal = hetsim.simulate(decode, platform)
    pinned = replace(nominal.schedule, power_state=dict.fromkeys(decode, "half"), start={}, finish={})
    slow = hetsim.simulate(decode, platform, pinned)
    assert {run.power_state for run in nominal.trace.ops} == {"p0"}
    assert {run.power_state for run in slow.trace.ops} == {"half"}
    assert slow.makespan_s == pytest.approx(nominal.makespan_s, rel=0.01)
    assert slow.energy_j < 0.9 * nominal.energy_j
