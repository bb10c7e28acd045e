"""Time single ATen ops over a grid of sizes, the way validation times the nodes of a real model.

Validation (:mod:`hetsim.validate.measure`) runs ``torch.export(model).module()`` under a
:class:`torch.fx.Interpreter`, fetches each ``call_function`` node's arguments, then wraps
``perf_counter_ns`` around the eager call ``node.target(*args, **kwargs)``. A microbenchmark here
does the same with a one-node graph: the op's inputs are placeholders holding real tensors, the
arguments are fetched by the Interpreter outside the clock, and the timed call is the ATen
overload itself (``torch.ops.aten.linear.default`` ...), with the garbage collector off.

Each case is timed after warm-up, repeatedly (at least ``min_reps`` times, then until its time
budget or ``max_reps``), and summarised by the median and the inter-quartile range. On CPU the
calls are synchronous; on CUDA the device is synchronised before reading each clock. Each call
starts cold, as it would inside a forward pass (:class:`Context`): caches flushed, inputs rotated
through copies, outputs kept alive.

FLOPs and bytes are counted by :mod:`hetsim.graph.capture`'s own helpers on the one-node graph, so
a record's ``flop``/``bytes_read``/``bytes_written`` are what a captured model's node of the same
call carries.

Examples
--------
>>> from hetsim.validate._bench_cases import suite
>>> recs = run_suite(suite("quick", ["aten.add.Tensor"])[:2], threads=1, budget_s=0.002, min_reps=3)
>>> r = recs[0]
>>> r.target, r.kind, r.dtype, r.tiny, r.median_s > 0
('aten.add.Tensor', 'elementwise', 'fp32', True, True)
"""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from hetsim.validate._bench_cases import Call, Case
from hetsim.validate._context import _RING, _ROTATION_BYTES, Context

#: per-case settings of each grid: seconds of timing per case and pass, minimum and maximum
#: repetitions per pass, passes over the whole suite
GRID_SETTINGS = {
    "quick": {"budget_s": 0.02, "min_reps": 4, "max_reps": 30, "passes": 1},
    "full": {"budget_s": 0.06, "min_reps": 3, "max_reps": 100, "passes": 2},
}

#: a progress callback: (cases done, cases in all, label of the case just done)
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Record:
    """One timed case: what ran, what capture would count for it, and how long it took.

    ``dtype`` is what capture writes on such a node (``None`` for views, copies, embeddings and
    creation ops); ``tensor_dtype`` is the dtype of the tensors the benchmark made.
    """

    target: str
    variant: str
    kind: str
    dtype: str | None
    tensor_dtype: str
    label: str
    shapes: tuple[tuple[int, ...], ...]
    flop: int
    bytes_read: int
    bytes_written: int
    tiny: bool
    median_s: float
    iqr_s: float
    reps: int

    @property
    def bytes(self) -> int:
        """Bytes read + written, the size of a ``bytes`` curve."""
        return self.bytes_read + self.bytes_written

    def to_dict(self) -> dict:
        """Plain data (lists, numbers, strings) for JSON or YAML."""
        out = asdict(self)
        out["shapes"] = [list(s) for s in self.shapes]
        return out


def default_threads() -> int:
    """Threads to measure with: all cores but one (at least one), leaving a core for the rest."""
    return max(1, (os.cpu_count() or 1) - 1)


@contextlib.contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    """Run torch intra-op work on ``threads`` threads, restoring the previous setting after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _NodeRunner:
    """One op as a one-node fx graph, called as validation calls graph nodes.

    ``copies`` sets of the input tensors are rotated (untimed, in :meth:`prepare`) and the last
    outputs are kept alive, so each call reads inputs and writes an output that the calls and
    flushes since have evicted from the caches.
    """

    def __init__(self, call: Call, copies: int = 1, flush: Callable[[], None] | None = None):
        import torch
        import torch.fx

        graph = torch.fx.Graph()
        self.env: dict[Any, Any] = {}

        def lift(value: Any) -> Any:
            if isinstance(value, torch.Tensor) or (isinstance(value, tuple) and value
                                                   and all(isinstance(v, torch.Tensor) for v in value)):
                node = graph.placeholder(f"in{len(self.env)}")
                node.meta["val"] = value
                self.env[node] = value
                return node
            if isinstance(value, list) and value and all(isinstance(v, torch.Tensor) for v in value):
                return [lift(v) for v in value]
            return value

        args = tuple(lift(a) for a in call.args)
        kwargs = {k: lift(v) for k, v in call.kwargs.items()}
        self.node = graph.call_function(call.op, args, kwargs)
        graph.output(self.node)
        self.interpreter = torch.fx.Interpreter(torch.fx.GraphModule(torch.nn.Module(), graph))
        self.interpreter.env = dict(self.env)
        tensors = {n: t for n, t in self.env.items() if isinstance(t, torch.Tensor)}
        nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
        copies = max(1, min(copies, _ROTATION_BYTES // max(nbytes, 1) + 1))
        self.sets = [dict(tensors)] + [{n: t.clone() for n, t in tensors.items()} for _ in range(copies - 1)]
        self.turn = 0
        self.flush = flush
        self.ring: list[Any] = []
        self.ring_size = 1
        self.args, self.kwargs = self.interpreter.fetch_args_kwargs_from_env(self.node)

    def prepare(self) -> None:
        """Untimed: fetch the next set of input copies as the op's arguments, then flush the caches."""
        if len(self.sets) > 1:
            self.turn = (self.turn + 1) % len(self.sets)
            self.interpreter.env.update(self.sets[self.turn])
            self.args, self.kwargs = self.interpreter.fetch_args_kwargs_from_env(self.node)
        if self.flush is not None:
            self.flush()

    def run(self) -> Any:
        """The timed part: the eager call of the op on its fetched arguments."""
        return self.node.target(*self.args, **self.kwargs)

    def release(self) -> None:
        """Drop every tensor now: fx graphs hold reference cycles, and the garbage collector is
        off while a suite runs."""
        self.sets.clear()
        self.ring.clear()
        self.env.clear()
        self.interpreter.env.clear()
        self.args, self.kwargs = (), {}
        for node in self.node.graph.nodes:
            node.meta.clear()

    def keep(self, out: Any) -> None:
        """Untimed: hold the latest outputs, so the next output goes to memory not just freed."""
        self.ring.append(out)
        if len(self.ring) > self.ring_size:
            self.ring.pop(0)

    def fill_ring(self, out: Any) -> None:
        """Untimed: size the ring for outputs like ``out`` and fill it, so that no timed call pays
        for fresh pages (inside a model, outputs reuse memory freed by earlier ops)."""
        from hetsim.graph.capture import _dense_bytes

        self.ring_size = max(1, min(_RING, _ROTATION_BYTES // 2 // max(_dense_bytes(out), 1)))
        while len(self.ring) < self.ring_size:
            self.prepare()
            self.keep(self.run())


def count(node: Any) -> tuple[str, int, int, int, str | None]:
    """``(kind, flop, bytes_read, bytes_written, dtype)`` of a one-op fx node whose inputs and output
    carry real tensors in ``meta["val"]``, counted by capture's own rules."""
    from hetsim.graph.aten_kinds import classify, op_key
    from hetsim.graph.capture import (
        _NO_ARITHMETIC,
        _bytes_read,
        _compute_dtype,
        _dense_bytes,
        _flop,
        _kind,
        _tensors,
    )

    name, overload = op_key(node.target)
    kind, role = classify(name, overload)
    out = node.meta["val"]
    in_tensors = [t for a in node.all_input_nodes for t in _tensors(a.meta.get("val"))]
    kind = _kind(node, name, kind, role, in_tensors)
    free = kind == "view"
    reads = not free and role != "creation"
    flop = 0 if free else int(_flop(node, name, kind, role, in_tensors))
    bytes_read = _bytes_read(kind, in_tensors, out) if reads else 0
    bytes_written = 0 if free else _dense_bytes(out)
    dtype = None if kind in _NO_ARITHMETIC or role == "creation" else _compute_dtype(in_tensors, out)
    return kind, flop, bytes_read, bytes_written, dtype


def time_calls(run: Callable[[], Any], *, prepare: Callable[[], None] | None = None,
               sync: Callable[[], None] | None = None, keep: Callable[[Any], None] | None = None,
               budget_s: float = 0.1, min_reps: int = 5, max_reps: int = 400) -> list[int]:
    """Nanoseconds of each timed ``run()`` after warm-up (``prepare``, ``sync`` and ``keep``, which
    receives each output, are untimed).

    Warm-up runs at least once and for about a tenth of the budget; then ``run`` is timed at least
    ``min_reps`` times and until ``budget_s`` (wall time, ``prepare`` included) has passed or
    ``max_reps`` were taken.
    """
    prepare = prepare or (lambda: None)
    sync = sync or (lambda: None)
    start, warm = time.perf_counter(), 0
    while warm < 1 or (time.perf_counter() - start < budget_s / 10 and warm < max_reps):
        prepare()
        out = run()
        sync()
        if keep is not None:
            keep(out)
        del out
        warm += 1
    times: list[int] = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < budget_s):
        prepare()
        sync()
        t0 = time.perf_counter_ns()
        out = run()
        sync()
        times.append(time.perf_counter_ns() - t0)
        if keep is not None:
            keep(out)
        del out  # freed after the clock stops, as validation frees outputs outside run_node
    return times


def median_iqr(times_ns: Sequence[int]) -> tuple[float, float]:
    """Median and inter-quartile range of ``times_ns``, in seconds.

    Examples
    --------
    >>> median_iqr([1000, 2000, 3000, 4000, 5000])
    (3e-06, 3e-06)
    """
    med = statistics.median(times_ns) / 1e9
    if len(times_ns) < 2:
        return med, 0.0
    q1, _, q3 = statistics.quantiles(times_ns, n=4)
    return med, (q3 - q1) / 1e9


def _torch_dtype(name: str) -> Any:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp64": torch.float64}[name]


def measure(case: Case, *, device: str = "cpu", budget_s: float = 0.1, min_reps: int = 5, max_reps: int = 400,
            context: Context | None = None) -> Record:
    """Build, count and time one case (torch threads as currently set).

    ``context`` makes each call start cold, as inside a forward pass (see :class:`Context`);
    without one the op runs hot, on the same tensors each time (its best case).
    """
    import torch

    with torch.no_grad():
        call = case.build(torch.device(device), _torch_dtype(case.dtype))
        runner = _NodeRunner(call, context.copies if context else 1, context.flush if context else None)
        runner.node.meta["val"] = runner.run()
        kind, flop, bytes_read, bytes_written, dtype = count(runner.node)
        if context is not None:
            runner.fill_ring(runner.node.meta["val"])
        sync = (lambda: torch.cuda.synchronize(torch.device(device))) if device.startswith("cuda") else None
        shapes = tuple(tuple(int(d) for d in t.shape) for t in runner.env.values() if isinstance(t, torch.Tensor))
        try:
            times = time_calls(runner.run, prepare=runner.prepare, sync=sync,
                               keep=runner.keep if context else None, budget_s=budget_s, min_reps=min_reps,
                               max_reps=max_reps)
        finally:
            runner.release()
    med, iqr = median_iqr(times)
    return Record(target=case.target, variant=case.variant, kind=kind, dtype=dtype, tensor_dtype=case.dtype,
                  label=case.label, shapes=shapes, flop=flop, bytes_read=bytes_read, bytes_written=bytes_written,
                  tiny=case.tiny, median_s=med, iqr_s=iqr, reps=len(times))


def run_suite(cases: Sequence[Case], *, device: str = "cpu", threads: int | None = None,
              budget_s: float = 0.1, min_reps: int = 5, max_reps: int = 400, passes: int = 1,
              progress: Progress | None = None, context: Context | None = None) -> list[Record]:
    """Time every case with torch pinned to ``threads`` threads (default :func:`default_threads`).

    Parameters
    ----------
    cases
        From :func:`hetsim.validate._bench_cases.suite`.
    device
        ``"cpu"`` or a CUDA device (``"cuda"``, ``"cuda:1"``).
    budget_s, min_reps, max_reps
        Timing per case and pass (see :func:`time_calls`); :data:`GRID_SETTINGS` has the presets.
    passes
        Times through the whole suite; a case's time is the median of its passes' medians, so a
        machine whose speed drifts (a busy sibling hyperthread, a noisy neighbour) is sampled at
        several moments rather than once.
    progress
        Called after each case with (done, total, label).
    context
        What each call starts from; :meth:`Context.cold` of ``device`` by default.
    """
    threads = threads or default_threads()
    runs: list[list[Record]] = [[] for _ in cases]
    gc_was_enabled = gc.isenabled()
    with pinned_threads(threads):
        context = context or Context.cold(device)
        try:
            for p in range(passes):
                gc.collect()
                gc.disable()  # as validation does: a collection would land on one unlucky call
                for i, case in enumerate(cases):
                    if i % 64 == 63:
                        gc.collect()  # between cases, never inside one
                    runs[i].append(measure(case, device=device, budget_s=budget_s, min_reps=min_reps,
                                           max_reps=max_reps, context=context))
                    if progress is not None:
                        progress(p * len(cases) + i + 1, passes * len(cases), f"{case.target} {case.label}")
        finally:
            if gc_was_enabled:
                gc.enable()
    return [_combine(rs) for rs in runs]


def _combine(records: Sequence[Record]) -> Record:
    """One record of several passes over one case: median of the medians, reps summed."""
    if len(records) == 1:
        return records[0]
    return replace(records[0], median_s=statistics.median(r.median_s for r in records),
                   iqr_s=statistics.median(r.iqr_s for r in records), reps=sum(r.reps for r in records))
