"""Multi-GPU deployments end to end: out of memory on one GPU, tensor parallel on eight, the
all-reduces of scenarios/tp_llama.yaml on the link tracks of trace.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hetsim
from hetsim.cli import main
from hetsim.errors import OutOfMemoryError
from hetsim.graph.catalog import model_graph
from hetsim.graph.parallel import tensor_parallel

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def llama70_decode():
    return model_graph("llama-3-70b", phase="decode", batch=1, seq_len=4096)


@pytest.mark.slow
def test_llama70b_decode_does_not_fit_one_80gb_gpu(llama70_decode):
    resident = sum(d["weight_bytes"] for _, d in llama70_decode.nodes(data=True))  # weights + KV cache
    with pytest.raises(OutOfMemoryError, match=rf"^memory 'hbm': weights and other resident inputs need "
                                               rf"{resident:.0f} bytes \(142.\d\d GB\), expected at most its "
                                               r"capacity 80000000000 bytes \(80.00 GB\)$"):
        hetsim.simulate(llama70_decode, "h100-sxm")


@pytest.mark.slow
def test_llama70b_decode_fits_eight_gpus_with_tensor_parallelism(llama70_decode):
    graph = llama70_decode
    resident = sum(d["weight_bytes"] for _, d in graph.nodes(data=True))
    replicated = sum(d["weight_bytes"] for _, d in graph.nodes(data=True) if d["op"] == "norm")
    activations = max(d["bytes_written"] for _, d in graph.nodes(data=True))
    r = hetsim.simulate(tensor_parallel(graph, [f"gpu{i}" for i in range(8)]), "dgx-h100")
    for i in range(8):
        peak = r.peak_memory_bytes[f"hbm{i}"]
        # weights and KV cache split eight ways, norms replicated, a few live activations
        assert resident / 8 <= peak <= resident / 8 + replicated + 16 * activations
    assert r.makespan_s > 0 and len({t.links for t in r.trace.transfers}) >= 8


@pytest.mark.slow
def test_tp_llama_scenario_shows_all_reduces_on_the_link_tracks(tmp_path):
    out = tmp_path / "tp"
    assert main(["run", str(ROOT / "scenarios/tp_llama.yaml"), "--out", str(out)]) == 0
    events = json.loads((out / "trace.json").read_text())["traceEvents"]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    processes = {e["pid"]: e["args"]["name"] for e in events if e.get("name") == "process_name"}
    reduces = [e for e in events if e.get("ph") == "X" and e["name"].startswith("all_reduce:")
               and processes[e["pid"]] == "links"]
    # 32 layers x 2 blocks + the embedding; a 2-rank ring: 2 steps x 2 messages, each on 2 links
    assert len({e["name"].split(" -> ")[0].rsplit("@", 1)[0] for e in reduces}) == 65
    assert {threads[(e["pid"], e["tid"])].split(" #")[0] for e in reduces} == {"nvlink0", "nvlink1"}


@pytest.mark.parametrize(("parallel", "message"), [
    ({"tp": 9}, r"^workload.parallel.tp: got 9, expected at most 8 \(the accelerators of 'dgx-h100'\)$"),
    ({"tp": 2, "units": ["gpu0", "tpu9"]}, r"^workload.parallel.units: got 'tpu9', expected units of 'dgx-h100'"),
    ({"tp": 2, "units": ["gpu0"]}, r"^workload.parallel.units: got \['gpu0'\], expected a list of 2 unit names$"),
    ({"tp": 4, "pp": 4}, r"^workload.parallel: got tp x pp x dp = 4 x 4 x 1 = 16 units, expected at most 8"),
    ({"zz": 2}, r"^workload.parallel.zz: unknown field"),
])
def test_bad_parallel_settings_give_one_line(parallel, message):
    from hetsim.errors import ScenarioError
    from hetsim.scenario import parallel_units, parse_scenario
    from hetsim.spec.loader import load_platform

    with pytest.raises(ScenarioError, match=message):
        scenario = parse_scenario({"platform": "dgx-h100", "workload": {"model": "llama-tiny", "seq_len": 8,
                                                                        "parallel": parallel}})
        parallel_units(scenario.workload["parallel"], load_platform("dgx-h100"))


def test_default_units_are_the_first_accelerators():
    from hetsim.scenario import parallel_units
    from hetsim.spec.loader import load_platform

    assert parallel_units({"tp": 3, "pp": 1, "dp": 1, "units": None}, load_platform("dgx-h100")) == [
        "gpu0", "gpu1", "gpu2"]
