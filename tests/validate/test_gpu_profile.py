"""``hetsim calibrate --gpu-ops/--collectives``: a GPU profile fitted to measured tables, and bad tables."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hetsim.spec.loader import load_platform

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "calibration"
pytestmark = pytest.mark.skipif(not (DATA / "gpu_ops.csv").exists(), reason="shared/calibration not present")


def hetsim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hetsim.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def _subset(src: Path, dst: Path, keep, edit=None) -> Path:
    with src.open() as f:
        rows = list(csv.DictReader(f))
    fields = list(rows[0])
    rows = [r for r in rows if keep(r)]
    if edit is not None:
        rows, fields = edit(rows, fields)
    with dst.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return dst


def test_a_profile_fitted_to_kernel_times_loads_and_reports_its_cross_validated_error(tmp_path):
    models = {"internlm/internlm-20b", "microsoft/phi-2"}
    table = _subset(DATA / "gpu_ops.csv", tmp_path / "ops.csv", lambda r: r["gpu"] == "h100" and r["model"] in models)
    out = tmp_path / "h100.yaml"
    proc = hetsim("calibrate", "--gpu-ops", str(table), "--gpu", "h100", "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["kernels"]["groups"] == sorted(models)
    families = {r["family"] for r in report["kernels"]["cross_validated"]}
    assert {"gemm", "norm", "activation", "rotary", "residual_add", "embedding"} <= families
    gpu = load_platform(out).unit("gpu")
    assert gpu.kernels is not None and "fitted to" in gpu.kernels.sources["gemm.efficiency"]


def _negative(rows, fields):
    rows[3]["measured_ms"] = "-0.01"
    return rows, fields


def _nan(rows, fields):
    rows[0]["measured_ms"] = "nan"
    return rows, fields


def _drop_time(rows, fields):
    return [{k: v for k, v in r.items() if k != "measured_ms"} for r in rows], [f for f in fields if f != "measured_ms"]


@pytest.mark.parametrize("table", ["gpu_ops.csv", "collectives.csv"])
@pytest.mark.parametrize(("edit", "message"), [(_drop_time, "measured_ms"), (_negative, "measured_ms"),
                                               (_nan, "measured_ms")])
def test_bad_tables_are_one_line_exit_2_and_write_nothing(tmp_path, table, edit, message):
    bad = _subset(DATA / table, tmp_path / table, lambda r: True, edit)
    out = tmp_path / "p.yaml"
    flag = ["--gpu-ops", str(bad), "--gpu", "a100"] if table == "gpu_ops.csv" else ["--collectives", str(bad),
                                                                                   "--base", "a100-sxm-80gb"]
    proc = hetsim("calibrate", *flag, "-o", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("hetsim: error: ") and message in proc.stderr
    assert not out.exists()
