"""Capacity planning with the Python API: the fewest GPUs that serve Llama-3-70B within an SLO.

Serves the same seeded request stream (the assumptions of scenarios/capacity_llama70b.yaml:
Poisson 4 req/s, prompts ~512 and outputs ~200 tokens, lognormal) with Llama-3-70B tensor
parallel over 2, 4 and 8 H100s of a DGX H100, prints one row per configuration and the
cheapest one (fewest GPUs, then least energy per token) whose p99 TTFT is within the bound.

    .venv/bin/python examples/capacity_planning.py
"""

from __future__ import annotations

from hetsim.serve import Workload, serve

MODEL, PLATFORM, TPS = "llama-3-70b", "dgx-h100", (2, 4, 8)
TTFT_P99_BOUND_S = 0.5
SLO = {"ttft_s": TTFT_P99_BOUND_S, "tpot_s": 0.05}
WORKLOAD = Workload(n_requests=200, arrival="poisson", rate_per_s=4.0,
                    prompt={"dist": "lognormal", "mean": 512, "sigma": 0.5, "max": 4096},
                    output={"dist": "lognormal", "mean": 200, "sigma": 0.5, "max": 1024})
# A small fit grid: each 70B capture takes seconds, so three points per form (exact on its grid).
GRID = {"prefill_grid": (128, 1024, 4096), "decode_grid": ((1, 512), (16, 512), (32, 1024))}


def main() -> None:
    rows = []
    for tp in TPS:
        m = serve(MODEL, PLATFORM, WORKLOAD, slo=SLO, tp=tp, seed=0, **GRID).metrics
        rows.append((tp, m))
    print(f"{MODEL} on {PLATFORM}, {WORKLOAD.rate_per_s:g} req/s, SLO p99 TTFT <= {TTFT_P99_BOUND_S} s")
    print(f"{'GPUs':>4} {'TTFT p50':>9} {'TTFT p99':>9} {'TPOT p99':>9} {'tok/s':>7} {'goodput':>8} "
          f"{'J/token':>8} {'preempt':>7}  meets SLO")
    for tp, m in rows:
        ok = m["ttft_p99_s"] <= TTFT_P99_BOUND_S
        print(f"{tp:>4} {m['ttft_p50_s']:>8.3f}s {m['ttft_p99_s']:>8.3f}s {m['tpot_p99_s']:>8.4f}s "
              f"{m['throughput_tokens_per_s']:>7.0f} {m['goodput_requests_per_s']:>8.2f} "
              f"{m['energy_per_token_j']:>8.3f} {m['preemptions']:>7}  {'yes' if ok else 'no'}")
    meeting = [(tp, m["energy_per_token_j"]) for tp, m in rows if m["ttft_p99_s"] <= TTFT_P99_BOUND_S]
    if meeting:
        tp, energy = min(meeting)
        print(f"cheapest configuration meeting the bound: tp {tp} ({tp} H100s), {energy:.3f} J/token")
    else:
        print("no configuration meets the bound")


if __name__ == "__main__":
    main()
