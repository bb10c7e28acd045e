"""Execution modes on the catalogue: fused kernels and CUDA graphs never make a step slower."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from hetsim.api import simulate
from hetsim.graph.catalog import list_models, model_config, model_graph
from hetsim.sim.engine import SimOptions
from hetsim.spec.loader import load_platform

PROFILE = "profiles/h100-sxm-kernels.yaml"  # the H100 with its fitted kernel-level cost model


@functools.cache
def _platform():
    return load_platform(Path(__file__).resolve().parents[1] / PROFILE)


def _makespans(graph) -> dict[str, float]:
    return {mode: simulate(graph, _platform(), "single", scheduler_options={"unit": "gpu"},
                           sim=SimOptions(track_memory=False, execution=mode)).makespan_s
            for mode in ("eager", "compiled", "serving")}


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_compiled_and_serving_are_never_slower_than_eager(name):
    phases = ("prefill",) if name.startswith("bert") else ("prefill", "decode")
    seq_len = min(256, model_config(name).max_positions - 1)
    for phase in phases:
        t = _makespans(model_graph(name, phase=phase, batch=4, seq_len=seq_len))
        assert t["compiled"] <= t["eager"] * (1 + 1e-9), (name, phase, t)
        assert t["serving"] <= t["eager"] * (1 + 1e-9), (name, phase, t)


def test_a_decode_step_of_a_small_model_is_host_bound_in_eager_mode():
    # GPT-2 decode at batch 1: ~700 tiny kernels, each shorter than its 4 µs launch
    graph = model_graph("gpt2", phase="decode", batch=1, seq_len=128)
    r = simulate(graph, _platform(), "single", scheduler_options={"unit": "gpu"}, sim={"execution": "eager"})
    kernels = sum(1 for _, d in graph.nodes(data=True) if d["op"] != "view")
    assert r.makespan_s >= kernels * _platform().unit("gpu").overhead_s
    t = _makespans(graph)
    assert t["compiled"] < 0.8 * t["eager"]
