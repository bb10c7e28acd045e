"""Training-step scenarios: captured backward graphs by default, data parallel replicas, one-line errors."""

from __future__ import annotations

import pytest
import yaml

from hetsim.cli import main
from hetsim.graph.catalog import model_graph, model_training_graph
from hetsim.scenario import parse_scenario, run_scenario

OUTPUTS = {"gantt": False, "trace": False, "ops_csv": False}


def scenario(tmp_path, **workload):
    w = {"model": "llama-tiny", "phase": "train", "batch": 4, "seq_len": 32, **workload}
    return parse_scenario({"platform": "dgx-h100", "workload": w, "outputs": {"dir": str(tmp_path), **OUTPUTS}})


def flops(graph, prefix=""):
    return sum(d["flop"] for op, d in graph.nodes(data=True) if op.startswith(prefix))


def test_a_training_step_is_captured_from_autograd_by_default(tmp_path):
    s = scenario(tmp_path)
    assert s.workload["backward"] == "captured"
    result, _ = run_scenario(s)
    g = result.graph
    assert any(op.startswith("grad.") and d["target"].startswith("aten.") for op, d in g.nodes(data=True))
    assert flops(g) == flops(model_training_graph("llama-tiny", batch=4, seq_len=32))
    matrix = sum(d["flop"] for op, d in g.nodes(data=True) if d["op"] in ("matmul", "attention"))
    forward = sum(d["flop"] for _, d in model_graph("llama-tiny", batch=4, seq_len=32).nodes(data=True)
                  if d["op"] in ("matmul", "attention"))
    assert matrix / forward == pytest.approx(3.0, rel=0.05)
    assert result.summary["mfu"] > 0 and result.energy_j > 0


def test_data_parallel_replicas_are_captured_at_their_share_of_the_batch(tmp_path):
    result, _ = run_scenario(scenario(tmp_path, parallel={"dp": 2}))
    g = result.graph
    one = model_training_graph("llama-tiny", batch=2, seq_len=32)
    assert g.graph["batch"] == 4 and g.graph["dp"] == 2
    assert {d["pin"] for op, d in g.nodes(data=True) if op.startswith("dp1/")} == {"gpu1"}
    reduces = {d["group"]: d["comm_bytes"] for _, d in g.nodes(data=True) if d["op"] == "collective"}
    params = {op.removeprefix("update."): sum(one.edges[p, op]["bytes"] for p in one.predecessors(op))
              for op in one if op.startswith("update.")}
    assert reduces == {f"dp_all_reduce:update.{p}": b for p, b in params.items()}  # one per parameter gradient
    assert flops(g, "dp0/") == flops(one)  # replica 0 is the batch-2 step, not a slice of the batch-4 one


def test_pipeline_stages_of_a_captured_step_carry_what_the_estimated_step_puts_there(tmp_path):
    from hetsim.graph.pipeline import stages_of
    from hetsim.graph.training import training_step

    result, _ = run_scenario(scenario(tmp_path, parallel={"pp": 2, "microbatches": 2}))
    g = result.graph
    one = model_training_graph("llama-tiny", batch=2, seq_len=32)  # one microbatch
    assert g.graph["batch"] == 4 and flops(g) == pytest.approx(2 * flops(one) - flops(one, "update."))
    by_unit = {}
    for _, d in g.nodes(data=True):
        by_unit[d["pin"]] = by_unit.get(d["pin"], 0.0) + d["flop"]
    # the same split of the work as the estimated step's stages (layers 0 | layer 1, head and loss)
    estimated = training_step(model_graph("llama-tiny", batch=4, seq_len=32))
    stage = stages_of(estimated, 2)
    share = sum(d["flop"] for op, d in estimated.nodes(data=True) if stage[op] == 0) / flops(estimated)
    assert by_unit["gpu0"] / (by_unit["gpu0"] + by_unit["gpu1"]) == pytest.approx(share, abs=0.02)
    updates = {op.split("@")[0]: d["pin"] for op, d in g.nodes(data=True) if op.startswith("update.")}
    assert updates["update.layers.0.mlp.up_proj.weight"] == "gpu0" and updates["update.lm_head.weight"] == "gpu1"


def test_tensor_parallel_training_keeps_the_estimated_backward(tmp_path):
    s = scenario(tmp_path, parallel={"tp": 2})
    assert s.workload["backward"] == "estimated"
    result, _ = run_scenario(s)
    assert any(op.endswith("grad.lm_head") or "/grad." in op or op.startswith("grad.") for op in result.graph)


@pytest.mark.parametrize(("workload", "message"), [
    ({"backward": "captured", "parallel": {"tp": 2}}, "workload.backward: got 'captured', expected 'estimated'"),
    ({"backward": "exact"}, "workload.backward: got 'exact', expected one of captured, estimated"),
    ({"phase": "prefill", "backward": "captured"}, "workload.backward: got 'captured', expected it only with"),
    ({"batch": 3, "parallel": {"dp": 2}}, "workload.batch: got 3, expected a multiple of dp x microbatches (2)"),
    ({"batch": 4, "parallel": {"pp": 2, "microbatches": 8}}, "workload.batch: got 4, expected a multiple of dp x"),
])
def test_bad_backward_settings_exit_2_with_one_line(tmp_path, capsys, workload, message):
    w = {"model": "llama-tiny", "phase": "train", "batch": 4, "seq_len": 32, **workload}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"platform": "dgx-h100", "workload": w, "outputs": {"dir": str(tmp_path / "o")}}))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"hetsim: error: {message}"), err
