"""Gantt PNG, rich tables and the files of one run."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
from rich.console import Console

from hetsim.report import plot_gantt, print_summary, summary, write_outputs
from hetsim.report._atomic import atomic_write
from hetsim.report.tables import format_bytes, format_energy, format_quantity, format_seconds
from hetsim.sim.trace import OpRun, PowerSample, Trace, TransferRun

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_gantt_writes_png(tmp_path, trace, platform, graph):
    path = plot_gantt(trace, platform, tmp_path / "g.png", graph)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]


def test_gantt_without_graph_and_with_tiny_makespan(tmp_path, platform):
    t = Trace("duo", "tiny", 3e-6, (OpRun("a", "gpu", 0.0, 3e-6, "p0", 1.0, 1.0),), (), (), ())
    assert plot_gantt(t, platform, tmp_path / "g.png").read_bytes().startswith(PNG_MAGIC)


def test_gantt_leaves_pyplot_backend_alone(tmp_path, trace, platform):
    import matplotlib

    before = matplotlib.get_backend()
    plot_gantt(trace, platform, tmp_path / "g.png")
    assert matplotlib.get_backend() == before


def test_gantt_with_many_slices_is_fast(tmp_path, platform):
    n = 30_000
    ops = tuple(OpRun(f"op{i}", "cpu" if i % 2 else "gpu", i * 1e-4, i * 1e-4 + 8e-5, "p0", 0.0, 0.0)
                for i in range(n))
    transfers = tuple(TransferRun(f"op{i}", f"op{i + 1}", "ddr", "hbm", ("c2c",), i * 1e-4, i * 1e-4 + 5e-5, 1.0)
                      for i in range(0, n, 3))
    power = tuple(PowerSample(i * 1e-3, "cpu", 100.0 + i % 7) for i in range(n // 10))
    t = Trace("duo", "big", n * 1e-4, ops, transfers, power, ())
    start = time.perf_counter()
    path = plot_gantt(t, platform, tmp_path / "big.png")
    assert time.perf_counter() - start < 20  # one barh per op would take minutes
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_format_quantity():
    assert format_seconds(0.0123) == "12.3 ms"
    assert format_seconds(2e-5) == "20 µs"
    assert format_energy(1500.0) == "1.5 kJ"
    assert format_bytes(8e9) == "8 GB"
    assert format_quantity(999.96, "W") == "1 kW"
    assert format_quantity(-0.5, "s") == "-500 ms"


def test_print_summary_shows_human_units(trace, platform, graph):
    buffer = io.StringIO()
    print_summary(summary(trace, platform, graph), console=Console(file=buffer, width=160, color_system=None))
    text = buffer.getvalue()
    for expected in ("4 s", "1.2 kJ", "cpu", "75.0 %", "ddr", "3 GB", "10 GB", "matmul", "63.2 %", "c2c", "67.5 mJ"):
        assert expected in text, expected


def test_print_summary_defaults_to_stderr(trace, platform, graph, capsys):
    print_summary(summary(trace, platform, graph))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "makespan" in captured.err


def test_write_outputs_writes_all_four_files(tmp_path, trace, platform, graph):
    out = tmp_path / "run" / "nested"
    written = write_outputs(trace, platform, graph, out)
    assert set(written) == {"summary", "ops_csv", "trace", "gantt"}
    assert sorted(p.name for p in out.iterdir()) == ["gantt.png", "ops.csv", "summary.json", "trace.json"]
    assert all(path.stat().st_size > 0 for path in written.values())

    data = json.loads((out / "summary.json").read_text())
    assert data == json.loads(json.dumps(summary(trace, platform, graph)))
    assert list(data) == sorted(data)
    assert data["energy_j"] == pytest.approx(1200.0675)

    rows = list(csv.DictReader((out / "ops.csv").open()))
    assert [r["op"] for r in rows] == ["a", "c", "b", "d"]
    d = rows[-1]
    assert (d["unit"], d["op_kind"], d["module"], d["power_state"]) == ("gpu", "elementwise", "layers.0.mlp", "p0")
    assert float(d["start_s"]) == 3.25 and float(d["duration_s"]) == 0.75 and float(d["inputs_ready_s"]) == 3.25
    assert float(d["flop"]) == 4e9 and float(d["bytes"]) == 0.5e9


def test_write_outputs_can_skip_files(tmp_path, trace, platform, graph):
    written = write_outputs(trace, platform, graph, tmp_path, trace_json=False, gantt=False, ops_csv=False)
    assert set(written) == {"summary"}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")

    def explode(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, explode)
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert target.read_text() == "old"


def test_write_outputs_failure_leaves_no_half_written_file(tmp_path, trace, platform, graph, monkeypatch):
    def broken(fig_self, tmp, **kwargs):
        tmp.write_bytes(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr("matplotlib.figure.Figure.savefig", broken)
    with pytest.raises(OSError):
        write_outputs(trace, platform, graph, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ops.csv", "summary.json", "trace.json"]
