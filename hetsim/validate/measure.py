"""Time a torch module for real: end to end, and op by op on its exported graph.

:func:`measure` runs ``module(*args, **kwargs)`` under :func:`torch.no_grad` with a pinned thread
count and returns a :class:`Measurement`:

* **end to end**: :class:`torch.utils.benchmark.Timer` over the eager module (``num_threads``
  pinned, warm-up first, at least ``repeats`` timed blocks); median and interquartile range.
* **per op**: the module is exported exactly as :func:`hetsim.capture` exports it, and
  ``ep.module()`` is run by a :class:`torch.fx.Interpreter` that times each ``call_function``
  node with :func:`time.perf_counter_ns` (argument lookup excluded). Several passes; the median
  per node, keyed by the fx node name — the op id :func:`hetsim.capture` gives that op.

On CPU a node's call is synchronous, so host timers are valid; on CUDA every timed region is
bracketed by :func:`torch.cuda.synchronize` (which serialises kernels that would otherwise
overlap, so per-op sums there are an upper bound of the pipelined end to end).

Measure with at most ``cores - 1`` threads on a machine running anything else: an
oversubscribed CPU turns a 20 ms forward into 150 ms.
"""

from __future__ import annotations

import gc
import math
import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from hetsim.errors import HetsimError


class MeasurementError(HetsimError, ValueError):
    """A measurement cannot be made as asked (no such device, a bad thread count, ...)."""


def default_threads() -> int:
    """Threads a measurement uses by default: all cores but one, at least one."""
    return max(1, (os.cpu_count() or 1) - 1)


@dataclass(frozen=True)
class Measurement:
    """What :func:`measure` found. Times in seconds.

    Attributes
    ----------
    device : str
        ``"cpu"`` or a CUDA device (``"cuda"``, ``"cuda:1"``).
    threads : int
        Intra-op threads torch used.
    e2e_median_s, e2e_iqr_s : float
        Median and interquartile range of the eager forward (:class:`torch.utils.benchmark.Timer`).
    e2e_times_s : tuple of float
        The timed blocks (each the mean of ``number_per_run`` forwards).
    op_median_s : mapping
        fx node name → median seconds over :attr:`passes` interpreter passes.
    op_target : mapping
        fx node name → the ATen op it calls (``aten.linear.default``).
    passes : int
        Interpreter passes timed (after warm-up).
    interpreter_median_s : float
        Median wall time of one whole interpreter pass (its Python overhead included).
    """

    device: str
    threads: int
    e2e_median_s: float
    e2e_iqr_s: float
    e2e_times_s: tuple[float, ...] = field(repr=False)
    number_per_run: int
    op_median_s: Mapping[str, float] = field(repr=False)
    op_target: Mapping[str, str] = field(repr=False)
    passes: int
    interpreter_median_s: float

    @property
    def e2e_iqr_fraction(self) -> float:
        """Interquartile range relative to the median (the measurement's dispersion)."""
        return self.e2e_iqr_s / self.e2e_median_s if self.e2e_median_s > 0 else math.nan

    @property
    def sum_op_median_s(self) -> float:
        """Sum of the per-op medians (no Python overhead between ops)."""
        return math.fsum(self.op_median_s.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (per-op medians included)."""
        return {"device": self.device, "threads": self.threads, "e2e_median_s": self.e2e_median_s,
                "e2e_iqr_s": self.e2e_iqr_s, "e2e_iqr_fraction": self.e2e_iqr_fraction,
                "e2e_blocks": len(self.e2e_times_s), "number_per_run": self.number_per_run,
                "passes": self.passes, "interpreter_median_s": self.interpreter_median_s,
                "sum_op_median_s": self.sum_op_median_s, "op_median_s": dict(self.op_median_s)}


def _check_device(device: str) -> Callable[[], None]:
    """The synchronize function of ``device`` (a no-op on CPU); unknown or absent devices raise."""
    import torch

    if device == "cpu":
        return lambda: None
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise MeasurementError(f"device: got {device!r}, expected 'cpu' (CUDA is not available here)")
        dev = torch.device(device)
        return lambda: torch.cuda.synchronize(dev)
    raise MeasurementError(f"device: got {device!r}, expected 'cpu', 'cuda' or 'cuda:N'")


def _check_threads(threads: int | None) -> int:
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise MeasurementError(f"threads: got {threads!r}, expected an integer >= 1")
    return threads


def _flat_inputs(ep: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """The inputs of ``ep.module()``'s placeholders, in order (kwargs in the export's order)."""
    from torch.export._tree_utils import reorder_kwargs
    from torch.utils._pytree import tree_leaves

    spec = ep.call_spec.in_spec
    if kwargs and spec is not None:
        kwargs = reorder_kwargs(kwargs, spec)
    return tree_leaves((tuple(args), kwargs))


def _interpreter_class() -> type:
    import torch

    class _TimingInterpreter(torch.fx.Interpreter):
        """Times each ``call_function`` node's call (argument lookup excluded) into ``self.times``."""

        def __init__(self, gm: Any, sync: Callable[[], None]) -> None:
            super().__init__(gm)
            self.sync = sync
            self.times: dict[str, int] = {}

        def run_node(self, n: Any) -> Any:
            if n.op != "call_function":
                return super().run_node(n)
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            self.sync()
            start = time.perf_counter_ns()
            out = n.target(*args, **kwargs)
            self.sync()
            self.times[n.name] = time.perf_counter_ns() - start
            return out

    return _TimingInterpreter


def _e2e(fn: Callable[[], Any], sync: Callable[[], None], threads: int, min_run_time: float,
         repeats: int) -> tuple[list[float], int]:
    """Per-call times of ``repeats`` or more timed blocks of ``fn`` (Timer, threads pinned)."""
    from torch.utils.benchmark import Timer

    timer = Timer(stmt="fn(); sync()", globals={"fn": fn, "sync": sync}, num_threads=threads)
    m = timer.blocked_autorange(min_run_time=min_run_time)
    times = list(m.times)
    while len(times) < repeats:
        times.extend(timer.timeit(m.number_per_run).times)
    return times, int(m.number_per_run)


def _quartiles(values: list[float]) -> tuple[float, float]:
    """Median and interquartile range (0 for fewer than two values)."""
    if len(values) < 2:
        return (values[0] if values else math.nan), 0.0
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q2, q3 - q1


def measure(module: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any] | None = None, *, device: str = "cpu",
            threads: int | None = None, min_run_time: float = 0.5, repeats: int = 7, warmup: int = 2,
            max_passes: int = 200) -> Measurement:
    """Time ``module(*args, **kwargs)`` end to end and per op.

    Parameters
    ----------
    module : torch.nn.Module
        Run as is, with its real weights; it and the inputs must already be on ``device``.
        Call ``.eval()`` first for inference.
    args, kwargs
        Real input tensors (nested lists/tuples allowed, e.g. a KV cache).
    device : str
        ``"cpu"`` or ``"cuda[:N]"``: decides how timed regions are synchronised.
    threads : int, optional
        Intra-op threads, pinned for the whole measurement; default :func:`default_threads`.
    min_run_time : float
        Seconds of end-to-end timing (:meth:`~torch.utils.benchmark.Timer.blocked_autorange`),
        and the time the per-op passes aim to fill.
    repeats : int
        At least this many end-to-end blocks and interpreter passes.
    warmup : int
        Untimed forwards (and untimed interpreter passes) before timing.
    max_passes : int
        At most this many interpreter passes.

    Returns
    -------
    Measurement
        Per-op medians are keyed by fx node name, the op ids :func:`hetsim.capture` gives.
    """
    import torch

    from hetsim.graph.capture import export_program

    sync = _check_device(device)
    threads = _check_threads(threads)
    if repeats < 1 or warmup < 0 or min_run_time <= 0:
        raise MeasurementError(f"measure: got repeats={repeats!r}, warmup={warmup!r}, min_run_time={min_run_time!r}, "
                               "expected repeats >= 1, warmup >= 0 and min_run_time > 0")
    args, kwargs = tuple(args), dict(kwargs or {})
    ep = export_program(module, args, kwargs)
    gm = ep.module()
    flat = _flat_inputs(ep, args, kwargs)
    targets = {n.name: str(n.target) for n in gm.graph.nodes if n.op == "call_function"}
    interpreter_cls = _interpreter_class()

    def forward() -> Any:
        return module(*args, **kwargs)

    before = torch.get_num_threads()
    gc_was_enabled = gc.isenabled()
    try:
        torch.set_num_threads(threads)
        with torch.no_grad():
            for _ in range(warmup):
                forward()
            sync()
            times, number = _e2e(forward, sync, threads, min_run_time, repeats)
            torch.set_num_threads(threads)  # Timer restores the caller's count when it returns

            def one_pass() -> tuple[dict[str, int], int]:
                interp = interpreter_cls(gm, sync)
                start = time.perf_counter_ns()
                interp.run(*flat, enable_io_processing=False)
                sync()
                return interp.times, time.perf_counter_ns() - start

            for _ in range(warmup):
                one_pass()
            gc.collect()
            gc.disable()  # a collection inside a pass would land on one unlucky node
            per_op: dict[str, list[int]] = {name: [] for name in targets}
            walls: list[int] = []
            passes = repeats
            done = 0
            while done < passes:
                op_times, wall = one_pass()
                for name, ns in op_times.items():
                    per_op[name].append(ns)
                walls.append(wall)
                done += 1
                if done == 1:  # aim to fill min_run_time, within [repeats, max_passes]
                    passes = max(repeats, min(max_passes, math.ceil(min_run_time / max(wall * 1e-9, 1e-9))))
    finally:
        if gc_was_enabled:
            gc.enable()
        torch.set_num_threads(before)
    median, iqr = _quartiles(times)
    op_median = {name: statistics.median(ns) * 1e-9 for name, ns in per_op.items() if ns}
    return Measurement(device=device, threads=threads, e2e_median_s=median, e2e_iqr_s=iqr,
                       e2e_times_s=tuple(times), number_per_run=number,
                       op_median_s=MappingProxyType(op_median),
                       op_target=MappingProxyType({k: targets[k] for k in op_median}),
                       passes=len(walls), interpreter_median_s=statistics.median(walls) * 1e-9)
