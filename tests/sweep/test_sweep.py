"""``hetsim sweep``: expansion, the local pool and Dask executors, resumption, determinism, bad specs."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import pytest
import yaml

from hetsim.cli import main
from hetsim.graph.io import save_graph
from hetsim.graph.schema import add_op, new_graph
from hetsim.sweep import expand, parse_sweep, run_sweep
from hetsim.sweep.spec import SweepError

SCHEDULERS = ["eft", "heft", "met", "round_robin"]


@pytest.fixture(scope="module")
def graph_file(tmp_path_factory) -> Path:
    """A two-op graph: one point simulates in ~20 ms."""
    g = new_graph("two", phase="prefill", seq_len=8)
    add_op(g, "a", op="matmul", flop=2e12, bytes_read=8e6, dtype="bf16")
    add_op(g, "b", op="elementwise", flop=1e6, bytes_read=4e6, bytes_written=4e6, dtype="bf16")
    g.add_edge("a", "b", bytes=4e6)
    return save_graph(g, tmp_path_factory.mktemp("graph") / "two.json")


def tiny(graph_file: Path, out: Path, **extra) -> dict:
    """A sweep mapping over the two-op graph on one H100."""
    return {"name": "tiny", "scenario": {"platform": "h100-sxm", "workload": {"graph": str(graph_file)}},
            "outputs": {"dir": str(out)}, **extra}


def big(graph_file: Path, out: Path) -> dict:
    """4 schedulers × 50 random power caps = 200 points."""
    return tiny(graph_file, out, grid={"scheduler": SCHEDULERS},
                random={"samples": 50, "seed": 3, "space": {"sim.power.cap": [300.0, 700.0]}})


def metrics_by_id(rows) -> dict[str, dict]:
    return {r["id"]: r["metrics"] for r in rows}


# --- expansion -------------------------------------------------------------------------------------

def test_grid_is_the_cartesian_product(graph_file, tmp_path):
    spec = parse_sweep(tiny(graph_file, tmp_path, grid={"scheduler": SCHEDULERS, "sim.contention": ["none", "fair"],
                                                         "sim.track_memory": [True, False]}))
    points = expand(spec)
    assert len(points) == 4 * 2 * 2 == len({p.id for p in points})
    assert points[0].overrides == (("scheduler", "eft"), ("sim.contention", "none"), ("sim.track_memory", True))
    assert points[1].overrides[-1] == ("sim.track_memory", False)


def test_random_search_is_seeded(graph_file, tmp_path):
    def points(seed):
        space = {"sim.power.cap": [300.0, 700.0], "workload.seq_len": [16, 64], "scheduler": ["eft", "heft"]}
        raw = tiny(graph_file, tmp_path, random={"samples": 30, "seed": seed, "space": space})
        return [dict(p.overrides) for p in expand(parse_sweep(raw))]

    first = points(0)
    assert first == points(0) and first != points(1)
    assert all(300.0 <= p["sim.power.cap"] <= 700.0 and isinstance(p["sim.power.cap"], float) for p in first)
    assert all(16 <= p["workload.seq_len"] <= 64 and isinstance(p["workload.seq_len"], int) for p in first)
    assert {p["scheduler"] for p in first} == {"eft", "heft"}


def test_grid_and_random_combine(graph_file, tmp_path):
    raw = tiny(graph_file, tmp_path, grid={"scheduler": ["eft", "heft"]},
               random={"samples": 5, "space": {"sim.power.cap": {"choice": ["300 W", "400 W", "500 W", "600 W"]}}})
    points = [dict(p.overrides) for p in expand(parse_sweep(raw))]
    caps = [p["sim.power.cap"] for p in points]
    # every grid cell gets the same draws; repeated draws collapse into one point
    assert caps[: len(caps) // 2] == caps[len(caps) // 2:]
    assert [p["scheduler"] for p in points] == ["eft"] * (len(caps) // 2) + ["heft"] * (len(caps) // 2)
    assert 1 <= len(set(caps)) <= 4 and len(points) == 2 * len(set(caps))


# --- executors -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_200(graph_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "sweep"
    return run_sweep(big(graph_file, out), "local", workers=2, progress=False), out


def test_200_points_on_the_local_pool(local_200):
    rows, out = local_200
    assert (rows.points, rows.ran, rows.skipped, rows.errors) == (200, 200, 0, 0)
    assert len(rows) == 200 and all(r["metrics"]["makespan_s"] > 0 for r in rows)
    with (out / "results.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == 200
    assert list(table[0])[:3] == ["id", "scheduler", "sim.power.cap"] and "energy_j" in table[0]
    assert (out / "pareto.png").stat().st_size > 0
    assert len((out / "results.jsonl").read_text().splitlines()) == 200


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None, reason="needs dask[distributed]")
def test_200_points_on_a_dask_local_cluster(graph_file, tmp_path, local_200):
    rows = run_sweep(big(graph_file, tmp_path / "dask"), "dask", workers=2, progress=False)
    assert (rows.points, rows.ran, rows.errors) == (200, 200, 0)
    assert metrics_by_id(rows) == metrics_by_id(local_200[0])  # same points, same numbers, either executor


def test_a_failing_point_is_a_row_not_a_crash(graph_file, tmp_path):
    rows = run_sweep(tiny(graph_file, tmp_path / "s", grid={"scheduler": ["eft", "no_such_scheduler"]}),
                     workers=1, progress=False)
    assert rows.errors == 1 and rows[0]["error"] is None
    assert "no_such_scheduler" in rows[1]["error"] and rows[1]["metrics"] == {}
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pd.read_parquet(tmp_path / "s" / "results.parquet")  # the same table, typed
    assert list(frame["scheduler"]) == ["eft", "no_such_scheduler"]
    assert frame["makespan_s"].dtype == "float64" and frame["makespan_s"][0] == rows[0]["metrics"]["makespan_s"]
    assert math.isnan(frame["makespan_s"][1]) and "no_such_scheduler" in frame["error"][1]


# --- resumption and determinism --------------------------------------------------------------------

def test_a_rerun_runs_only_the_missing_points(graph_file, tmp_path):
    raw = tiny(graph_file, tmp_path / "s", grid={"scheduler": SCHEDULERS},
               random={"samples": 5, "seed": 0, "space": {"sim.power.cap": [300.0, 700.0]}})
    first = run_sweep(raw, workers=2, progress=False)
    assert (first.ran, first.skipped) == (20, 0)
    store = tmp_path / "s" / "results.jsonl"
    lines = store.read_text().splitlines()
    store.write_text("\n".join(lines[:10]) + "\n" + lines[10][:25])  # as if killed mid-write
    again = run_sweep(raw, workers=2, progress=False)
    assert (again.ran, again.skipped, again.points) == (10, 10, 20)
    assert metrics_by_id(again) == metrics_by_id(first)
    done = run_sweep(raw, workers=2, progress=False)
    assert (done.ran, done.skipped) == (0, 20)


def test_rows_of_another_base_are_run_again(graph_file, tmp_path):
    raw = tiny(graph_file, tmp_path / "s", grid={"scheduler": ["eft", "heft"]})
    assert run_sweep(raw, workers=1, progress=False).ran == 2
    raw["scenario"]["sim"] = {"power": {"cap": "300 W"}}  # same overrides, another base: stale rows
    rows = run_sweep(raw, workers=1, progress=False)
    assert (rows.ran, rows.skipped) == (2, 0)
    assert len((tmp_path / "s" / "results.jsonl").read_text().splitlines()) == 4


def test_same_spec_same_metrics(graph_file, tmp_path):
    raw = {"grid": {"scheduler": ["heft", "round_robin"], "sim.contention": ["none", "fair"]}}
    a = run_sweep(tiny(graph_file, tmp_path / "a", **raw), workers=2, progress=False)
    b = run_sweep(tiny(graph_file, tmp_path / "b", **raw), workers=1, progress=False)
    assert [r["id"] for r in a] == [r["id"] for r in b]
    assert metrics_by_id(a) == metrics_by_id(b)


# --- the command -----------------------------------------------------------------------------------

def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_cli_json_prints_one_object(graph_file, tmp_path, capsys):
    path = write(tmp_path, tiny(graph_file, tmp_path / "out", grid={"scheduler": ["eft", "heft"]}))
    assert main(["sweep", str(path), "--workers", "1", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got == {"name": "tiny", "points": 2, "ran": 2, "skipped": 0, "errors": 0,
                   "table": str(tmp_path / "out" / "results.csv")}


BAD = {
    "unknown field": ({"gird": {"scheduler": ["eft"]}}, "sweep.gird"),
    "unknown override key": ({"grid": {"workload.bogus": [1, 2]}}, "grid.workload.bogus"),
    "unknown top-level key": ({"grid": {"platfrom": ["h100-sxm"]}}, "grid.platfrom"),
    "grid entry not a list": ({"grid": {"scheduler": "eft"}}, "grid.scheduler"),
    "empty grid": ({"grid": {}}, "grid"),
    "no grid nor random": ({}, "grid"),
    "samples below one": ({"random": {"samples": 0, "space": {"sim.power.cap": [300, 700]}}}, "random.samples"),
    "bad range": ({"random": {"samples": 2, "space": {"sim.power.cap": [700, 300]}}}, "random.space.sim.power.cap"),
    "unknown metric": ({"grid": {"scheduler": ["eft"]}, "metrics": ["makespan"]}, "metrics"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_specs_are_one_line_and_exit_2(graph_file, tmp_path, capsys, case):
    extra, field = BAD[case]
    out = tmp_path / "out"
    path = write(tmp_path, tiny(graph_file, out, **extra))
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"hetsim: error: {field}"), err
    assert not out.exists()


def test_bad_base_file_and_bad_options(graph_file, tmp_path, capsys):
    out = tmp_path / "out"
    path = write(tmp_path, {"base": "missing.yaml", "grid": {"scheduler": ["eft"]}, "outputs": {"dir": str(out)}})
    assert main(["sweep", str(path)]) == 2
    assert capsys.readouterr().err.startswith("hetsim: error: base:")
    path = write(tmp_path, tiny(graph_file, out, grid={"scheduler": ["eft"]}))
    assert main(["sweep", str(path), "--workers", "0"]) == 2
    assert main(["sweep", str(path), "--address", "tcp://127.0.0.1:8786"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [e.split(":")[2].strip() for e in err] == ["--workers", "--address"]
    assert not out.exists()


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None, reason="needs dask[distributed]")
def test_an_unreachable_dask_scheduler_is_one_line(graph_file, tmp_path, capsys):
    import dask

    out = tmp_path / "out"
    path = write(tmp_path, tiny(graph_file, out, grid={"scheduler": ["eft"]}))
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert main(["sweep", str(path), "--executor", "dask", "--address", "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("hetsim: error: --address: got 'tcp://127.0.0.1:1', could not connect")
    assert not out.exists()


def test_the_example_sweep_parses():
    folder = Path(__file__).resolve().parents[2] / "scenarios" / "sweeps"
    spec = parse_sweep(yaml.safe_load((folder / "cap_batch.yaml").read_text()), folder=folder,
                       default_name="cap_batch")
    assert len(expand(spec)) == 18 and spec.out_dir == "out/sweeps/cap_batch"


def test_a_bad_value_spec_raises_sweep_error(graph_file, tmp_path):
    with pytest.raises(SweepError, match=r"random\.seed"):
        parse_sweep(tiny(graph_file, tmp_path, random={"samples": 1, "seed": "x", "space": {"scheduler": ["eft"]}}))
