"""measure(): end-to-end and per-op timings of a real module, keyed by the captured graph's op ids."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

import hetsim  # noqa: E402
from hetsim.validate.measure import Measurement, MeasurementError, default_threads, measure  # noqa: E402

FAST = {"threads": 1, "min_run_time": 0.05, "repeats": 5}



class Cached(torch.nn.Module):
    """Takes a nested keyword input, like a KV cache."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(32, 32)

    def forward(self, x: torch.Tensor, *, cache: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        k, v = cache[0]
        return torch.cat((k, self.proj(x)), dim=1) * v.mean()


@pytest.fixture(scope="module")
def measured(mlp):
    module, args = mlp
    return measure(module, args, **FAST)


def test_per_op_names_are_the_captured_op_ids(mlp, measured):
    module, args = mlp
    graph = hetsim.capture(module, args)
    assert set(measured.op_median_s) == set(graph.nodes)
    assert measured.op_target["linear"] == "aten.linear.default"
    assert {measured.op_target[op] for op in graph.nodes} == {graph.nodes[op]["target"] for op in graph.nodes}


def test_times_are_positive_and_the_per_op_sum_tracks_end_to_end(measured):
    assert isinstance(measured, Measurement)
    assert all(t > 0 for t in measured.op_median_s.values())
    assert measured.e2e_median_s > 0 and measured.e2e_iqr_s >= 0
    assert len(measured.e2e_times_s) >= FAST["repeats"] and measured.passes >= FAST["repeats"]
    assert measured.sum_op_median_s == pytest.approx(sum(measured.op_median_s.values()))
    assert measured.sum_op_median_s == pytest.approx(measured.e2e_median_s, rel=0.3)
    # a whole interpreter pass costs at least its timed calls
    assert measured.interpreter_median_s >= 0.8 * measured.sum_op_median_s
    # the two linears (64x256x1024 each) dominate the LayerNorm and the GELU
    linears = measured.op_median_s["linear"] + measured.op_median_s["linear_1"]
    assert linears > measured.op_median_s["layer_norm"] + measured.op_median_s["gelu"]


def test_threads_are_pinned_and_restored(mlp):
    module, args = mlp
    before = torch.get_num_threads()
    m = measure(module, args, threads=1, min_run_time=0.01, repeats=2)
    assert m.threads == 1 and torch.get_num_threads() == before
    assert default_threads() == max(1, (__import__("os").cpu_count() or 1) - 1)


def test_to_dict_is_json_ready(measured):
    import json

    d = json.loads(json.dumps(measured.to_dict()))
    assert d["threads"] == 1 and d["e2e_median_s"] == measured.e2e_median_s
    assert set(d["op_median_s"]) == set(measured.op_median_s)


def test_keyword_and_nested_inputs():
    module = Cached().eval()
    x = torch.randn(2, 4, 32)
    cache = [(torch.randn(2, 3, 32), torch.randn(2, 3, 32))]
    m = measure(module, (x,), {"cache": cache}, threads=1, min_run_time=0.01, repeats=2)
    graph = hetsim.capture(module, (x,), {"cache": cache})
    assert set(m.op_median_s) == set(graph.nodes)


@pytest.mark.parametrize(("options", "field"), [({"device": "tpu"}, "device"), ({"threads": 0}, "threads"),
                                                ({"threads": 1, "repeats": 0}, "measure")])
def test_bad_options_raise_one_line(mlp, options, field):
    module, args = mlp
    with pytest.raises(MeasurementError, match=f"^{field}") as info:
        measure(module, args, **options)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_a_clear_error(mlp):
    module, args = mlp
    with pytest.raises(MeasurementError, match="CUDA is not available"):
        measure(module, args, device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_measure_on_cuda(mlp):
    module = copy.deepcopy(mlp[0]).cuda()
    args = (torch.randn(64, 256, device="cuda"),)
    m = measure(module, args, device="cuda", threads=1, min_run_time=0.05, repeats=3)
    assert set(m.op_median_s) == set(hetsim.capture(module, args).nodes)
    assert all(t > 0 for t in m.op_median_s.values()) and m.e2e_median_s > 0
