"""The hetsim command: one JSON object on stdout, the output folder, and clean bad-input errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hetsim.graph.io import graph_to_dict
from hetsim.graph.schema import add_op, new_graph
from hetsim.report.chrome import check_chrome_trace
from hetsim.sim.launch import eager_launch_s
from hetsim.spec.loader import load_platform

ROOT = Path(__file__).resolve().parents[1]


def hetsim(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hetsim.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart") / "out"
    return hetsim("run", "scenarios/quickstart.yaml", "--json", "--out", str(out)), out


def test_quickstart_prints_exactly_one_json_object(quickstart):
    proc, _ = quickstart
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # raises if stdout holds anything else
    assert proc.stdout.strip().count("\n") == 0
    assert summary["platform"] == "gh200" and summary["graph"] == "llama-3-8b"
    assert summary["makespan_s"] > 0 and summary["energy_j"] > 0
    assert set(summary["peak_memory_bytes"]) == {"lpddr5x", "hbm3"}
    assert set(summary["utilization"]) == {"cpu", "gpu"}
    assert summary["peak_memory_bytes"]["hbm3"] > 14e9  # ~16 GB of bf16 weights live on the GPU
    # the GPU's first kernel waits for its eager launch; the host runs ahead of every later (long) one
    launch = eager_launch_s(load_platform("gh200").unit("gpu"))
    assert summary["makespan_s"] == pytest.approx(summary["predicted_makespan_s"] + launch, rel=1e-9)


def test_quickstart_writes_the_output_folder(quickstart):
    _, out = quickstart
    assert sorted(p.name for p in out.iterdir()) == ["gantt.png", "ops.csv", "summary.json", "trace.json"]
    trace = json.loads((out / "trace.json").read_text())
    check_chrome_trace(trace)
    names = {e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {"cpu", "gpu"} <= names
    assert any(e["ph"] == "C" for e in trace["traceEvents"])
    assert (out / "gantt.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (out / "ops.csv").read_text().splitlines()
    assert len(rows) == 1 + json.loads((out / "summary.json").read_text())["ops"]


def test_set_overrides_a_field(tmp_path):
    proc = hetsim("run", "scenarios/mobile_soc.yaml", "--json", "--out", str(tmp_path / "o"),
                  "--set", "workload.seq_len=32", "--set", "outputs.gantt=false")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["seq_len"] == 32
    assert not (tmp_path / "o" / "gantt.png").exists()


def test_presets_and_schedulers_list_as_json():
    presets = json.loads(hetsim("presets", "--json").stdout)
    assert {"gh200", "mobile-soc", "dgx-h100", "tpu-v4-2x2"} <= set(presets)
    schedulers = json.loads(hetsim("schedulers", "--json").stdout)
    assert {"eft", "single", "round_robin"} <= set(schedulers)


def scenario(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


SMALL = {"model": "gpt2", "phase": "prefill", "batch": 1, "seq_len": 16, "dtype": "fp32"}
PLATFORM = yaml.safe_load((ROOT / "hetsim/spec/presets/h100-sxm.yaml").read_text())


def cyclic_graph(tmp_path: Path) -> str:
    g = new_graph("loop")
    add_op(g, "a")
    add_op(g, "b")
    g.add_edge("a", "b", bytes=1)
    g.add_edge("b", "a", bytes=1)
    path = tmp_path / "loop.json"
    path.write_text(json.dumps(graph_to_dict(g)))
    return str(path)


def with_link_bandwidth(value: str) -> dict:
    platform = yaml.safe_load(yaml.safe_dump(PLATFORM))
    platform["memories"].append({"name": "host", "capacity": "1 TB", "bandwidth": "300 GB/s"})
    platform["links"] = [{"name": "pcie", "a": platform["memories"][0]["name"], "b": "host", "bandwidth": value}]
    return platform


BAD = {
    "unknown preset": ({"platform": "h900", "workload": SMALL}, r"platform: got 'h900', expected a preset name"),
    "negative bandwidth": ({"platform": with_link_bandwidth("-5 GB/s"), "workload": SMALL},
                           r"links.pcie.bandwidth: got '-5 GB/s', expected a positive bandwidth"),
    "3 parsecs": ({"platform": with_link_bandwidth("3 parsecs"), "workload": SMALL},
                  r"links.pcie.bandwidth: got '3 parsecs', expected a bandwidth"),
    "missing workload": ({"platform": "h100-sxm"}, r"workload: missing"),
    "missing seq_len": ({"platform": "h100-sxm", "workload": {"model": "gpt2"}}, r"workload.seq_len: missing"),
    "unknown field": ({"platform": "h100-sxm", "workload": SMALL, "colour": "red"}, r"scenario.colour: unknown"),
    "unknown model": ({"platform": "h100-sxm", "workload": {**SMALL, "model": "gpt5"}}, r"workload.model: got 'gpt5'"),
    "unknown scheduler": ({"platform": "h100-sxm", "workload": SMALL, "scheduler": "magic"},
                          r"scheduler: got 'magic'"),
    "bad batch": ({"platform": "h100-sxm", "workload": {**SMALL, "batch": 0}}, r"workload.batch: got 0"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gives_one_line_and_exit_2(case, tmp_path):
    data, message = BAD[case]
    out = tmp_path / "out"
    proc = hetsim("run", str(scenario(tmp_path, data)), "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hetsim: error: "), proc.stderr
    assert __import__("re").search(message, lines[0]), lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not out.exists()  # nothing half-written


def test_cyclic_graph_is_refused(tmp_path):
    data = {"platform": "h100-sxm", "workload": {"graph": cyclic_graph(tmp_path)}}
    proc = hetsim("run", str(scenario(tmp_path, data)), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "hetsim: error: graph 'loop': got a cycle a -> b -> a, expected a DAG"


def test_missing_scenario_file_and_bad_set(tmp_path):
    proc = hetsim("run", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and "expected an existing scenario YAML file" in proc.stderr
    proc = hetsim("run", "scenarios/quickstart.yaml", "--set", "workload.batch")
    assert proc.returncode == 2 and "expected key.path=value" in proc.stderr
    proc = hetsim("run", "scenarios/quickstart.yaml", "--set", "wrkload.batch=2")
    assert proc.returncode == 2 and "unknown scenario field 'wrkload'" in proc.stderr


def test_graph_file_workload_runs(tmp_path):
    g = new_graph("pair")
    add_op(g, "mm", op="matmul", flop=2e12, bytes_read=1e8, dtype="bf16")
    add_op(g, "act", op="elementwise", flop=1e7, bytes_read=2e7, bytes_written=2e7, dtype="bf16")
    g.add_edge("mm", "act", bytes=2e7)
    (tmp_path / "g.json").write_text(json.dumps(graph_to_dict(g)))
    data = {"platform": "h100-sxm", "workload": {"graph": "g.json"}, "outputs": {"gantt": False}}
    proc = hetsim("run", str(scenario(tmp_path, data)), "--json", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    # matmul: 2e12 / (989e12 * matmul efficiency) + overhead, then the elementwise op
    assert summary["ops"] == 2 and 2e-3 < summary["makespan_s"] < 4e-3


def test_a_closed_pipe_ends_quietly(tmp_path):
    import json
    import subprocess
    import sys

    from hetsim.graph.generators import random_layered

    instance = tmp_path / "big.json"  # thousands of lines: far more than a pipe holds
    instance.write_text(json.dumps(random_layered(3000, 4, seed=1)))
    proc = subprocess.run(f"{sys.executable} -m hetsim.cli schedule {instance} --scheduler eft | head -1",
                          shell=True, capture_output=True, text=True, cwd=ROOT)
    assert proc.stdout.startswith("eft: makespan") and proc.stderr == ""
