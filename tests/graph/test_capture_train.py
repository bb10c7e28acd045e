"""capture_training(): forward + backward ATen ops of one step, FLOPs against FlopCounterMode."""

from __future__ import annotations

import networkx as nx
import pytest
import torch

import hetsim
from hetsim.graph.capture_flops import flop_counter_mode
from hetsim.graph.capture_train import BACKWARD_PREFIX, capture_training
from hetsim.graph.catalog import build_model, model_graph
from hetsim.graph.schema import validate_graph

MATRIX = ("matmul", "attention", "conv")
BATCH, SEQ, VOCAB = 2, 16, 256


def matrix_flop_of(g: nx.DiGraph) -> int:
    return sum(d["flop"] for _, d in g.nodes(data=True) if d["op"] in MATRIX)


@pytest.fixture(scope="module", params=["gpt2-tiny", "llama-tiny"])
def captured(request: pytest.FixtureRequest) -> tuple[str, nx.DiGraph]:
    ids = torch.zeros(BATCH, SEQ, dtype=torch.long, device="meta")
    return request.param, capture_training(build_model(request.param), (ids,), name=request.param)


def test_training_flops_are_three_times_forward(captured: tuple[str, nx.DiGraph]) -> None:
    name, g = captured
    forward = model_graph(name, phase="prefill", batch=BATCH, seq_len=SEQ)
    assert matrix_flop_of(g) / matrix_flop_of(forward) == pytest.approx(3.0, rel=0.05)


def test_training_flops_equal_flop_counter_mode_on_real_step(captured: tuple[str, nx.DiGraph]) -> None:
    name, g = captured
    torch.manual_seed(0)
    model = build_model(name, device="cpu", dtype="fp32")
    ids = torch.randint(0, VOCAB, (BATCH, SEQ))
    with flop_counter_mode() as fc:
        logits = model(ids)
        torch.nn.functional.cross_entropy(logits.flatten(0, -2), torch.zeros(BATCH * SEQ, dtype=torch.long)).backward()
    assert matrix_flop_of(g) == pytest.approx(fc.get_total_flops(), rel=0.01)


def test_graph_validates_simulates_and_marks_backward(captured: tuple[str, nx.DiGraph]) -> None:
    name, g = captured
    validate_graph(g)
    assert g.graph["phase"] == "train" and g.graph["batch"] == BATCH and g.graph["seq_len"] == SEQ
    backward = [n for n in g if n.startswith(BACKWARD_PREFIX)]
    forward = [n for n in g if not n.startswith(BACKWARD_PREFIX)]
    assert backward and forward
    assert any(g.nodes[n]["op"] == "attention" and g.nodes[n]["flop"] > 0 for n in backward)
    # every parameter is read by some op, by its qualified name (a tied one by its first name)
    read = {w for _, d in g.nodes(data=True) for w in d["weights"]}
    params = {k for k, _ in build_model(name).named_parameters()}
    assert params <= read
    assert hetsim.simulate(g, "h100-sxm") is not None


@pytest.mark.slow
def test_full_size_gpt2_training_step_costs_three_forwards():
    import torch

    from hetsim.graph.capture_train import capture_training
    from hetsim.graph.catalog import build_model, model_graph

    ids = torch.zeros((1, 128), dtype=torch.long, device="meta")
    step = capture_training(build_model("gpt2", device="meta", dtype="fp32"), (ids,))
    forward = model_graph("gpt2", phase="prefill", batch=1, seq_len=128, dtype="fp32")

    def matrix(g):
        return sum(d["flop"] for _, d in g.nodes(data=True) if d["op"] in ("matmul", "attention"))

    assert matrix(step) / matrix(forward) == pytest.approx(3.0, rel=0.05)  # measured 3.009


@pytest.mark.parametrize("name", ["gpt2-tiny", "llama-tiny"])
def test_the_optimizer_updates_every_parameter_once_after_its_gradient(name: str) -> None:
    from hetsim.graph.catalog import model_training_graph

    step = model_training_graph(name, batch=BATCH, seq_len=SEQ, dtype="bf16", optimizer="adamw")
    model = build_model(name)
    params = {}  # tied tensors once, by their first name
    for key, p in model.named_parameters():
        params.setdefault(key, p.numel())
    updates = {op.removeprefix("update."): d for op, d in step.nodes(data=True) if op.startswith("update.")}
    assert set(updates) == set(params)
    tied = {key for key, p in model.named_parameters(remove_duplicate=False)} - set(params)
    for param, d in updates.items():
        (grad_op,) = step.predecessors(f"update.{param}")
        assert grad_op.startswith(BACKWARD_PREFIX)  # a backward op computes the gradient
        if grad_op.startswith(f"{BACKWARD_PREFIX}accumulate."):  # a tied weight: one gradient per use, summed
            assert len(list(step.predecessors(grad_op))) == 2 and tied
        assert step.edges[grad_op, f"update.{param}"]["bytes"] == 2 * params[param]  # bf16 gradient, alive until read
        assert d["flop"] == 12 * params[param]  # AdamW, as training_step counts it
        assert d["weights"][f"master:{param}"] == 4 * params[param] and f"grad:{param}" not in d["weights"]
    assert step.graph["batch"] == BATCH and step.graph["phase"] == "train"
    sgd = model_training_graph(name, batch=BATCH, seq_len=SEQ, optimizer="sgd")
    assert sum(d["flop"] for op, d in sgd.nodes(data=True) if op.startswith("update.")) == 2 * sum(params.values())


def test_an_unknown_optimizer_is_one_line() -> None:
    from hetsim.errors import GraphError

    with pytest.raises(GraphError, match=r"^capture_training.optimizer: got 'lion', expected one of adamw, sgd$"):
        capture_training(build_model("gpt2-tiny"), (torch.zeros(1, 4, dtype=torch.long, device="meta"),),
                         optimizer="lion")


def test_tensor_parallel_refuses_a_captured_step() -> None:
    from hetsim.errors import GraphError
    from hetsim.graph.catalog import model_training_graph
    from hetsim.graph.parallel import tensor_parallel

    step = model_training_graph("llama-tiny", batch=1, seq_len=8)
    with pytest.raises(GraphError, match=r"^tensor_parallel: got a training step captured from autograd's joint"):
        tensor_parallel(step, ["gpu0", "gpu1"])
    assert tensor_parallel(step, ["gpu0"]).number_of_nodes() == step.number_of_nodes()  # one rank only pins
