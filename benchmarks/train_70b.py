"""A training step of Llama-3-70B on 32 H100s, tensor parallel 8 × pipeline parallel 4.

The captured forward graph (batch ``--batch``, sequence ``--seq``) becomes one training step
(loss, backward, AdamW; :mod:`hetsim.graph.training`), is cut into 4 pipeline stages of 20
layers run as ``--microbatches`` microbatches in 1F1B order, each stage split tensor-parallel
over the 8 GPUs of one DGX H100 node (:mod:`hetsim.graph.pipeline`), and simulated on the
``4x-dgx-h100-ib`` preset with EFT (which follows the 1F1B program order: every op is pinned),
fair link and memory sharing, and memory tracking. The all-reduces run as ring steps on NVLink;
activations cross between stages over InfiniBand.

Prints the time of each stage of the pipeline (capture, transforms, cost table, schedule,
simulation), the graph's size, the peak resident memory of this process, and the simulated
step: time, per-GPU peak memory, utilization and the bubble against (P − 1)/(m + P − 1).

Without activation recomputation a stage holds up to P microbatches of saved activations, so the
defaults (4 microbatches of one 2048-token sequence) are what fits in 80 GB; batch 8 or sequences
of 4096 run out of memory on the first stage, as they do in Megatron-LM without recomputation.

Usage: python benchmarks/train_70b.py [--batch 4] [--seq 2048] [--microbatches 4]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from hetsim.cost.model import CostModel
from hetsim.graph.catalog import model_graph
from hetsim.graph.pipeline import pipeline_parallel
from hetsim.graph.training import training_step
from hetsim.sched import get_scheduler
from hetsim.sched.schedule import check_schedule
from hetsim.sim.engine import SimOptions, run
from hetsim.spec.loader import load_platform

TP, PP = 8, 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--microbatches", type=int, default=4)
    parser.add_argument("--contention", default="fair")
    args = parser.parse_args()
    timings: dict[str, float] = {}

    def lap(name: str, began: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - began, 2)
        return now

    t = time.perf_counter()
    forward = model_graph("llama-3-70b", phase="prefill", batch=args.batch, seq_len=args.seq)
    t = lap("capture", t)
    step = training_step(forward)
    t = lap("training_step", t)
    stages = [[f"n{s}.gpu{i}" for i in range(TP)] for s in range(PP)]
    graph = pipeline_parallel(step, stages, microbatches=args.microbatches)
    t = lap("pipeline_and_tensor_split", t)
    platform = load_platform("4x-dgx-h100-ib")
    options = SimOptions(contention=args.contention)
    cost = CostModel(graph, platform, options.collective_algorithm)
    t = lap("cost_table", t)
    schedule = get_scheduler("eft")(graph, cost)
    check_schedule(schedule, graph, cost)
    t = lap("schedule_and_check", t)
    trace = run(graph, schedule, cost, options)
    lap("simulate", t)
    total = round(sum(timings.values()), 2)
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    from hetsim.report import metrics

    peak = metrics.peak_memory_bytes(trace, platform)
    util = metrics.utilization(trace, platform)
    gpus = [u for u in util if ".gpu" in u]
    bubble = (PP - 1) / (args.microbatches + PP - 1)
    out = {
        "model": "llama-3-70b", "batch": args.batch, "seq_len": args.seq, "microbatches": args.microbatches,
        "tp": TP, "pp": PP, "ops": graph.number_of_nodes(), "edges": graph.number_of_edges(),
        "transfers": len(trace.transfers), "timings_s": timings, "total_s": total, "peak_rss_gib": round(rss_gib, 2),
        "step_s": trace.makespan_s, "peak_gpu_memory_gb": round(max(peak[f"n{s}.hbm{i}"] for s in range(PP)
                                                                    for i in range(TP)) / 1e9, 1),
        "mean_gpu_utilization": round(sum(util[u] for u in gpus) / len(gpus), 3),
        "ideal_1f1b_busy_fraction": round(1 - bubble, 3),
    }
    print(json.dumps(out))
    print(f"llama-3-70b training step, TP {TP} x PP {PP}, {args.microbatches} microbatches of "
          f"{args.batch // args.microbatches} x {args.seq}: {out['ops']:,} ops, {out['transfers']:,} transfers; "
          f"built and simulated in {total} s ({timings}), peak RSS {rss_gib:.2f} GiB. Simulated step "
          f"{trace.makespan_s:.2f} s, peak GPU memory {out['peak_gpu_memory_gb']} GB, mean GPU utilization "
          f"{out['mean_gpu_utilization']:.2f} (1F1B bound {1 - bubble:.2f}).")


if __name__ == "__main__":
    main()
