"""Engine speed: simulated ops per second on >= 100,000-op graphs, against a bare SimPy loop.

Two graphs, each scheduled by EFT, with memory tracking and power on:

* ``decode``: 80 chained decode steps of the captured llama-3-8b graph (one token each against a
  2048-token KV cache; step i+1 starts from step i's logits) on the gh200 preset — what a real run
  looks like: almost every op on the GPU, a few on the Grace CPU, transfers over NVLink-C2C.
* ``transfer-heavy``: a synthetic chain of matmul/elementwise ops with residual fan-ins on a
  two-unit platform whose CPU has the smaller per-op overhead, so EFT alternates units and
  about 80% of ops end in a transfer: the engine's worst case.

Only the engine's ``run()`` is timed (planning included), as the median of ``--repeat`` runs;
the cost table and EFT are reported apart. The baseline is a SimPy process doing one
``env.timeout`` per op and nothing else: the floor any SimPy engine pays.

Usage: python benchmarks/sim_speed.py [--steps N] [--ops N] [--repeat N]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time

import networkx as nx
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


def decode_steps(steps: int):
    from hetsim.graph.catalog import model_graph

    step = model_graph("llama-3-8b", phase="decode", batch=1, seq_len=2048)
    first = [n for n in step if step.in_degree(n) == 0]
    last = [n for n in step if step.out_degree(n) == 0]
    g = nx.DiGraph(**step.graph)
    for i in range(steps):
        g.update(nx.relabel_nodes(step, {n: f"s{i}/{n}" for n in step}, copy=True))
        if i:
            g.add_edges_from((f"s{i - 1}/{a}", f"s{i}/{b}", {"bytes": 0}) for a in last for b in first)
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


def measure(label: str, g, platform, repeat: int) -> dict:
    n_ops = g.number_of_nodes()
    t0 = time.perf_counter()
    cost = CostModel(g, platform)
    schedule = get_scheduler("eft")(g, cost)
    t_sched = time.perf_counter() - t0
    times, bare = [], []
    trace = None
    for _ in range(repeat):  # this machine's speed drifts by up to 2x: report the medians
        del trace  # each run starts as a user's first would: no earlier trace alive, garbage collected
        gc.collect()
        t0 = time.perf_counter()
        trace = run(g, schedule, cost)
        times.append(time.perf_counter() - t0)
        bare.append(bare_simpy(n_ops))
    t_sim, t_bare = statistics.median(times), statistics.median(bare)
    out = {
        "graph": label,
        "ops": n_ops,
        "transfers": len(trace.transfers),
        "cost_and_schedule_s": round(t_sched, 3),
        "simulate_s": round(t_sim, 3),
        "simulate_runs_s": [round(t, 3) for t in times],
        "sim_ops_per_s": round(n_ops / t_sim),
        "bare_simpy_ops_per_s": round(n_ops / t_bare),
        "ratio_to_bare_simpy": round(t_sim / t_bare, 2),
    }
    print(json.dumps(out))
    print(f"{label}: simulated {n_ops} ops in {t_sim:.2f} s = {out['sim_ops_per_s']:,} ops/s "
          f"({out['ratio_to_bare_simpy']}x a bare SimPy timeout loop at {out['bare_simpy_ops_per_s']:,} ops/s); "
          f"cost table + EFT took {t_sched:.2f} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80, help="decode steps of the llama-3-8b graph")
    parser.add_argument("--ops", type=int, default=100_000, help="ops of the transfer-heavy graph")
    parser.add_argument("--repeat", type=int, default=5, help="runs per graph; medians are reported")
    args = parser.parse_args()
    from hetsim.spec.loader import load_platform

    measure("decode", decode_steps(args.steps), load_platform("gh200"), args.repeat)
    measure("transfer-heavy", layered_graph(args.ops), platform_from_dict(PLATFORM), args.repeat)


if __name__ == "__main__":
    main()
