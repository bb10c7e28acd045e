"""Training steps and pipeline parallelism: FLOPs, memory kinds and 1F1B order by hand."""

from __future__ import annotations

import pytest

import hetsim
from hetsim.errors import GraphError
from hetsim.graph.catalog import model_graph
from hetsim.graph.pipeline import one_f_one_b, pipeline_parallel, stages_of
from hetsim.graph.schema import add_op, new_graph
from hetsim.graph.training import training_step


def mlp(layers: int = 2):
    """fc0 -> act0 -> fc1 -> act1 ...: 800 FLOPs and 800 bytes of bf16 weight per layer."""
    g = new_graph("mlp", phase="prefill", batch=4)
    prev = None
    for i in range(layers):
        add_op(g, f"fc{i}", op="matmul", flop=800, bytes_read=880, bytes_written=80, dtype="bf16",
               module=f"layers.{i}.mlp.up_proj", weights={f"layers.{i}.fc.weight": 800})
        add_op(g, f"act{i}", op="elementwise", flop=40, bytes_read=80, bytes_written=80, dtype="bf16",
               module=f"layers.{i}.act")
        g.add_edge(f"fc{i}", f"act{i}", bytes=80)
        if prev:
            g.add_edge(prev, f"fc{i}", bytes=80)
        prev = f"act{i}"
    return g


def test_backward_and_update_by_hand():
    t = training_step(mlp(1))
    assert t.graph["phase"] == "train"
    grad = t.nodes["grad.fc0"]
    assert grad["flop"] == 1600  # input and weight gradients
    assert grad["bytes_written"] == 800 and grad["inplace_bytes"] == 800  # no input needs a gradient
    update = t.nodes["update.fc0"]
    # AdamW, mixed precision: bf16 weight and gradient, fp32 master, m and v = 16 bytes per parameter
    assert sum(update["weights"].values()) == 400 * 16 and update["flop"] == 12 * 400
    assert t.edges["grad.fc0", "update.fc0"]["bytes"] == 0  # ordering only: it reads the gradient buffer
    assert t.edges["fc0", "grad.act0"]["bytes"] == 80  # act0's input saved for its backward


def test_a_training_step_costs_three_forwards_on_a_real_model():
    g = model_graph("llama-tiny", phase="prefill", batch=2, seq_len=32)
    t = training_step(g)
    fwd = sum(d["flop"] for _, d in g.nodes(data=True))
    train = sum(d["flop"] for op, d in t.nodes(data=True) if not op.startswith("update."))
    assert 2.9 < train / fwd < 3.3  # Narayanan et al. 2021: 3x for matmul-dominated models


def test_training_needs_a_prefill_graph_with_parameters():
    with pytest.raises(GraphError, match=r"^training_step: got a 'decode' graph"):
        training_step(model_graph("llama-tiny", phase="decode", batch=1, seq_len=8))
    g = new_graph("frozen", phase="prefill")
    add_op(g, "x", op="elementwise", flop=1, module="a")
    with pytest.raises(GraphError, match=r"^training_step: graph 'frozen' has no trainable parameter"):
        training_step(g)


def test_one_f_one_b_by_hand():
    order = one_f_one_b(3, 4)
    per_stage = {s: [(kind, k) for st, kind, k in order if st == s] for s in range(3)}
    assert per_stage[0] == [("F", 0), ("F", 1), ("F", 2), ("B", 0), ("F", 3), ("B", 1), ("B", 2), ("B", 3)]
    assert per_stage[2] == [("F", 0), ("B", 0), ("F", 1), ("B", 1), ("F", 2), ("B", 2), ("F", 3), ("B", 3)]
    seen = set()
    for s, kind, k in order:  # data flow: a forward after the previous stage's, a backward after the next's
        assert kind == "B" or s == 0 or (s - 1, "F", k) in seen
        assert kind == "F" or s == 2 or (s + 1, "B", k) in seen
        seen.add((s, kind, k))


def test_stages_and_microbatches_by_hand():
    t = training_step(mlp(4))
    assert {op: s for op, s in stages_of(t, 2).items() if op.startswith(("fc", "grad.fc", "update.fc"))} == {
        "fc0": 0, "fc1": 0, "fc2": 1, "fc3": 1, "grad.fc0": 0, "grad.fc1": 0, "grad.fc2": 1, "grad.fc3": 1,
        "update.fc0": 0, "update.fc1": 0, "update.fc2": 1, "update.fc3": 1}
    pp = pipeline_parallel(t, [["u0"], ["u1"]], microbatches=2)
    assert pp.nodes["fc3#1@u1"]["flop"] == 400 and pp.nodes["fc3#1@u1"]["weights"] == {"layers.3.fc.weight": 800}
    assert sorted(pp.predecessors("update.fc0@u0")) == ["grad.fc0#0@u0", "grad.fc0#1@u0"]
    assert pp.edges["act1#0@u0", "fc2#0@u1"]["bytes"] == 40  # half the batch crosses to the next stage
    with pytest.raises(GraphError, match=r"^pipeline_parallel.stages: got 5 stages, expected at most the 4 layers"):
        pipeline_parallel(t, [[f"u{i}"] for i in range(5)])


def test_a_pipelined_step_runs_in_1f1b_order_with_its_bubble():
    # 4 stages of one layer, 8 microbatches
    t = training_step(mlp(4))
    pp = pipeline_parallel(t, [[f"u{i}"] for i in range(4)], microbatches=8)
    platform = {"name": "four", "memories": [{"name": "m", "capacity": "1 GB", "bandwidth": "1 GB/s"}],
                "units": [{"name": f"u{i}", "kind": "gpu", "memory": "m", "peak": {"bf16": "1 MFLOP/s"},
                           "power_states": [{"name": "p0", "freq": "1 GHz", "voltage": "1 V", "static_power": "1 W",
                                             "dynamic_power": "1 W"}]} for i in range(4)]}
    r = hetsim.simulate(pp, platform, "eft")
    u0 = [o.op.split("@")[0] for o in r.trace.ops if o.unit == "u0" and o.op.startswith(("fc0#", "grad.fc0#"))]
    assert u0[:6] == ["fc0#0", "fc0#1", "fc0#2", "fc0#3", "grad.fc0#0", "fc0#4"]  # 3 warm-up forwards, then 1F1B
    runs = {o.op: o for o in r.trace.ops}
    # the first backward on stage 0 waits for microbatch 0 to cross every stage and come back
    assert runs["grad.fc0#0@u0"].start_s > runs["grad.fc3#0@u3"].end_s > runs["fc3#0@u3"].end_s
    assert all(runs[f"update.fc{i}@u{i}"].start_s >= runs[f"grad.fc{i}#7@u{i}"].end_s for i in range(4))


def test_the_embeddings_optimizer_state_is_sized_in_the_graphs_dtype():
    # an embedding op does no arithmetic and carries no dtype; its bf16 table still has fp32 states
    step = training_step(model_graph("llama-tiny", batch=1, seq_len=8, dtype="bf16"))
    (update,) = [d for op, d in step.nodes(data=True) if op.startswith("update.") and "embed_tokens.weight" in
                 d["weights"]]
    table = update["weights"]["embed_tokens.weight"]
    assert update["weights"]["master:embed_tokens.weight"] == 2 * table  # fp32 copy of a bf16 table
    assert update["flop"] == 12 * table / 2  # AdamW, 12 FLOPs per parameter
