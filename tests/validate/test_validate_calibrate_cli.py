"""The calibrate verb: arguments, one-line errors, --json summary; the CUDA path where there is one."""

from __future__ import annotations

import argparse
import json

import pytest

from hetsim.errors import HetsimError
from hetsim.spec.loader import load_platform
from hetsim.validate.cli_calibrate import add_parser

torch = pytest.importorskip("torch")


def invoke(argv):
    parser = argparse.ArgumentParser(prog="hetsim")
    add_parser(parser.add_subparsers(dest="verb", required=True))
    args = parser.parse_args(["calibrate", *argv])
    return args.func(args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_clear_line(tmp_path):
    with pytest.raises(HetsimError) as err:
        invoke(["--device", "cuda", "-o", str(tmp_path / "gpu.yaml")])
    message = str(err.value)
    assert "\n" not in message and "--device" in message and "CUDA" in message
    assert not (tmp_path / "gpu.yaml").exists()


@pytest.mark.parametrize("argv, field", [
    (["--device", "tpu"], "--device"), (["--threads", "0"], "--threads"), (["-o", "out.json"], "--output"),
])
def test_bad_arguments_fail_before_measuring(tmp_path, argv, field):
    if "-o" not in argv:
        argv = [*argv, "-o", str(tmp_path / "p.yaml")]
    with pytest.raises(HetsimError, match=field):
        invoke(argv)


def test_output_is_required():
    with pytest.raises(SystemExit):
        invoke(["--quick"])


def test_json_summary_and_profile(tmp_path, capsys):
    out = tmp_path / "me.yaml"
    assert invoke(["--quick", "--threads", "1", "--targets", "aten.add.Tensor,aten.copy_.default", "-o", str(out),
                   "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["output"] == str(out) and summary["grid"] == "quick" and summary["threads"] == 1
    assert summary["curves"] >= 2 and summary["peak_flop_per_s"]["fp32"] > 0
    assert load_platform(str(out)).manifest["microbenchmarks"] == summary["microbenchmarks"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_quick_cuda_calibration_loads(tmp_path):
    out = tmp_path / "gpu.yaml"
    assert invoke(["--device", "cuda", "--quick", "--targets", "aten.add.Tensor,aten.linear.default,"
                   "aten.copy_.default", "-o", str(out)]) == 0
    platform = load_platform(str(out))
    assert platform.unit("gpu").kind == "gpu" and platform.manifest["device_kind"] == "cuda"
