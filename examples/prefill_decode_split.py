"""Prefill/decode disaggregation across chip types with the Python API (Splitwise-HA style).

Serves one seeded request stream (the assumptions of scenarios/split_llama70b.yaml: Poisson
arrivals, prompts ~1024 and outputs ~128 tokens, lognormal) with Llama-3-70B on the
dgx-h100-a100-ib preset in four layouts, at three request rates:

* ``H100 x8``: the DGX H100 alone, tensor parallel 8, prefill and decode colocated;
* ``A100 x8``: the DGX A100 alone, the same way;
* ``H100+A100 replicas``: both nodes as two colocated replicas (16 GPUs, least-loaded routing);
* ``split H100->A100``: prefill on the DGX H100, decode on the DGX A100, the KV cache of each
  request shipped over InfiniBand (16 GPUs).

Each node's prefill and decode iterations are fitted once (four 70B fits, a few minutes) and
reused by every layout. Prints TTFT/TPOT percentiles, throughput, goodput under the SLO, energy
per token (the layout's GPUs only, idle power included) and the mean KV transfer time.

    .venv/bin/python examples/prefill_decode_split.py
"""

from __future__ import annotations

from dataclasses import replace

from hetsim.serve import Pool, Workload, serve

MODEL, PLATFORM = "llama-3-70b", "dgx-h100-a100-ib"
H100 = tuple(f"h.gpu{k}" for k in range(8))
A100 = tuple(f"a.gpu{k}" for k in range(8))
LAYOUTS = {
    "H100 x8": {"units": H100, "tp": 8},
    "A100 x8": {"units": A100, "tp": 8},
    "H100+A100 replicas": {"units": H100 + A100, "tp": 8},
    "split H100->A100": {"prefill": Pool(H100, tp=8), "decode": Pool(A100, tp=8)},
}
RATES = (2.0, 4.0, 8.0)
SLO = {"ttft_s": 0.5, "tpot_s": 0.05}
WORKLOAD = Workload(n_requests=200, arrival="poisson", rate_per_s=RATES[0],
                    prompt={"dist": "lognormal", "mean": 1024, "sigma": 0.5, "max": 4096},
                    output={"dist": "lognormal", "mean": 128, "sigma": 0.5, "max": 1024})
GRID = {"prefill_grid": (128, 1024, 4096), "decode_grid": ((1, 512), (16, 512), (32, 1024))}


def main() -> None:
    print(f"{MODEL} on {PLATFORM}; SLO p99 TTFT <= {SLO['ttft_s']} s, TPOT <= {SLO['tpot_s']} s")
    print(f"{'layout':<19} {'GPUs':>4} {'req/s':>5} {'TTFT p50':>9} {'TTFT p99':>9} {'TPOT p50':>9} {'TPOT p99':>9} "
          f"{'tok/s':>6} {'goodput':>7} {'J/token':>7} {'KV ship':>8}")
    for rate in RATES:
        workload = replace(WORKLOAD, rate_per_s=rate)
        for name, layout in LAYOUTS.items():
            m = serve(MODEL, PLATFORM, workload, slo=SLO, seed=0, **layout, **GRID).metrics
            ship = f"{m['kv_transfer_mean_s'] * 1e3:.2f}ms" if "kv_transfer_mean_s" in m else "-"
            print(f"{name:<19} {m['units']:>4} {rate:>5g} {m['ttft_p50_s']:>8.3f}s {m['ttft_p99_s']:>8.3f}s "
                  f"{m['tpot_p50_s']:>8.4f}s {m['tpot_p99_s']:>8.4f}s {m['throughput_tokens_per_s']:>6.0f} "
                  f"{m['goodput_requests_per_s']:>7.2f} {m['energy_per_token_j']:>7.3f} {ship:>8}")


if __name__ == "__main__":
    main()
