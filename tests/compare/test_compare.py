"""``hetsim compare``: suite expansion, the output folder, the JSON summary, determinism, bad suites."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from hetsim.cli import main
from hetsim.compare import COLUMNS, load_suite, parse_suite, run_suite, summarize
from hetsim.errors import ScenarioError

ROOT = Path(__file__).resolve().parents[2]
PAPER = str(ROOT / "scenarios/instances/topcuoglu2002.json")
TINY = {
    "name": "tiny",
    "seeds": [0, 1],
    "schedulers": ["heft", "cpop", "eft"],
    "exact": {"max_tasks": 10, "time_limit_s": 10},
    "graphs": [{"instance": PAPER},
               {"generator": "random_layered", "n_tasks": [6, 14], "ccr": [0.5, 2], "n_units": 3}],
}


def write_suite(tmp_path: Path, data: dict, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny")
    out = tmp / "out"
    assert main(["compare", str(write_suite(tmp, TINY)), "--out", str(out)]) == 0
    return out


def test_a_grid_expands_to_every_combination_per_seed():
    suite = parse_suite({"seeds": [0, 1], "schedulers": ["heft"], "graphs": [
        {"generator": "random_layered", "n_tasks": [20, 40], "ccr": [0.1, 1, 5], "alpha": 0.5, "n_units": 4},
        {"generator": "gaussian_elimination", "matrix_size": 5, "ccr": 1, "n_units": 3},
        {"instance": PAPER}]})
    ids = [c.graph_id for c in suite.cases]
    assert len(ids) == 2 * 3 * 2 + 2 + 1 and len(set(ids)) == len(ids)
    assert ids[0] == "random_layered(n_tasks=20,ccr=0.1,alpha=0.5,n_units=4)#seed0"
    assert ids[-1] == "topcuoglu2002" and suite.cases[-1].seed is None
    assert suite.cases[-2].family == "gaussian_elimination" and suite.cases[-2].ccr == 1.0


def test_default_schedulers_are_every_registered_one_but_exact():
    from hetsim.sched import list_schedulers

    suite = parse_suite({"graphs": [{"instance": PAPER}]})
    assert [e.label for e in suite.schedulers] == [n for n in list_schedulers() if n != "exact"]
    assert suite.seeds == (0,) and suite.exact is None and suite.outputs["dir"] == "out/compare"


def test_relative_paths_resolve_against_the_suite_folder(tmp_path):
    (tmp_path / "inst").mkdir()
    (tmp_path / "inst" / "paper.json").write_text(Path(PAPER).read_text())
    suite = load_suite(write_suite(tmp_path, {"graphs": [{"instance": "inst/paper.json"}]}))
    assert suite.cases[0].source == str(tmp_path / "inst" / "paper.json") and suite.name == "suite"


def test_the_output_folder(tiny_run):
    names = sorted(p.name for p in tiny_run.iterdir())
    assert names == ["results.csv", "runtime.png", "slr_vs_ccr.png", "slr_vs_size.png", "summary.csv",
                     "summary.json"]
    for png in ("runtime.png", "slr_vs_ccr.png", "slr_vs_size.png"):
        assert (tiny_run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = read_rows(tiny_run / "results.csv")
    assert tuple(rows[0]) == COLUMNS
    cases = 1 + 2 * 2 * 2
    small = 1 + 2 * 2  # the paper's 10 tasks and the 6-task graphs get the exact optimum
    assert len(rows) == 3 * cases + small
    assert all(r["error"] == "" and float(r["slr"]) >= 1 - 1e-9 for r in rows)
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert set(summary["schedulers"]) == {"heft", "cpop", "eft", "exact"}
    assert summary["cases"] == cases and summary["rows"] == len(rows) and summary["errors"] == 0
    assert all(s["mean_slr"] >= 1 for s in summary["schedulers"].values())
    header = (tiny_run / "summary.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["scheduler", "runs", "errors"] and "wins" in header and "mean_gap_to_optimum" in header


def test_heft_and_the_optimum_on_the_papers_example(tiny_run):
    rows = {r["scheduler"]: r for r in read_rows(tiny_run / "results.csv") if r["graph_id"] == "topcuoglu2002"}
    assert float(rows["heft"]["makespan_s"]) == 80 and float(rows["cpop"]["makespan_s"]) == 86
    assert float(rows["exact"]["makespan_s"]) == 73 and rows["exact"]["optimal_proved"] == "true"
    assert float(rows["heft"]["optimum"]) == 73
    assert float(rows["heft"]["gap_to_optimum"]) == pytest.approx(80 / 73 - 1)
    assert rows["heft"]["energy_j"] == ""  # abstract units: an instance says nothing about energy


def test_generated_graphs_get_a_bound_not_a_proof(tiny_run):
    rows = [r for r in read_rows(tiny_run / "results.csv") if r["graph_id"].startswith("random_layered(n_tasks=6,")]
    exact = [r for r in rows if r["scheduler"] == "exact"]
    assert len(exact) == 4 and all(r["optimal_proved"] == "false" and r["optimum"] == "" for r in exact)
    for r in rows:  # unrounded float costs: CP-SAT's optimum is within its rounding of the real one
        assert float(r["lower_bound"]) <= float(r["makespan_s"]) and float(r["gap_to_bound"]) >= 0
    assert all(float(r["gap_to_bound"]) < 1e-3 for r in exact)


def test_json_prints_exactly_one_object(tmp_path, capsys):
    suite = write_suite(tmp_path, {"schedulers": ["heft", "eft"], "graphs": [{"instance": PAPER}]})
    assert main(["compare", str(suite), "--out", str(tmp_path / "o"), "--json", "--no-plots"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out)  # raises if stdout holds anything else
    assert out.strip().count("\n") == 0
    assert summary["schedulers"]["heft"]["wins"] == 1 and summary["schedulers"]["eft"]["wins"] == 0
    assert sorted(summary["outputs"]) == ["results.csv", "summary.csv", "summary.json"]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["results.csv", "summary.csv", "summary.json"]


def test_the_same_suite_gives_the_same_rows():
    suite = parse_suite(TINY)
    first, second = run_suite(suite), run_suite(suite)
    strip = [{k: v for k, v in r.items() if k != "scheduler_time_s"} for r in first]
    assert strip == [{k: v for k, v in r.items() if k != "scheduler_time_s"} for r in second]


def test_flags_replace_the_suites_schedulers_and_seeds(tmp_path, capsys):
    suite = write_suite(tmp_path, TINY)
    out = tmp_path / "o"
    assert main(["compare", str(suite), "--out", str(out), "--json", "--no-plots", "--schedulers", "heft",
                 "--seeds", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["seeds"] == [3] and set(summary["schedulers"]) == {"heft", "exact"}
    assert all(r["seed"] in ("", "3") for r in read_rows(out / "results.csv"))


def test_a_failing_scheduler_gives_an_error_row(tmp_path):
    rows = run_suite(parse_suite({"schedulers": ["heft", {"name": "single", "options": {"unit": "P9"}}],
                                  "graphs": [{"instance": PAPER}]}))
    heft, single = rows
    assert heft["error"] is None and heft["makespan_s"] == 80
    assert single["error"].startswith("ScheduleError: ") and "P9" in single["error"]
    assert single["makespan_s"] is None and single["slr"] is None
    summary = summarize(rows, parse_suite({"schedulers": ["heft", {"name": "single", "options": {"unit": "P9"}}],
                                           "graphs": [{"instance": PAPER}]}))
    assert summary["schedulers"]["single"] == {**summary["schedulers"]["single"], "runs": 0, "errors": 1,
                                               "mean_slr": None, "wins": 0}
    assert summary["errors"] == 1 and summary["schedulers"]["heft"]["wins"] == 1


BAD = [
    ({"graphs": [{"instance": PAPER}], "colour": "red"}, "suite.colour: unknown field"),
    ({"graphs": [{"generator": "lu", "n_units": 2}]}, "graphs[0].generator: got 'lu', expected one of"),
    ({"graphs": [{"instance": PAPER}, {"generator": "random_layered", "n_tasks": 5, "n_units": 2, "ccr": "x"}]},
     "graphs[1].ccr: got 'x', expected a number"),
    ({"graphs": [{"generator": "random_layered", "n_tasks": [5, 1.5], "n_units": 2}]},
     "graphs[0].n_tasks[1]: got 1.5, expected an integer"),
    ({"graphs": [{"generator": "random_layered", "n_tasks": 5}]}, "graphs[0].n_units: missing"),
    ({"graphs": [{"generator": "fft", "points": 6, "n_units": 2}]}, "graphs[0]: fft(points=6,n_units=2)#seed0: "),
    ({"graphs": [{"instance": "nowhere.json"}]}, "graphs[0].instance: got 'nowhere.json'"),
    ({"graphs": [{"instance": PAPER}], "schedulers": ["heft", "nope"]}, "schedulers[1]: got 'nope', expected one of"),
    ({"graphs": [{"instance": PAPER}], "schedulers": ["exact"]}, "schedulers[0]: got 'exact'"),
    ({"graphs": [{"instance": PAPER}], "schedulers": [{"name": "heft", "options": {"speed": 2}}]},
     "schedulers[0].options.speed: unknown option of 'heft'"),
    ({"graphs": [{"instance": PAPER}], "exact": {"max_tasks": 0}}, "exact.max_tasks: got 0"),
    ({"graphs": [{"instance": PAPER}], "sim": {"contention": "maybe"}}, "sim.contention: got 'maybe'"),
    ({"graphs": [{"model": "gpt2-tiny", "seq_len": 8, "platforms": ["nowhere"]}]}, "graphs[0].platforms[0]: "),
    ({"graphs": [{"model": "gpt9", "seq_len": 8, "platforms": ["gh200"]}]}, "graphs[0].model: got 'gpt9'"),
    ({"graphs": []}, "graphs: got [], expected a non-empty list"),
]


@pytest.mark.parametrize(("data", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_a_bad_suite_is_one_line_exit_2_and_no_output(tmp_path, capsys, data, message):
    out = tmp_path / "out"
    assert main(["compare", str(write_suite(tmp_path, data)), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hetsim: error: ") and message in lines[0], captured.err
    assert not out.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--seeds", "0,x"], "--seeds: got '0,x', expected comma-separated integers"),
    (["--schedulers", "heft,nope"], "--schedulers[1]: got 'nope'"),
])
def test_bad_flags_are_one_line_exit_2(tmp_path, capsys, args, message):
    suite = write_suite(tmp_path, {"graphs": [{"instance": PAPER}]})
    assert main(["compare", str(suite), "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and not (tmp_path / "out").exists()


def test_a_missing_suite_file_is_one_line(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "none.yaml")]) == 2
    assert "suite: got" in capsys.readouterr().err


def test_load_suite_raises_scenario_error(tmp_path):
    with pytest.raises(ScenarioError, match=r"^outputs\.plots: got 'yes'"):
        load_suite(write_suite(tmp_path, {"graphs": [{"instance": PAPER}], "outputs": {"plots": "yes"}}))


def test_the_shipped_suites_load():
    classic = load_suite(ROOT / "scenarios/compare/classic.yaml")
    assert classic.exact is not None and len(classic.cases) > 100
    assert any(c.graph_id == "topcuoglu2002" for c in classic.cases)
    transformers = load_suite(ROOT / "scenarios/compare/transformers.yaml")
    assert {c.platform for c in transformers.cases} >= {"gh200", "mobile-soc"}


def test_a_model_on_a_preset_has_energy_and_a_platform(tmp_path):
    suite = parse_suite({"schedulers": ["eft", "single"], "graphs": [
        {"model": "gpt2-tiny", "phase": "prefill", "batch": 1, "seq_len": 8, "platforms": ["gh200", "h100-sxm"]}]})
    rows = run_suite(suite)
    assert [(r["platform"], r["scheduler"]) for r in rows] == [("gh200", "eft"), ("gh200", "single"),
                                                               ("h100-sxm", "eft"), ("h100-sxm", "single")]
    assert rows[0]["graph_id"] == "gpt2-tiny(phase=prefill,batch=1,seq_len=8,dtype=bf16)"
    assert all(r["error"] is None and r["energy_j"] > 0 and r["slr"] >= 1 for r in rows)
    assert rows[0]["n_units"] == 2 and rows[2]["n_units"] == 1 and rows[2]["efficiency"] == rows[2]["speedup"]


def test_a_rerun_without_plots_leaves_no_stale_plot(tmp_path):
    suite = write_suite(tmp_path, {"schedulers": ["heft"], "graphs": [
        {"generator": "fork_join", "width": [2, 3], "ccr": [0.5, 1], "n_units": 2}]})
    out = tmp_path / "out"
    assert main(["compare", str(suite), "--out", str(out)]) == 0
    assert (out / "slr_vs_ccr.png").is_file()
    assert main(["compare", str(suite), "--out", str(out), "--no-plots"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "summary.csv", "summary.json"]
