"""Serve 1,000 llama-3-8b requests on one H100 SXM and time the whole run (goal: < 60 s on 2 cores).

Most of the time is the iteration-model fit (8 graph captures and simulations); the serving loop
itself takes well under a second. Run: ``.venv/bin/python benchmarks/serve_1000.py``.
"""

from __future__ import annotations

import json
import time

from hetsim.serve import Workload, serve

PREFILL_GRID = (32, 256, 1024, 2048)
DECODE_GRID = ((1, 256), (16, 512), (32, 2048), (64, 1024))


def main() -> None:
    """Run the benchmark and print wall times and metrics as JSON."""
    workload = Workload(n_requests=1000, arrival="poisson", rate_per_s=8.0,
                        prompt={"dist": "lognormal", "mean": 512, "sigma": 0.8, "max": 4096},
                        output={"dist": "lognormal", "mean": 200, "sigma": 0.8, "max": 1024})
    start = time.perf_counter()
    result = serve("llama-3-8b", "h100-sxm", workload, slo={"ttft_s": 0.5, "tpot_s": 0.05}, seed=0,
                   prefill_grid=PREFILL_GRID, decode_grid=DECODE_GRID)
    total = time.perf_counter() - start
    im = result.iteration_model
    print(json.dumps({"wall_s": round(total, 2), "fit": {"prefill_time": im.prefill_time,
                                                         "decode_time": im.decode_time,
                                                         "max_rel_error": im.max_rel_error,
                                                         "kv_capacity_tokens": im.kv_capacity_tokens},
                      "metrics": result.metrics}, indent=1))


if __name__ == "__main__":
    main()
