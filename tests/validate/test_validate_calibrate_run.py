"""Real microbenchmarks on this machine: counts match capture, a restricted quick calibration runs."""

from __future__ import annotations

import time

import pytest

torch = pytest.importorskip("torch")

from hetsim.cost.roofline import op_cost  # noqa: E402
from hetsim.graph.capture import capture  # noqa: E402
from hetsim.spec.loader import load_platform  # noqa: E402
from hetsim.validate._bench_cases import suite  # noqa: E402
from hetsim.validate.calibrate import CalibrationError, _key, calibrate, write_profile  # noqa: E402
from hetsim.validate.microbench import Record, measure, run_suite, time_calls  # noqa: E402

TARGETS = ["aten.add.Tensor", "aten.copy_.default", "aten.view.default"]


class OneOp(torch.nn.Module):
    """Calls one ATen overload on its inputs, so capture sees exactly the benchmarked node."""

    def __init__(self, call):
        super().__init__()
        self.call = call

    def forward(self, *tensors):
        it = iter(tensors)

        def arg(a):
            if isinstance(a, torch.Tensor):
                return next(it)
            if isinstance(a, list) and a and all(isinstance(t, torch.Tensor) for t in a):
                return [next(it) for _ in a]
            return a

        return self.call.op(*(arg(a) for a in self.call.args), **{k: arg(v) for k, v in self.call.kwargs.items()})


def _flat_tensors(call):
    out = []
    for a in (*call.args, *call.kwargs.values()):
        if isinstance(a, torch.Tensor):
            out.append(a)
        elif isinstance(a, list):
            out += [t for t in a if isinstance(t, torch.Tensor)]
    return out


@pytest.mark.parametrize("target, label", [
    ("aten.add.Tensor", "(130, 768)"), ("aten.mul.Tensor", "(130, 768)+bcast"),
    ("aten.layer_norm.default", "(130, 768)"),
    ("aten.linear.default", "128x64x256"), ("aten.scaled_dot_product_attention.default", "H12/12 T16 S16 hd64 causal"),
    ("aten.cat.default", "kv (1, 12, 64+1, 64)"), ("aten.embedding.default", "(256, 64)[128]"),
    ("aten.gelu.default", "(130, 768)"), ("aten.contiguous.default", "(130, 768).T"),
])
def test_counts_match_what_capture_writes_on_the_same_call(target, label):
    for case in [c for c in suite("full", [target]) if c.label == label]:  # GELU: both variants
        record = measure(case, budget_s=0.0, min_reps=1, max_reps=1)
        call = case.build(torch.device("cpu"), torch.float32)
        graph = capture(OneOp(call), tuple(_flat_tensors(call)))
        [node] = [d for _, d in graph.nodes(data=True) if d["target"].startswith(target)]
        assert (_key(record.target, record.variant, None), record.kind, record.flop, record.bytes_read,
                record.bytes_written, record.dtype) == (node["target"], node["op"], node["flop"],
                                                        node["bytes_read"], node["bytes_written"], node["dtype"])


def test_time_calls_warms_up_then_repeats_within_bounds():
    calls = []
    times = time_calls(lambda: calls.append(1), budget_s=0.0, min_reps=4, max_reps=10)
    assert len(times) == 4 and len(calls) >= 5 and all(t >= 0 for t in times)  # 1+ warm-up calls, untimed
    assert len(time_calls(lambda: None, budget_s=10.0, min_reps=1, max_reps=7)) == 7


def test_run_suite_reports_progress_and_pins_threads():
    before = torch.get_num_threads()
    seen = []
    records = run_suite(suite("quick", ["aten.view.default"]), threads=1, budget_s=0.0, min_reps=2,
                        progress=lambda done, total, label: seen.append((done, total)))
    assert [type(r) for r in records] == [Record] and records[0].kind == "view" and records[0].reps == 2
    assert seen == [(1, 1)] and torch.get_num_threads() == before


@pytest.fixture(scope="module")
def quick_profile():
    start = time.perf_counter()
    profile = calibrate(quick=True, threads=1, targets=TARGETS)
    return profile, time.perf_counter() - start


def test_restricted_quick_calibration_runs_in_seconds_and_loads(quick_profile, tmp_path):
    profile, seconds = quick_profile
    assert seconds < 20  # a few seconds here; generous for a loaded CI machine
    path = write_profile(profile, tmp_path / "me.yaml")
    platform = load_platform(str(path))
    unit, dram = platform.unit("cpu"), platform.memory("dram")
    assert platform.manifest["grid"] == "quick" and platform.manifest["threads"] == 1
    assert platform.manifest["microbenchmarks"] == len(suite("quick", TARGETS))
    assert unit.overheads["view"] > 0 and dram.bandwidth_bytes_per_s > 1e8
    # a captured-like 1 MB add costs its overhead plus its bytes at the fitted rate
    op = {"op": "elementwise", "target": "aten.add.Tensor", "dtype": "fp32", "bytes_read": 8e5, "bytes_written": 4e5}
    cost = op_cost(op, unit, dram)
    assert unit.overhead("elementwise", "aten.add.Tensor") < cost.total_s < 1.0


def test_calibrate_rejects_unknown_targets_and_bad_threads():
    with pytest.raises(CalibrationError, match="targets"):
        calibrate(quick=True, targets=["aten.no_such_op.default"])
    with pytest.raises(CalibrationError, match="--threads"):
        calibrate(quick=True, threads=0, targets=TARGETS)
