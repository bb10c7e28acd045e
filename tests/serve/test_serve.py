"""Request-level serving simulation: hand-checked iterations, KV admission/preemption, Little's law."""

from __future__ import annotations

import csv

import pytest
from hetsim_testing import little

from hetsim.errors import ScenarioError
from hetsim.serve import Request, Workload, fit_iteration_model, make_requests, serve

MODEL, PLATFORM = "llama-tiny", "h100-sxm"
GRID = {"prefill_grid": (16, 64, 128, 256), "decode_grid": ((1, 32), (8, 128), (16, 64), (32, 255))}


@pytest.fixture(scope="module")
def im():
    return fit_iteration_model(MODEL, PLATFORM, **GRID)


def run(requests, **kw):
    return serve(MODEL, PLATFORM, requests, **GRID, **kw)


def test_fit_is_close_to_the_simulated_grid_and_kv_budget_follows_the_config(im):
    assert im.max_rel_error < 0.10
    # llama-tiny: 2 layers × 2 kv heads × head_dim 16 × 2 (K and V) × 2 bytes
    assert im.kv_bytes_per_token == 2 * 2 * 2 * 16 * 2
    assert im.kv_capacity_tokens == int((80e9 - im.weight_bytes) // im.kv_bytes_per_token)
    from hetsim.serve.iteration import _phase_cached

    hits = _phase_cached.cache_info().hits
    assert fit_iteration_model(MODEL, PLATFORM, **GRID) == im
    assert _phase_cached.cache_info().hits == hits + 2  # both phases come from the cache


def test_one_request_alone_is_one_prefill_then_out_minus_one_decodes(im):
    p, o = 20, 5
    res = run([Request(0, 0.5, p, o)])
    (rec,) = res.records
    prefill = im.iteration([p])[0]
    decodes = sum(im.iteration([], 1, p + k)[0] for k in range(o - 1))
    assert rec.ttft_s == pytest.approx(prefill, rel=1e-12)
    assert rec.e2e_s == pytest.approx(prefill + decodes, rel=1e-12)
    assert rec.tpot_s == pytest.approx(decodes / (o - 1), rel=1e-12)
    assert res.iterations == o


def test_chunked_prefill_splits_a_long_prompt_by_the_token_budget(im):
    (rec,) = run([Request(0, 0.0, 100, 1)], token_budget=32).records
    chunks = ((32, 0), (32, 32), (32, 64), (4, 96))  # (chunk, tokens of the prompt already cached)
    assert rec.ttft_s == pytest.approx(sum(im.iteration([n], prefill_cached=[c])[0] for n, c in chunks), rel=1e-12)
    # the chunks' attention adds up to the whole prompt's: only the per-iteration intercept is paid 4 times
    a = im.prefill_time[0]
    assert rec.ttft_s - 4 * a == pytest.approx(im.iteration([100])[0] - a, rel=1e-9)
    assert rec.finish_s == rec.first_token_s


def test_kv_preemption_by_hand(im):
    # capacity 30: both 10-token prompts fit; after 5 decodes each holds 15 tokens (30 in all), so
    # the next step preempts the newest (id 1); id 0 finishes alone (4 decodes), then id 1
    # re-prefills prompt + its 6 tokens (16) and decodes its last 3.
    reqs = [Request(0, 0.0, 10, 10), Request(1, 0.0, 10, 10)]
    res = run(reqs, kv_capacity_tokens=30)
    a, b = res.records
    it = im.iteration
    t_pre = it([10, 10])[0]
    t_both = sum(it([], 2, 2 * (10 + k))[0] for k in range(5))
    t_alone = sum(it([], 1, 10 + k)[0] for k in range(5, 9))
    t_recompute = it([16])[0] + sum(it([], 1, 16 + j)[0] for j in range(3))
    assert (a.preemptions, b.preemptions, res.iterations) == (0, 1, 14)
    assert a.first_token_s == b.first_token_s == pytest.approx(t_pre, rel=1e-12)
    assert a.finish_s == pytest.approx(t_pre + t_both + t_alone, rel=1e-12)
    assert b.finish_s == pytest.approx(t_pre + t_both + t_alone + t_recompute, rel=1e-12)
    assert res.metrics["preemptions"] == 1


def test_admission_waits_until_the_kv_fits(im):
    reqs = [Request(0, 0.0, 10, 10), Request(1, 0.0, 25, 2)]
    a, b = run(reqs, kv_capacity_tokens=30).records
    assert b.first_token_s == pytest.approx(a.finish_s + im.iteration([25])[0], rel=1e-12)
    assert a.preemptions == b.preemptions == 0


def test_static_batching_admits_nothing_until_the_batch_drains():
    reqs = [Request(i, 0.0, 8, 4 + 4 * i) for i in range(3)]
    a, b, c = run(reqs, batching="static", max_batch=2).records
    assert a.first_token_s == b.first_token_s < a.finish_s < b.finish_s
    assert c.first_token_s > b.finish_s
    cont = run(reqs, max_batch=2).records
    assert cont[2].first_token_s < b.finish_s  # continuous batching admits c as soon as a leaves


def test_littles_law_holds_for_a_stable_poisson_load():
    w = Workload(n_requests=3000, rate_per_s=800.0, prompt={"dist": "uniform", "lo": 8, "hi": 64},
                 output={"dist": "lognormal", "mean": 16, "sigma": 0.8, "max": 64})
    res = serve(MODEL, PLATFORM, w, seed=3, **GRID)
    n_avg, lam_w = little(res.records)
    assert n_avg > 1  # a real queue, not an idle system
    assert n_avg == pytest.approx(lam_w, rel=0.05)


def test_same_seed_same_results_and_the_metrics_are_complete(tmp_path):
    w = Workload(n_requests=200, arrival="gamma", rate_per_s=500.0, cv=3.0,
                 prompt={"dist": "uniform", "lo": 4, "hi": 100}, output={"dist": "uniform", "lo": 1, "hi": 20})
    slo = {"ttft_s": 2e-3, "tpot_s": 5e-4}
    a, b = (serve(MODEL, PLATFORM, w, seed=7, slo=slo, **GRID) for _ in range(2))
    assert a.records == b.records and a.metrics == b.metrics
    assert serve(MODEL, PLATFORM, w, seed=8, **GRID).records != a.records
    m = a.metrics
    for key in ("ttft_p50_s", "ttft_p99_s", "tpot_p90_s", "e2e_p99_s", "throughput_tokens_per_s",
                "goodput_requests_per_s", "energy_per_token_j"):
        assert m[key] > 0, key
    assert m["ttft_p50_s"] <= m["ttft_p90_s"] <= m["ttft_p99_s"]
    assert m["goodput_requests_per_s"] <= m["throughput_requests_per_s"]
    path = a.write_requests_csv(tmp_path / "requests.csv")
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 200 and float(rows[0]["e2e_s"]) == pytest.approx(a.records[0].e2e_s)


def test_trace_workload(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n0.2,5,3\n0.1,7,2\n")
    reqs = make_requests(Workload(arrival="trace", trace=path))
    assert [(r.id, r.arrival_s, r.prompt_tokens) for r in reqs] == [(0, 0.1, 7), (1, 0.2, 5)]


@pytest.mark.parametrize(("call", "field"), [
    (lambda: make_requests(Workload(rate_per_s=-1.0)), "workload.rate_per_s"),
    (lambda: make_requests(Workload(arrival="weibull")), "workload.arrival"),
    (lambda: make_requests(Workload(output={"dist": "lognormal", "mean": 10})), "workload.output.sigma"),
    (lambda: make_requests(Workload(prompt={"dist": "uniform", "lo": 9, "hi": 3})), "workload.prompt.hi"),
    (lambda: make_requests(Workload(arrival="trace", trace="/nonexistent.csv")), "workload.trace"),
    (lambda: run([Request(0, 0.0, 4, 4)], batching="dynamic"), "serve.batching"),
    (lambda: run([Request(0, 0.0, 4, 4)], token_budget=0), "serve.token_budget"),
    (lambda: run([Request(0, 0.0, 40, 4)], kv_capacity_tokens=16), "request 0"),
    (lambda: serve(MODEL, PLATFORM, [Request(0, 0.0, 4, 4)], tp=2, **GRID), "serve.tp"),
])
def test_bad_parameters_are_one_line(call, field):
    with pytest.raises(ScenarioError) as info:
        call()
    assert str(info.value).startswith(field) and "\n" not in str(info.value)
