"""Capture Llama-3-70B prefill (batch 1, 4096 tokens) on meta tensors; report time, memory, FLOPs.

Prints one JSON line, then one human line. The analytic count is the usual
``2 · N_matmul · T`` (every weight matrix but the embedding, the lm_head included) plus attention
``4 · layers · T² · d_model`` (Q·Kᵀ and P·V over the full, unmasked T×T, as FlopCounterMode counts
it); it is compared with the graph's total FLOPs, and with its matrix FLOPs (kinds matmul and
attention) alone.

Run: ``python benchmarks/capture_70b.py``
"""

from __future__ import annotations

import json
import resource
import sys
import time

MODEL, BATCH, SEQ = "llama-3-70b", 1, 4096


def analytic_flop(spec, batch: int, seq: int) -> int:
    c = spec.config
    d, layers, heads, kv, ffn, vocab = (c["d_model"], c["n_layers"], c["n_heads"], c["n_kv_heads"], c["ffn_dim"],
                                        c["vocab_size"])
    head_dim = d // heads
    per_layer = d * heads * head_dim + 2 * d * kv * head_dim + heads * head_dim * d + 3 * d * ffn
    n_matmul = layers * per_layer + d * vocab
    tokens = batch * seq
    return 2 * n_matmul * tokens + 4 * layers * batch * seq * seq * d


def main() -> int:
    from hetsim.graph.catalog import model_config, model_graph

    start = time.perf_counter()
    g = model_graph(MODEL, phase="prefill", batch=BATCH, seq_len=SEQ, dtype="bf16")
    wall = time.perf_counter() - start
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    matrix = sum(d["flop"] for _, d in g.nodes(data=True) if d["op"] in ("matmul", "attention", "conv"))
    total = sum(d["flop"] for _, d in g.nodes(data=True))
    analytic = analytic_flop(model_config(MODEL), BATCH, SEQ)
    result = {
        "model": MODEL, "phase": "prefill", "batch": BATCH, "seq_len": SEQ, "wall_s": round(wall, 3),
        "peak_rss_bytes": peak_rss, "ops": g.number_of_nodes(), "edges": g.number_of_edges(),
        "matrix_flop": matrix, "total_flop": total, "analytic_flop": analytic,
        "matrix_rel_diff": (matrix - analytic) / analytic,
        "total_rel_diff": (total - analytic) / analytic,
        "weight_bytes": sum({k: v for _, d in g.nodes(data=True) for k, v in d["weights"].items()}.values()),
    }
    print(json.dumps(result))
    print(f"{MODEL} prefill b={BATCH} T={SEQ}: captured {result['ops']} ops in {wall:.1f} s, "
          f"peak RSS {peak_rss / 2**30:.2f} GiB; total FLOPs {total:.4e} vs analytic {analytic:.4e} "
          f"({100 * result['total_rel_diff']:+.4f} %; matrix ops alone {100 * result['matrix_rel_diff']:+.4f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
