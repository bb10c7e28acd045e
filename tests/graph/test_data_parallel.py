"""Data parallelism by hand, and a 3D (tensor x pipeline x data) training scenario end to end."""

from __future__ import annotations

import pytest

import hetsim
from hetsim.errors import GraphError
from hetsim.graph.data_parallel import data_parallel
from hetsim.graph.schema import add_op, new_graph
from hetsim.graph.training import training_step
from hetsim.scenario import parse_scenario, run_scenario


def one_layer():
    g = new_graph("one", phase="prefill", batch=8)
    add_op(g, "fc", op="matmul", flop=800, bytes_read=880, bytes_written=80, dtype="bf16", module="fc",
           weights={"fc.weight": 800})
    add_op(g, "act", op="elementwise", flop=40, bytes_read=80, bytes_written=80, dtype="bf16", module="act")
    g.add_edge("fc", "act", bytes=80)
    return training_step(g)


def test_replicas_split_the_batch_and_reduce_the_gradients_by_hand():
    dp = data_parallel(one_layer(), ["g0", "g1", "g2", "g3"])
    assert dp.graph["batch"] == 8 and dp.graph["dp"] == 4 and dp.nodes["dp3/fc"]["pin"] == "g3"
    assert dp.nodes["dp2/fc"]["flop"] == 200 and dp.nodes["dp2/fc"]["weights"] == {"fc.weight": 800}
    assert dp.edges["dp2/fc", "dp2/act"]["bytes"] == 20
    member = dp.nodes["dp_all_reduce:update.fc@g2"]
    assert (member["collective"], member["comm_bytes"]) == ("all_reduce", 800)
    assert member["ranks"] == ("g0", "g1", "g2", "g3")
    assert list(dp.predecessors("dp2/update.fc")) == ["dp_all_reduce:update.fc@g2"]
    assert list(dp.predecessors("dp_all_reduce:update.fc@g2")) == ["dp2/grad.fc"]


def test_a_gradient_all_reduce_takes_the_ring_time_before_the_updates():
    r = hetsim.simulate(data_parallel(one_layer(), [f"gpu{i}" for i in range(4)]), "dgx-h100", "eft")
    runs = {o.op: o for o in r.trace.ops}
    ar = runs["dp_all_reduce:update.fc@gpu0"]
    assert all(runs[f"dp{i}/update.fc"].start_s >= ar.end_s for i in range(4))
    assert all(runs[f"dp{i}/grad.fc"].end_s <= ar.start_s for i in range(4))


def test_bad_replicas_give_one_line():
    with pytest.raises(GraphError, match=r"^data_parallel.replicas: got \[\], expected"):
        data_parallel(one_layer(), [])
    with pytest.raises(GraphError, match=r"^data_parallel: graph 'one' has no optimizer update"):
        g = new_graph("one")
        add_op(g, "x")
        data_parallel(g, ["g0"])


def test_a_3d_training_scenario_runs(tmp_path):
    scenario = parse_scenario({
        "platform": "dgx-h100",
        "workload": {"model": "llama-tiny", "phase": "train", "batch": 4, "seq_len": 32,
                     "parallel": {"tp": 2, "pp": 2, "dp": 2, "microbatches": 2}},
        "outputs": {"dir": str(tmp_path / "out"), "gantt": False, "trace": False, "ops_csv": False}})
    result, _ = run_scenario(scenario)
    pins = {d["pin"] for _, d in result.graph.nodes(data=True)}
    assert pins == {f"gpu{i}" for i in range(8)}
    groups = {d["group"].split(":")[0].split("/")[-1] for _, d in result.graph.nodes(data=True)
              if d["op"] == "collective"}
    assert groups == {"all_reduce", "dp_all_reduce"}  # tensor-parallel and gradient all-reduces
    assert result.makespan_s > 0 and result.graph.graph["phase"] == "train"
