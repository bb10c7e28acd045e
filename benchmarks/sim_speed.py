"""Engine speed: simulated ops per second on a >= 100,000-op graph, against a bare SimPy loop.

The graph is a stack of Transformer-like layers (a chain of matmul/elementwise ops with a
residual fan-in every few ops), scheduled by EFT on a two-unit platform with separate memories,
so the engine handles transfers, memory tracking and power as in a real run. Only ``run()`` is
timed; scheduling is reported separately. The baseline is a SimPy process doing one
``env.timeout`` per op and nothing else: the floor any SimPy engine pays.

Usage: python benchmarks/sim_speed.py [--ops N]
"""

from __future__ import annotations

import argparse
import json
import time

import simpy

from hetsim.cost.model import CostModel
from hetsim.graph.schema import add_op, new_graph
from hetsim.sched import get_scheduler
from hetsim.sim.engine import run
from hetsim.spec.loader import platform_from_dict

STATE = [{"name": "p0", "freq": "1.8 GHz", "voltage": "1 V", "static_power": "70 W", "dynamic_power": "600 W"}]
PLATFORM = {
    "name": "bench",
    "memories": [{"name": "hbm", "capacity": "80 GB", "bandwidth": "3 TB/s"},
                 {"name": "ddr", "capacity": "500 GB", "bandwidth": "500 GB/s"}],
    "units": [{"name": "gpu", "kind": "gpu", "memory": "hbm", "peak": {"bf16": "989 TFLOP/s"}, "overhead": "4 us",
               "power_states": STATE},
              {"name": "cpu", "kind": "cpu", "memory": "ddr", "peak": {"bf16": "100 TFLOP/s"}, "overhead": "2 us",
               "power_states": STATE}],
    "links": [{"name": "c2c", "a": "hbm", "b": "ddr", "bandwidth": "450 GB/s", "latency": "1 us"}],
}


def layered_graph(n_ops: int):
    g = new_graph("bench", phase="prefill", batch=1, seq_len=1, dtype="bf16")
    kinds = ("matmul", "elementwise", "matmul", "norm", "elementwise")
    for i in range(n_ops):
        kind = kinds[i % len(kinds)]
        flop = 2 * 4096 * 4096 * 16 if kind == "matmul" else 4096 * 16
        add_op(g, f"op{i}", op=kind, flop=flop, bytes_read=4096 * 16 * 2 + (4096 * 4096 * 2 if kind == "matmul"
               else 0), bytes_written=4096 * 16 * 2, dtype="bf16")
        if i:
            g.add_edge(f"op{i - 1}", f"op{i}", bytes=4096 * 16 * 2)
        if i >= 5 and i % 5 == 0:
            g.add_edge(f"op{i - 5}", f"op{i}", bytes=4096 * 16 * 2)
    return g


def bare_simpy(n_ops: int, dt: float = 1e-6) -> float:
    env = simpy.Environment()

    def proc():
        for _ in range(n_ops):
            yield env.timeout(dt)

    env.process(proc())
    t0 = time.perf_counter()
    env.run()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=100_000)
    args = parser.parse_args()
    platform = platform_from_dict(PLATFORM)
    g = layered_graph(args.ops)
    t0 = time.perf_counter()
    cost = CostModel(g, platform)
    schedule = get_scheduler("eft")(g, cost)
    t_sched = time.perf_counter() - t0
    t0 = time.perf_counter()
    trace = run(g, schedule, cost)
    t_sim = time.perf_counter() - t0
    t_bare = bare_simpy(args.ops)
    out = {
        "ops": args.ops,
        "transfers": len(trace.transfers),
        "cost_and_schedule_s": round(t_sched, 3),
        "simulate_s": round(t_sim, 3),
        "sim_ops_per_s": round(args.ops / t_sim),
        "bare_simpy_ops_per_s": round(args.ops / t_bare),
        "ratio_to_bare_simpy": round(t_sim / t_bare, 2),
    }
    print(json.dumps(out))
    print(f"simulated {args.ops} ops in {t_sim:.2f} s = {out['sim_ops_per_s']:,} ops/s "
          f"({out['ratio_to_bare_simpy']}x a bare SimPy timeout loop at {out['bare_simpy_ops_per_s']:,} ops/s); "
          f"cost table + EFT took {t_sched:.2f} s")


if __name__ == "__main__":
    main()
