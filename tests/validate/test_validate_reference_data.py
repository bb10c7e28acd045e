"""The cost model against committed real measurements (no timing here: runs the same anywhere).

``tests/data/validation_cpu.json`` holds per-op medians of real fp32 forwards measured on the
development CPU by ``benchmarks/validation.py``; ``tests/data/cpu_profile.yaml`` is the profile
``hetsim calibrate`` measured on that machine just before, from microbenchmarks only. Stated
tolerances: per-op MAPE <= 25 % over ops longer than 50 µs, every GEMM longer than 1 ms within
30 %, and the sum over all ops within 15 %.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from hetsim.cost.roofline import op_cost
from hetsim.graph.catalog import model_graph
from hetsim.spec.loader import load_platform

DATA = Path(__file__).resolve().parents[1] / "data"
CASES = [("gpt2", "prefill", 1, 128), ("bert-base", "prefill", 1, 128), ("smollm2-135m", "decode", 1, 512)]


@pytest.fixture(scope="module")
def reference():
    return json.loads((DATA / "validation_cpu.json").read_text())


@pytest.fixture(scope="module")
def profile():
    return load_platform(DATA / "cpu_profile.yaml")


def test_the_data_and_the_profile_come_from_one_machine(reference, profile):
    assert reference["manifest"]["device"] == profile.manifest["device"]
    assert reference["manifest"]["torch"] == profile.manifest["torch"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-b{c[2]}-s{c[3]}")
def test_predicted_op_times_match_the_measured_ones(reference, profile, case):
    name, phase, batch, seq = case
    (report,) = [r for r in reference["reports"]
                 if (r["name"], r["phase"], r["batch"], r["seq_len"]) == (name, phase, batch, seq)]
    graph = model_graph(name, phase=phase, batch=batch, seq_len=seq, dtype="fp32")
    unit, memory = profile.unit("cpu"), profile.memory_of("cpu")
    rows = []
    for op, (kind, _target, measured) in report["measured_ops"].items():
        if op in graph:
            rows.append((op, kind, op_cost(graph.nodes[op], unit, memory).total_s, measured))
    assert len(rows) >= 0.9 * graph.number_of_nodes()  # node names line up with the measured graph
    long_ops = [(p, m) for _, _, p, m in rows if m > 50e-6]
    mape = statistics.fmean(abs(p - m) / m for p, m in long_ops)
    assert len(long_ops) >= 50 and mape <= 0.25, f"per-op MAPE {mape:.1%} over {len(long_ops)} ops"
    for op, kind, predicted, measured in rows:
        if kind == "matmul" and measured > 1e-3:
            assert abs(predicted - measured) / measured <= 0.30, (op, predicted, measured)
    total_p, total_m = sum(r[2] for r in rows), sum(r[3] for r in rows)
    assert abs(total_p - total_m) / total_m <= 0.15, (total_p, total_m)
