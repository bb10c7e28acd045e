"""torch.profiler (Kineto) Chrome traces: a real CPU trace read back, GPU kernel times, bad files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hetsim.validate.calibrate import CalibrationError
from hetsim.validate.kineto import profiled_op, read_profiler_trace

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def cpu_trace(tmp_path_factory):
    """A real torch.profiler trace of a linear layer, SiLU and a residual add on this CPU."""
    from torch.profiler import ProfilerActivity, profile

    x, w = torch.randn(32, 64), torch.randn(128, 64)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(2):
            y = torch.nn.functional.silu(torch.nn.functional.linear(x, w))
            y = y + y
    path = tmp_path_factory.mktemp("kineto") / "cpu.json"
    prof.export_chrome_trace(str(path))
    return path


def test_a_real_cpu_trace_gives_the_outermost_aten_ops(cpu_trace):
    ops = read_profiler_trace(cpu_trace)
    names = [p.name for p in ops]
    assert names.count("aten::linear") == 2 and names.count("aten::silu") == 2 and names.count("aten::add") == 2
    assert "aten::mm" not in names and "aten::addmm" not in names  # inside aten::linear
    assert all(p.device == "cpu" and p.seconds > 0 for p in ops)


def test_profiled_ops_are_counted_as_capture_counts_them(cpu_trace):
    linear = next(profiled_op(p) for p in read_profiler_trace(cpu_trace) if p.name == "aten::linear")
    assert linear["op"] == "matmul" and linear["dtype"] == "fp32"
    assert linear["flop"] == 2 * 32 * 64 * 128 and linear["shape"] == (32, 128)
    assert linear["bytes_read"] == 4 * (32 * 64 + 128 * 64) and linear["bytes_written"] == 4 * 32 * 128


def test_gpu_kernel_times_are_summed_per_op(tmp_path):
    events = [{"ph": "X", "cat": "cpu_op", "name": "aten::add", "ts": 0, "dur": 30, "pid": 1, "tid": 1,
               "args": {"External id": 3, "Input Dims": [[8, 4], [8, 4]], "Input type": ["float", "float"]}},
              {"ph": "X", "cat": "kernel", "name": "k1", "ts": 5, "dur": 2, "pid": 0, "tid": 7,
               "args": {"External id": 3}},
              {"ph": "X", "cat": "kernel", "name": "k2", "ts": 8, "dur": 3, "pid": 0, "tid": 7,
               "args": {"External id": 3}}]
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps({"traceEvents": events}))
    (op,) = read_profiler_trace(path)
    assert op.device == "cuda" and op.seconds == pytest.approx(5e-6)


@pytest.mark.parametrize(("text", "message"), [
    ("not json", r"not JSON \(line 1: Expecting value\), expected a torch.profiler Chrome trace"),
    ('{"events": []}', r"got no 'traceEvents' list, expected a torch.profiler Chrome trace"),
    ('{"traceEvents": [{"ph": "X", "cat": "cpu_op", "name": "aten::add", "ts": 0, "dur": -1}]}',
     r"event 'aten::add' has dur -1, expected a non-negative finite number of microseconds"),
])
def test_bad_traces_are_one_line(tmp_path, text, message):
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(CalibrationError, match=message) as err:
        read_profiler_trace(path)
    assert "\n" not in str(err.value)


def test_the_cli_refuses_a_bad_trace_with_exit_2_and_writes_nothing(tmp_path, cpu_trace):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    out = tmp_path / "p.yaml"
    for trace in (bad, cpu_trace):  # not JSON; a CPU trace has no GPU kernel times
        r = subprocess.run([sys.executable, "-m", "hetsim.cli", "calibrate", "--trace", str(trace), "--gpu", "h100",
                            "-o", str(out)], capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
        assert r.stderr.startswith("hetsim: error: --trace")
        assert not out.exists()
