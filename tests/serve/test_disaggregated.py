"""Serving layouts: replicas, and prefill/decode disaggregation with KV caches shipped between units."""

from __future__ import annotations

import pytest
from hetsim_testing import little

from hetsim.errors import ScenarioError
from hetsim.serve import Pool, Request, Workload, fit_iteration_model, serve
from hetsim.spec.loader import load_platform

MODEL = "llama-tiny"
GRID = {"prefill_grid": (16, 64, 128, 256), "decode_grid": ((1, 32), (8, 128), (16, 64), (32, 255))}
SPLIT = {"prefill": {"units": ["gpu"]}, "decode": {"units": ["cpu"]}}  # GH200: Hopper prefills, Grace decodes


def split(requests, **kw):
    return serve(MODEL, "gh200", requests, dtype="fp32", **SPLIT, **GRID, **kw)


@pytest.fixture(scope="module")
def gh200():
    plat = load_platform("gh200")
    gpu = fit_iteration_model(MODEL, "gh200", units=["gpu"], dtype="fp32", **GRID)
    cpu = fit_iteration_model(MODEL, "gh200", units=["cpu"], dtype="fp32", **GRID)
    return plat, gpu, cpu


def test_one_request_prefills_on_one_unit_ships_its_kv_and_decodes_on_the_other(gh200):
    plat, gpu, cpu = gh200
    p, o = 40, 6
    res = split([Request(0, 0.25, p, o)])
    (rec,) = res.records
    prefill = gpu.iteration([p])[0]
    ship = plat.route("hbm3", "lpddr5x").time_s(p * gpu.kv_bytes_per_token)
    decodes = sum(cpu.iteration([], 1, p + k)[0] for k in range(o - 1))
    assert (rec.prefill_on, rec.decode_on) == ("prefill0", "decode0")
    assert rec.ttft_s == pytest.approx(prefill, rel=1e-12)
    assert rec.kv_transfer_s == pytest.approx(ship, rel=1e-12) and ship > 0
    assert rec.e2e_s == pytest.approx(prefill + ship + decodes, rel=1e-12)
    # energy: each instance's iterations, plus its units' static power while idle in the span
    pre, dec = res.instances
    span = rec.e2e_s
    assert pre.energy_j == pytest.approx(gpu.iteration([p])[1] + plat.unit("gpu").nominal.static_power_w
                                         * (span - prefill), rel=1e-9)
    assert dec.energy_j == pytest.approx(sum(cpu.iteration([], 1, p + k)[1] for k in range(o - 1))
                                         + plat.unit("cpu").nominal.static_power_w * (span - decodes), rel=1e-9)
    route = plat.route("hbm3", "lpddr5x")
    link_j = p * gpu.kv_bytes_per_token * sum(plat.link(name).energy_per_byte_j for name in route.links)
    assert link_j > 0  # NVLink-C2C has a per-byte energy in the preset
    assert res.energy_j == pytest.approx(pre.energy_j + dec.energy_j + link_j, rel=1e-12)
    m = res.metrics
    assert m["units"] == 2 and m["kv_transfer_mean_s"] == pytest.approx(ship)
    assert m["busy_fraction_prefill"] == pytest.approx(prefill / span)


def test_kv_caches_sharing_a_link_go_one_after_another(gh200):
    plat, gpu, _ = gh200
    a, b = split([Request(0, 0.0, 30, 4), Request(1, 0.0, 50, 4)]).records
    route = plat.route("hbm3", "lpddr5x")
    assert a.first_token_s == b.first_token_s  # prefilled in one iteration
    assert a.kv_transfer_s == pytest.approx(route.time_s(30 * gpu.kv_bytes_per_token), rel=1e-12)
    assert b.kv_transfer_s == pytest.approx(a.kv_transfer_s + route.time_s(50 * gpu.kv_bytes_per_token), rel=1e-12)


def test_a_request_preempted_on_the_decode_side_recomputes_on_the_prefill_side():
    a, b = split([Request(0, 0.0, 10, 10), Request(1, 0.0, 10, 10)], kv_capacity_tokens=30).records
    assert (a.preemptions, b.preemptions) == (0, 1)
    assert b.prefill_on == "prefill0" and b.decode_on == "decode0"
    assert b.finish_s > a.finish_s  # b's KV comes back only once a has left room for it
    res = split([Request(0, 0.0, 10, 10), Request(1, 0.0, 10, 10)], kv_capacity_tokens=30)
    pre = res.instances[0]
    assert pre.iterations == 2  # the first prefill of both, then b's recompute of 10 + 6 tokens


def test_replicas_split_the_load_and_share_one_fit():
    reqs = [Request(0, 0.0, 64, 4), Request(1, 0.0, 64, 4)]
    kw = {"dtype": "bf16", **GRID}
    one = serve(MODEL, "dgx-h100", reqs, units=["gpu0"], **kw)
    two = serve(MODEL, "dgx-h100", reqs, units=["gpu0", "gpu1"], **kw)
    im = two.iteration_model
    assert [r.prefill_on for r in two.records] == ["engine0", "engine1"]
    assert all(r.ttft_s == pytest.approx(im.iteration([64])[0], rel=1e-12) for r in two.records)
    assert one.records[0].ttft_s == pytest.approx(im.iteration([64, 64])[0], rel=1e-12)  # batched together
    assert len({id(m) for m in two.iteration_models.values()}) == 1  # identical hardware is fitted once
    assert two.metrics["units"] == 2 and one.metrics["units"] == 1


def test_tensor_parallel_pools_ship_over_every_rank_pair():
    # 2 prefill ranks → 4 decode ranks on a DGX H100: 4 pairs of a quarter each, NVLink routes
    reqs = [Request(0, 0.0, 100, 3)]
    res = serve(MODEL, "dgx-h100", reqs, prefill=Pool(("gpu0", "gpu1"), tp=2),
                decode=Pool(("gpu2", "gpu3", "gpu4", "gpu5"), tp=4), **GRID)
    plat = load_platform("dgx-h100")
    share = 100 * res.iteration_model.kv_bytes_per_token / 4
    # rank pairs (0→2), (0→3), (1→4), (1→5): each prefill rank's NVLink carries two quarters in turn
    expected = 2 * plat.route("hbm0", "hbm2").time_s(share)
    assert res.records[0].kv_transfer_s == pytest.approx(expected, rel=1e-12)
    assert [i.units for i in res.instances] == [("gpu0", "gpu1"), ("gpu2", "gpu3", "gpu4", "gpu5")]


def test_littles_law_and_determinism_with_disaggregation():
    w = Workload(n_requests=2000, rate_per_s=1200.0, prompt={"dist": "uniform", "lo": 8, "hi": 64},
                 output={"dist": "lognormal", "mean": 16, "sigma": 0.8, "max": 64})
    res = serve(MODEL, "gh200", w, seed=5, dtype="fp32", **SPLIT, **GRID)
    n_avg, lam_w = little(res.records)
    assert n_avg > 1
    assert n_avg == pytest.approx(lam_w, rel=0.05)
    again = serve(MODEL, "gh200", w, seed=5, dtype="fp32", **SPLIT, **GRID)
    assert again.records == res.records and again.energy_j == res.energy_j
    assert all(r.output_tokens == 1 or r.decode_on == "decode0" for r in res.records)


@pytest.mark.parametrize(("kw", "field"), [
    ({"prefill": {"units": ["gpu"]}}, "serve.decode"),
    ({"prefill": {"units": ["gpu"]}, "decode": {"units": ["gpu"]}}, "serve.decode.units"),
    ({"prefill": {"units": ["npu"]}, "decode": {"units": ["cpu"]}}, "serve.prefill.units"),
    ({"prefill": {"units": ["gpu"], "tp": 2}, "decode": {"units": ["cpu"]}}, "serve.prefill.tp"),
    ({"prefill": {"units": ["gpu"], "ranks": 2}, "decode": {"units": ["cpu"]}}, "serve.prefill"),
    ({**SPLIT, "batching": "static"}, "serve.batching"),
    ({**SPLIT, "units": ["gpu"]}, "serve.units"),
    ({"units": ["gpu", "cpu"], "tp": 3}, "serve.tp"),
])
def test_bad_layouts_are_one_line(kw, field):
    with pytest.raises(ScenarioError) as info:
        serve(MODEL, "gh200", [Request(0, 0.0, 8, 2)], dtype="fp32", **GRID, **kw)
    text = str(info.value)
    assert text.startswith(f"{field}: got") and "\n" not in text


def test_a_pool_fits_only_the_phase_it_runs(gh200):
    _, _, cpu = gh200
    decode_only = fit_iteration_model(MODEL, "gh200", units=["cpu"], dtype="fp32", phases=("decode",), **GRID)
    assert decode_only.decode_time == cpu.decode_time and decode_only.decode_energy == cpu.decode_energy
    assert decode_only.kv_capacity_tokens == cpu.kv_capacity_tokens  # parameter bytes without the KV cache
    assert decode_only.iteration([], 4, 100) == cpu.iteration([], 4, 100)
    with pytest.raises(ValueError, match="no prefill fit"):
        decode_only.iteration([16])


def test_a_power_cap_on_a_pool_slows_its_compute_bound_iterations_and_saves_energy():
    grid = {"prefill_grid": (256, 512, 1024), "decode_grid": ((1, 256), (16, 256), (32, 512))}
    free = fit_iteration_model("gpt2", "h100-sxm", phases=("prefill",), **grid)
    capped = fit_iteration_model("gpt2", "h100-sxm", phases=("prefill",), power={"cap": "200 W"}, **grid)
    t_free, e_free = free.iteration([1024])
    t_cap, e_cap = capped.iteration([1024])
    assert t_cap > t_free and e_cap < e_free  # the GPU steps down a power state under the cap
    reqs = [Request(0, 0.0, 1000, 2)]
    res = serve("gpt2", "h100-sxm", reqs, power={"cap": "200 W"}, **grid)
    assert res.iteration_model.prefill_time == capped.prefill_time  # colocated instances take serve(power=...)


@pytest.mark.parametrize(("kw", "message"), [
    ({**SPLIT, "decode": {"units": ["cpu"], "power": {"cap": "budget"}}}, "serve.decode.power.cap: got 'budget'"),
    ({**SPLIT, "prefill": {"units": ["gpu"], "power": {"colour": 1}}}, "serve.prefill.power.colour: unknown option"),
    ({**SPLIT, "power": {"cap": "300 W"}}, "serve.power: got {'cap': '300 W'}, expected none with prefill/decode"),
    ({"power": {"governor": "turbo"}}, "serve.power.governor: got 'turbo'"),
])
def test_bad_power_options_are_one_line(kw, message):
    with pytest.raises(ScenarioError) as info:
        serve(MODEL, "gh200", [Request(0, 0.0, 8, 2)], dtype="fp32", **GRID, **kw)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_swap_preemption_by_hand():
    # the recompute case of test_serve.py, with swapping: after 5 decodes each of the two requests
    # holds 15 tokens; the next step copies the newest (id 1) to the CPU memory next to gpu0 and
    # decodes id 0 alone (4 steps); then id 1's 15 tokens come back and it decodes its last 4
    # tokens with no recompute. Each copy stalls its iteration.
    kw = {"units": ["gpu0"], "kv_capacity_tokens": 30, **GRID}
    reqs = [Request(0, 0.0, 10, 10), Request(1, 0.0, 10, 10)]
    res = serve(MODEL, "dgx-h100", reqs, preemption="swap", **kw)
    plat, im = load_platform("dgx-h100"), res.iteration_model
    copy = plat.route("hbm0", "ddr0").time_s(15 * im.kv_bytes_per_token)  # gpu0 sits on socket 0
    it = im.iteration
    t_both = it([10, 10])[0] + sum(it([], 2, 2 * (10 + k))[0] for k in range(5))
    a_end = t_both + copy + sum(it([], 1, 10 + k)[0] for k in range(5, 9))
    b_end = a_end + copy + sum(it([], 1, 15 + j)[0] for j in range(4))
    a, b = res.records
    assert (a.preemptions, b.preemptions, res.iterations) == (0, 1, 14)
    assert a.finish_s == pytest.approx(a_end, rel=1e-12) and b.finish_s == pytest.approx(b_end, rel=1e-12)
    recompute = serve(MODEL, "dgx-h100", reqs, **kw).records[1]
    assert recompute.finish_s != b.finish_s  # the other mode: a 16-token prefill instead of two copies


def test_swap_needs_a_cpu_memory():
    with pytest.raises(ScenarioError, match=r"^serve.preemption: got 'swap', expected 'recompute' on h100-sxm"):
        serve(MODEL, "h100-sxm", [Request(0, 0.0, 8, 2)], preemption="swap", **GRID)
    with pytest.raises(ScenarioError, match=r"^serve.preemption: got 'drop', expected 'recompute' or 'swap'"):
        serve(MODEL, "h100-sxm", [Request(0, 0.0, 8, 2)], preemption="drop", **GRID)
