"""Serving from scenarios: ``serve:`` through ``hetsim run`` (summary, requests.csv, errors) and a sweep."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from hetsim.cli import main
from hetsim.errors import ScenarioError
from hetsim.scenario import load_scenario, parse_scenario, run_scenario
from hetsim.serve.run import ServeRun
from hetsim.sweep import run_sweep

GRID = {"prefill_grid": [16, 64, 128, 256], "decode_grid": [[1, 32], [8, 128], [16, 64], [32, 255]]}
SCENARIO = {
    "name": "serve_tiny",
    "platform": "h100-sxm",
    "workload": {"model": "llama-tiny"},
    "serve": {"requests": 50, "rate_per_s": 100, "prompt": {"dist": "uniform", "lo": 16, "hi": 128},
              "output": {"dist": "fixed", "value": 16}, "token_budget": 256,
              "slo": {"ttft_s": 0.01, "tpot_s": 0.005}, **GRID},
}


@pytest.fixture
def scenario_file(tmp_path):
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(dict(SCENARIO, outputs={"dir": str(tmp_path / "out")})))
    return path


def test_run_json_prints_one_object_with_serving_metrics_and_writes_requests_csv(scenario_file, capsys):
    assert main(["run", str(scenario_file), "--json"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out)  # exactly one JSON object on stdout
    for key in ("ttft_p99_s", "goodput_requests_per_s", "energy_per_token_j", "tpot_p99_s"):
        assert summary[key] > 0, key
    assert summary["platform"] == "h100-sxm" and summary["model"] == "llama-tiny" and summary["tp"] == 1
    assert summary["requests"] == 50 and summary["tokens"] == 50 * 16
    folder = scenario_file.parent / "out"
    with open(folder / "requests.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 50 and [int(r["id"]) for r in rows] == list(range(50))
    assert json.loads((folder / "summary.json").read_text())["ttft_p99_s"] == summary["ttft_p99_s"]
    assert sorted(p.name for p in folder.iterdir()) == ["requests.csv", "summary.json"]  # no temporary files left


def test_run_without_json_prints_a_table(scenario_file, capsys):
    assert main(["run", str(scenario_file)]) == 0
    assert "TTFT p99" in capsys.readouterr().out


def test_run_scenario_returns_an_object_with_summary_makespan_and_energy(tmp_path):
    result, written = run_scenario(parse_scenario(SCENARIO), out_dir=tmp_path)
    assert isinstance(result, ServeRun)
    assert result.summary["energy_j"] == result.energy_j > 0 and result.makespan_s > 0
    assert set(written) == {"summary", "requests_csv"}


@pytest.mark.parametrize(("override", "field"), [
    ("serve.batching=dynamic", "serve.batching"),
    ("serve.preemption=drop", "serve.preemption"),
    ("serve.requests=0", "serve.requests"),
    ("serve.rate_per_s=-1", "serve.rate_per_s"),
    ("serve.prompt={dist: weird}", "serve.prompt.dist"),
    ("serve.slo={ttft: 1}", "serve.slo"),
    ("serve.colour=red", "serve.colour"),
    ("serve.trace=missing.csv", "serve.trace"),
    ("workload.graph=g.json", "workload.graph"),
])
def test_bad_serve_field_exits_2_with_one_line_naming_it(scenario_file, capsys, override, field):
    assert main(["run", str(scenario_file), "--set", override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"hetsim: error: {field}"), err


def test_tp_beyond_the_platform_exits_2(scenario_file, capsys):
    assert main(["run", str(scenario_file), "--set", "serve.tp=2"]) == 2
    assert capsys.readouterr().err.startswith("hetsim: error: serve.tp: got 2")


def test_trace_path_is_relative_to_the_scenario(tmp_path):
    (tmp_path / "t.csv").write_text("arrival_s,prompt_tokens,output_tokens\n0.0,20,4\n0.01,30,2\n")
    data = dict(SCENARIO, serve={"trace": "t.csv", **GRID})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    scenario = load_scenario(path)
    assert scenario.serve["arrival"] == "trace"
    result, _ = run_scenario(scenario, out_dir=tmp_path / "out")
    assert result.summary["requests"] == 2


def test_serve_section_must_be_a_mapping():
    with pytest.raises(ScenarioError, match=r"^serve: got 3"):
        parse_scenario(dict(SCENARIO, serve=3))


def test_sweep_over_rate_gives_growing_ttft_p99(tmp_path):
    spec = {"name": "rate", "scenario": SCENARIO, "grid": {"serve.rate_per_s": [100, 10000, 1000000]},
            "metrics": ["energy_per_token_j", "makespan_s"], "outputs": {"dir": str(tmp_path / "sweep")}}
    rows = run_sweep(spec, workers=3, progress=False)
    assert len(rows) == 3 and rows.errors == 0, [r["error"] for r in rows]
    ttft = [r["metrics"]["ttft_p99_s"] for r in rows]
    assert ttft == sorted(ttft) and ttft[-1] > 2 * ttft[0]
    assert all(r["metrics"]["goodput_requests_per_s"] > 0 and r["metrics"]["energy_per_token_j"] > 0 for r in rows)
    assert "ttft_p99_s" in (tmp_path / "sweep" / "results.csv").read_text().splitlines()[0]


SPLIT = dict(SCENARIO, platform="gh200", workload={"model": "llama-tiny", "dtype": "fp32"},
             serve=dict(SCENARIO["serve"], prefill={"units": ["gpu"]}, decode={"units": ["cpu"], "tp": 1}))


def test_a_disaggregated_scenario_names_each_requests_instances(tmp_path, capsys):
    path = tmp_path / "split.yaml"
    path.write_text(yaml.safe_dump(dict(SPLIT, outputs={"dir": str(tmp_path / "out")})))
    assert main(["run", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layout"] == "disaggregated: prefill on 1 units (tp 1), decode on 1 units (tp 1)"
    assert [(i["name"], i["role"], i["units"]) for i in summary["instances"]] == [
        ("prefill0", "prefill", ["gpu"]), ("decode0", "decode", ["cpu"])]
    assert summary["units"] == 2 and summary["kv_transfer_mean_s"] > 0
    assert sum(i["energy_j"] for i in summary["instances"]) <= summary["energy_j"]
    with open(tmp_path / "out" / "requests.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["prefill_on"], r["decode_on"]) for r in rows} == {("prefill0", "decode0")}


@pytest.mark.parametrize(("override", "field"), [
    ("serve.decode=null", "serve.decode"),
    ("serve.prefill.units=gpu", "serve.prefill.units"),
    ("serve.prefill.units=[tpu]", "serve.prefill.units"),
    ("serve.decode.tp=0", "serve.decode.tp"),
    ("serve.decode.ranks=2", "serve.decode.ranks"),
    ("serve.units=[gpu]", "serve.units"),
    ("serve.batching=static", "serve.batching"),
])
def test_bad_disaggregated_layout_exits_2_with_one_line(tmp_path, capsys, override, field):
    path = tmp_path / "split.yaml"
    path.write_text(yaml.safe_dump(dict(SPLIT, outputs={"dir": str(tmp_path / "out")})))
    assert main(["run", str(path), "--set", override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"hetsim: error: {field}"), err
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_the_shipped_serving_scenarios_load_and_the_split_one_runs_with_a_small_model(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "scenarios"
    for name in ("capacity_llama70b.yaml", "split_llama70b.yaml"):
        scenario = load_scenario(root / name)
        assert scenario.serve is not None and scenario.workload["model"] == "llama-3-70b"
    small = ["workload.model=llama-tiny", "serve.requests=20", "serve.prefill={units: [h.gpu0], tp: 1}",
             "serve.decode={units: [a.gpu0, a.gpu1], tp: 1}", "serve.prefill_grid=[16, 64, 256]",
             "serve.decode_grid=[[1, 32], [8, 64], [16, 128]]"]
    run, _ = run_scenario(load_scenario(root / "split_llama70b.yaml", small), out_dir=tmp_path)
    recs = run.result.records
    assert {r.decode_on for r in recs if r.output_tokens > 1} == {"decode0", "decode1"}
    # every KV cache crosses InfiniBand: at least the 2.5 us of NIC and switch latency of the preset
    assert min(r.kv_transfer_s for r in recs if r.decode_on) > 2.5e-6
    assert run.summary["units"] == 3


def test_a_pool_power_cap_from_a_scenario(tmp_path, capsys):
    path = tmp_path / "split.yaml"
    path.write_text(yaml.safe_dump(dict(SPLIT, outputs={"dir": str(tmp_path / "out")})))
    assert main(["run", str(path), "--json", "--set", "serve.decode.power={cap: 100 W}"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layout"].endswith("decode on 1 units (tp 1, power {'cap': '100 W'})")
    assert main(["run", str(path), "--set", "serve.decode.power=100"]) == 2
    assert capsys.readouterr().err.strip() == ("hetsim: error: serve.decode.power: got 100, expected a mapping of "
                                               "sim.power options such as {cap: 2400 W}")


def test_swap_preemption_from_a_scenario(tmp_path, capsys):
    path = tmp_path / "swap.yaml"
    data = dict(SCENARIO, platform="dgx-h100", outputs={"dir": str(tmp_path / "out")})
    data["serve"] = dict(SCENARIO["serve"], units=["gpu0"], kv_capacity_tokens=400, preemption="swap", rate_per_s=2000)
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["preemption"] == "swap" and summary["preemptions"] > 0 and summary["requests"] == 50
