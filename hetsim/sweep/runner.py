"""Run a sweep's points on a local process pool or a Dask cluster, resumably.

Each finished point is appended as one JSON line to ``results.jsonl`` in the output folder (one
``write`` on an ``O_APPEND`` file, so a line is whole or absent; a torn last line from a killed
run is ignored). A rerun loads the ids found there and runs only the missing points. At the end
the rows of the sweep's points are written to ``results.csv`` and ``results.parquet`` (the same
table with typed columns; pandas and pyarrow come with the ``sweep`` extra) and plotted
(:mod:`hetsim.sweep.plots`): ``pareto.png``, the Pareto front of makespan vs energy, or for
serving points of p99 TTFT vs energy per token (and vs chips when rows have ``units``); and,
only when the sweep has serving points, ``latency_throughput.png``, p99 TTFT and p99 end-to-end
latency vs throughput, one line per configuration across the swept ``serve.rate_per_s``.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from hetsim.errors import HetsimError
from hetsim.scenario import run_scenario
from hetsim.sweep.plots import pareto_front, plot_latency_throughput, plot_pareto
from hetsim.sweep.spec import Point, SweepError, SweepSpec, expand, load_sweep, parse_sweep, scenario_of

EXECUTORS = ("local", "dask")
#: Columns every serving point (a scenario with ``serve:``) adds to its row besides the sweep's metrics.
SERVE_METRICS = ("ttft_p50_s", "ttft_p99_s", "tpot_p99_s", "e2e_p99_s", "throughput_tokens_per_s",
                 "throughput_requests_per_s", "goodput_requests_per_s", "slo_attainment", "energy_per_token_j",
                 "units", "preemptions")
#: Summary keys a serving point keeps in its row's ``summary`` for the plots (``units`` only when reported).
SERVE_SUMMARY = ("ttft_p99_s", "e2e_p99_s", "tpot_p99_s", "throughput_requests_per_s", "energy_per_token_j",
                 "units", "tp", "platform")


class SweepRows(list):
    """The rows of a sweep's points (a ``list[dict]`` in expansion order) plus what the run did.

    Attributes: ``name``, ``points`` (how many), ``ran`` (run now), ``skipped`` (found in
    results.jsonl), ``errors`` (rows with an error), ``table`` (path of results.csv) and
    ``out_dir``.
    """

    name: str = ""
    points: int = 0
    ran: int = 0
    skipped: int = 0
    errors: int = 0
    table: str = ""
    out_dir: str = ""

    def stats(self) -> dict[str, Any]:
        """The run's counts and table path as one JSON-ready mapping."""
        return {"name": self.name, "points": self.points, "ran": self.ran, "skipped": self.skipped,
                "errors": self.errors, "table": self.table}


def _pick(summary: Mapping[str, Any], metric: str) -> dict[str, Any]:
    """The columns of one metric: ``key`` as is, ``key.sub`` one entry, a mapping flattened to ``key.sub``."""
    head, _, sub = metric.partition(".")
    value = summary.get(head)
    if sub:
        return {metric: value.get(sub) if isinstance(value, Mapping) else None}
    if isinstance(value, Mapping):
        return {f"{head}.{k}": v for k, v in sorted(value.items())}
    return {metric: value}


def run_point(spec: SweepSpec, point: Point) -> dict[str, Any]:
    """Run one point (in a worker) and return its row; a :class:`HetsimError` becomes the row's ``error``."""
    start = time.perf_counter()
    row: dict[str, Any] = {"id": point.id, "overrides": dict(point.overrides), "metrics": {}, "error": None,
                           "sweep": spec.fingerprint()}
    try:
        with tempfile.TemporaryDirectory(prefix="hetsim-sweep-") as tmp:
            result, _ = run_scenario(scenario_of(spec, point), out_dir=tmp)
        summary = result.summary
        for metric in spec.metrics:
            row["metrics"].update(_pick(summary, metric))
        row["summary"] = {k: summary.get(k) for k in ("makespan_s", "energy_j")}
        if "ttft_p99_s" in summary:  # a serving point: its latency and goodput columns, and what the plots read
            row["metrics"].update({m: summary.get(m) for m in SERVE_METRICS if m not in row["metrics"]})
            row["summary"].update({k: summary[k] for k in SERVE_SUMMARY if k in summary})
    except HetsimError as exc:
        row["error"] = str(exc)
    row["wall_s"] = time.perf_counter() - start
    return row


def load_results(path: Path) -> dict[str, dict]:
    """Finished rows of ``results.jsonl`` by point id.

    A torn or foreign line is skipped; when an id appears twice the last line wins.
    """
    rows: dict[str, dict] = {}
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("id"), str):
            rows[row["id"]] = row
    return rows


def append_result(path: Path, row: Mapping[str, Any]) -> None:
    """Append one row as one line with a single ``write`` (whole or absent after a crash)."""
    data = (json.dumps(row, sort_keys=True, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # A torn line left by a killed run must not swallow this one.
        if os.fstat(fd).st_size and not _ends_with_newline(path):
            data = b"\n" + data
        os.write(fd, data)
    finally:
        os.close(fd)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _local(spec: SweepSpec, points: list[Point], workers: int) -> Iterator[dict]:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(run_point, spec, p) for p in points]
        for future in as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _dask(spec: SweepSpec, points: list[Point], workers: int, address: str | None) -> Iterator[dict]:
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if address is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        client = Client(cluster if cluster is not None else address)
    except (OSError, ValueError) as exc:
        raise SweepError(f"--address: got {address!r}, could not connect to a Dask scheduler there "
                         f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    try:
        futures = client.map(run_point, [spec] * len(points), points, pure=False)
        for _, row in as_completed(futures, with_results=True):
            yield row
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def check_executor(executor: str, workers: int | None, address: str | None) -> None:
    """Refuse a bad executor choice before anything is written (one-line :class:`SweepError`)."""
    if executor not in EXECUTORS:
        raise SweepError(f"--executor: got {executor!r}, expected one of {', '.join(EXECUTORS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise SweepError(f"--workers: got {workers!r}, expected a positive integer")
    if address is not None and executor != "dask":
        raise SweepError(f"--address: got {address!r}, expected only with --executor dask")
    if executor == "dask" and importlib.util.find_spec("distributed") is None:
        raise SweepError("--executor dask: the distributed package is missing, expected it installed "
                         "(pip install 'hetsim[sweep]')")


def _progress(total: int, enabled: bool) -> tuple[Any, Callable[[], None]]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), disable=not enabled)
    task = bar.add_task("", total=total)
    return bar, lambda: bar.advance(task)


def run_sweep(spec_or_path: SweepSpec | Mapping | str | Path, executor: str = "local", *,
              workers: int | None = None, address: str | None = None, out_dir: str | Path | None = None,
              progress: bool = True) -> SweepRows:
    """Run every point of a sweep not already in its ``results.jsonl``; return all its rows.

    Parameters
    ----------
    spec_or_path : SweepSpec, mapping or path
        A checked spec, a sweep mapping (paths relative to the current folder) or a sweep YAML file.
    executor : {"local", "dask"}
        ``local``: a process pool on this machine; ``dask``: a ``distributed`` cluster at
        ``address``, or a LocalCluster started (and closed) for this run.
    workers : int, optional
        Processes of the pool or of the LocalCluster (default: ``os.cpu_count()``).
    address : str, optional
        Scheduler address of a running Dask cluster, e.g. ``tcp://10.0.0.1:8786``.
    out_dir : str or path, optional
        Output folder (default: the spec's ``outputs.dir``).
    progress : bool
        Show a rich progress bar on stderr.

    Returns
    -------
    SweepRows
        One row per point, ``{id, overrides, metrics, wall_s, error, ...}``, with run counts.
    """
    if isinstance(spec_or_path, SweepSpec):
        spec = spec_or_path
    elif isinstance(spec_or_path, Mapping):
        spec = parse_sweep(spec_or_path)
    else:
        spec = load_sweep(spec_or_path)
    check_executor(executor, workers, address)
    workers = workers or os.cpu_count() or 1
    points = expand(spec)
    out = Path(out_dir or spec.out_dir)
    if out.exists() and not out.is_dir():
        raise SweepError(f"outputs.dir: got {str(out)!r}, which is a file; expected a folder")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    store = out / "results.jsonl"
    wanted, fingerprint = {p.id for p in points}, spec.fingerprint()
    done = {pid: row for pid, row in load_results(store).items() if pid in wanted and row.get("sweep") == fingerprint}
    todo = [p for p in points if p.id not in done]
    ran = 0
    if todo:
        stream = _local(spec, todo, workers) if executor == "local" else _dask(spec, todo, workers, address)
        bar, advance = _progress(len(todo), progress)
        try:
            with bar:
                for row in stream:
                    append_result(store, row)
                    done[row["id"]] = row
                    ran += 1
                    advance()
        except SweepError:
            if created and not any(out.iterdir()):
                out.rmdir()
            raise
    rows = SweepRows(done[p.id] for p in points)
    rows.name, rows.points, rows.ran, rows.skipped = spec.name, len(points), ran, len(points) - len(todo)
    rows.errors = sum(1 for r in rows if r.get("error"))
    rows.table, rows.out_dir = str(write_table(rows, spec, out)), str(out)
    plot_pareto(rows, out / "pareto.png")
    plot_latency_throughput(rows, out / "latency_throughput.png", spec)
    return rows


def table_rows(rows: Iterable[Mapping], spec: SweepSpec) -> tuple[list[str], list[dict]]:
    """Flat table rows: id, one column per swept key, the metric columns, wall_s, error."""
    keys = [k for k, _ in spec.grid] + [k for k, _ in (spec.random.space if spec.random else ())]
    metric_cols: dict[str, None] = {}
    flat = []
    for row in rows:
        metric_cols.update(dict.fromkeys(row.get("metrics", {})))
        flat.append({"id": row["id"], **row.get("overrides", {}), **row.get("metrics", {}),
                     "wall_s": row.get("wall_s"), "error": row.get("error") or ""})
    return ["id", *keys, *metric_cols, "wall_s", "error"], flat


def write_table(rows: Iterable[Mapping], spec: SweepSpec, out: Path) -> Path:
    """Write ``results.csv`` (and ``results.parquet`` with pandas + pyarrow); return the CSV path."""
    columns, flat = table_rows(rows, spec)
    path = out / "results.csv"
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(flat)
    tmp.replace(path)
    if importlib.util.find_spec("pyarrow") is not None and importlib.util.find_spec("pandas") is not None:
        import pandas as pd

        kinds = {c: _column_kind(flat, c) for c in columns}
        frame = pd.DataFrame([{c: _parquet_value(row.get(c), kinds[c]) for c in columns} for row in flat],
                             columns=columns)
        tmp = out / "results.parquet.tmp"
        frame.to_parquet(tmp, index=False)
        tmp.replace(out / "results.parquet")
    return path


def _column_kind(rows: list[dict], column: str) -> str:
    """``number`` when every present value is an int or float (not bool), ``bool``, else ``text``."""
    values = [r.get(column) for r in rows if r.get(column) is not None and r.get(column) != ""]
    if values and all(isinstance(v, bool) for v in values):
        return "bool"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "number"
    return "text"


def _parquet_value(value: Any, kind: str) -> Any:
    """One cell in a column of one type: numbers as floats (missing: NaN), lists and mappings as JSON text."""
    if kind == "number":
        return float("nan") if value is None or value == "" else float(value)
    if kind == "bool" or value is None:
        return value
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


__all__ = ["EXECUTORS", "SERVE_METRICS", "SERVE_SUMMARY", "SweepRows", "append_result", "check_executor",
           "load_results", "pareto_front", "plot_latency_throughput", "plot_pareto", "run_point", "run_sweep",
           "table_rows", "write_table"]
