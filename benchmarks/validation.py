"""Validate hetsim against real torch on this CPU: the protocol behind the README's error table.

1. ``hetsim calibrate -o profiles/cpu-this-machine.yaml`` measures single ATen ops only
   (microbenchmarks); no model is run.
2. This script then runs each (model, shape) below for real in fp32 with random weights — end to
   end with ``torch.utils.benchmark`` and per op through an fx Interpreter over the exported
   graph — simulates the same captured graph on the calibrated profile, and reports predicted vs
   measured. Nothing measured here feeds back into the profile.

Writes ``tests/data/validation_cpu.json`` (every report with its per-op measured medians, plus the
profile's manifest), copies the profile beside it as ``tests/data/cpu_profile.yaml``, and prints a
Markdown table for the README.

Usage: python benchmarks/validation.py [--profile profiles/cpu-this-machine.yaml] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

CASES = [
    ("gpt2", "prefill", 1, 128), ("gpt2", "prefill", 2, 256), ("gpt2", "decode", 1, 512),
    ("smollm2-135m", "prefill", 1, 128), ("smollm2-135m", "prefill", 2, 256), ("smollm2-135m", "decode", 1, 512),
    ("bert-base", "prefill", 1, 128), ("bert-base", "prefill", 4, 128), ("bert-base", "prefill", 1, 512),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="profiles/cpu-this-machine.yaml")
    parser.add_argument("--out", default="tests/data/validation_cpu.json")
    args = parser.parse_args()
    from hetsim.spec.loader import load_platform
    from hetsim.validate.compare import validate_model

    platform = load_platform(args.profile)
    reports = []
    for name, phase, batch, seq in CASES:
        report = validate_model(name, platform=platform, phase=phase, batch=batch, seq_len=seq)
        row = report.to_dict(ops=False)
        # per-op medians, so tests can check the cost model against real measurements offline
        row["measured_ops"] = {o.op: [o.kind, o.target, o.measured_s] for o in report.ops if o.measured_s is not None}
        reports.append(row)
        print(f"{name:14s} {phase:7s} b{batch} s{seq:<4d} measured {1e3 * row['measured_s']:9.2f} ms  "
              f"predicted {1e3 * row['predicted_s']:9.2f} ms  error {100 * row['e2e_error']:+6.1f} %  "
              f"per-op MAPE {100 * row['per_op_mape']:5.1f} % ({row['per_op_mape_count']} ops > 50 us)  "
              f"IQR {100 * row['measurement_iqr']:.1f} %", file=sys.stderr, flush=True)
    errors = [abs(r["e2e_error"]) for r in reports]
    summary = {"median_abs_e2e_error": statistics.median(errors), "worst_abs_e2e_error": max(errors),
               "median_per_op_mape": statistics.median(r["per_op_mape"] for r in reports),
               "worst_per_op_mape": max(r["per_op_mape"] for r in reports)}
    out = {"profile": str(args.profile), "manifest": dict(platform.manifest), "summary": summary, "reports": reports}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    # keep the profile beside the data it predicted: the tests compare the two offline
    shutil.copyfile(args.profile, Path(args.out).parent / "cpu_profile.yaml")
    print("| model | phase | batch | seq | measured | predicted | error | per-op MAPE (ops > 50 µs) | IQR |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in reports:
        print(f"| {r['name']} | {r['phase']} | {r['batch']} | {r['seq_len']} | {1e3 * r['measured_s']:.1f} ms | "
              f"{1e3 * r['predicted_s']:.1f} ms | {100 * r['e2e_error']:+.1f} % | "
              f"{100 * r['per_op_mape']:.1f} % ({r['per_op_mape_count']}) | {100 * r['measurement_iqr']:.1f} % |")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
