"""``hetsim validate``: one JSON object on stdout, the output folder, one-line errors with exit status 2."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

import hetsim.cli
from hetsim.validate.cli_validate import add_parser

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--model", "gpt2-tiny", "--phase", "decode", "--seq", "8", "--profile", "cpu-generic", "--threads", "1",
        "--min-run-time", "0.05", "--repeats", "3"]


def _verbs(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def wired() -> bool:
    return "validate" in _verbs(hetsim.cli.build_parser()).choices


@pytest.fixture
def cli(monkeypatch):
    """``hetsim.cli.main`` with the validate verb, whether or not hetsim/cli.py registers it yet."""
    if not wired():
        build = hetsim.cli.build_parser

        def build_with_validate() -> argparse.ArgumentParser:
            parser = build()
            add_parser(_verbs(parser))
            return parser

        monkeypatch.setattr(hetsim.cli, "build_parser", build_with_validate)
    return hetsim.cli.main


def test_add_parser_registers_the_options():
    parser = argparse.ArgumentParser(prog="hetsim")
    add_parser(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["validate", "--model", "gpt2", "--profile", "p.yaml", "--seq", "64", "--batch", "2",
                              "--phase", "decode", "--device", "cpu", "--threads", "1", "--force", "--json",
                              "--out", "d"])
    assert (args.model, args.profile, args.seq_len, args.batch, args.phase, args.device, args.threads) == \
        ("gpt2", "p.yaml", 64, 2, "decode", "cpu", 1)
    assert args.force and args.json and args.out == "d" and callable(args.func)


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "nope", "--profile", "cpu-generic"], "workload.model: got 'nope'"),
    (["--model", "gpt2-tiny", "--profile", "no-such-profile.yaml"], "platform"),
    (["--model", "gpt2-tiny", "--profile", "cpu-generic", "--threads", "0"], "threads: got 0"),
    (["--model", "gpt2-tiny", "--profile", "cpu-generic", "--device", "tpu"], "device: got 'tpu'"),
])
def test_bad_input_is_one_line_and_status_2(cli, capsys, argv, message):
    assert cli(["validate", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("hetsim: error: ") and message in err


def test_json_prints_one_object_and_writes_the_folder(cli, capsys, tmp_path):
    assert cli(["validate", *TINY, "--json", "--out", str(tmp_path / "v")]) == 0
    out, err = capsys.readouterr()
    assert out.strip().count("\n") == 0
    report = json.loads(out)
    assert {"e2e_error", "measured_s", "predicted_s", "per_op_mape"} <= set(report)
    assert report["name"] == "gpt2-tiny" and report["phase"] == "decode" and report["seq_len"] == 8
    assert report["calibrated"] is False and "has no manifest" in err
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["ops.csv", "scatter.png", "validation.json"]
    assert set(report["outputs"]) == {"ops.csv", "scatter.png", "validation.json"}


@pytest.mark.skipif(not wired(), reason="hetsim/cli.py does not register the validate verb yet")
def test_the_installed_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hetsim.cli", "validate", "--model", "nope", "--profile",
                           "cpu-generic"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "workload.model: got 'nope'" in proc.stderr
