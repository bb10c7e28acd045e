"""Per-op times from a torch.profiler (Kineto) Chrome trace, as ops hetsim can cost.

A user records a real run with ``torch.profiler.profile(activities=[CPU, CUDA],
record_shapes=True)`` and ``prof.export_chrome_trace(path)``; :func:`read_profiler_trace` turns
the file into :class:`ProfiledOp` records, one per ATen op:

- on a GPU trace, an op's time is the summed duration of the GPU kernels it launched (events of
  category ``kernel`` whose ``External id`` is the op's, the way Kineto links a launch to its
  op): pure device time, as in ``shared/calibration/gpu_ops.csv``;
- on a CPU-only trace, an op's time is its own duration, for the outermost ATen ops only (their
  children, e.g. ``aten::mm`` under ``aten::matmul``, are inside it).

:func:`profiled_op` then rebuilds the op as capture would count it (kind, FLOPs, bytes, dtype,
shape) from the recorded ``Input Dims`` and ``Input type``, for the fits of
:mod:`hetsim.validate.gpu_fit`. Ops whose kind or sizes the record does not determine are left
out. Bad input (not JSON, no ``traceEvents``, negative or non-finite durations) raises a one-line
:class:`~hetsim.validate.calibrate.CalibrationError`.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hetsim.graph.aten_kinds import classify
from hetsim.graph.schema import DTYPE_BYTES
from hetsim.validate.calibrate import CalibrationError

#: profiler ``Input type`` strings -> schema dtypes
_TYPES = {"float": "fp32", "double": "fp64", "c10::Half": "fp16", "c10::BFloat16": "bf16",
          "c10::Float8_e4m3fn": "fp8", "c10::Float8_e5m2": "fp8", "signed char": "int8",
          "unsigned char": "uint8", "int": "int32", "long int": "int64", "bool": "bool"}
#: matrix products whose FLOPs follow from their input dims: 2·M·K·N (batched: ·B)
_GEMMS = frozenset({"mm", "addmm", "bmm", "baddbmm", "linear", "matmul"})


@dataclass(frozen=True)
class ProfiledOp:
    """One ATen op of a profiled run and how long it took (seconds)."""

    name: str
    input_dims: tuple[tuple[int, ...], ...]
    input_types: tuple[str, ...]
    seconds: float
    device: str


def _load(path: str | Path) -> list[Mapping[str, Any]]:
    where = f"--trace {str(path)!r}"
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise CalibrationError(f"{where}: cannot be read ({e.strerror}), expected a torch.profiler trace") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CalibrationError(f"{where}: not JSON (line {e.lineno}: {e.msg}), expected a torch.profiler "
                               "Chrome trace (prof.export_chrome_trace)") from None
    events = data.get("traceEvents") if isinstance(data, dict) else None
    if not isinstance(events, list):
        raise CalibrationError(f"{where}: got no 'traceEvents' list, expected a torch.profiler Chrome trace")
    return [e for e in events if isinstance(e, dict) and e.get("ph") == "X"]


def _duration(event: Mapping[str, Any], path: str | Path) -> float:
    dur = event.get("dur")
    if isinstance(dur, bool) or not isinstance(dur, int | float) or not math.isfinite(dur) or dur < 0:
        raise CalibrationError(f"--trace {str(path)!r}: event {event.get('name')!r} has dur {dur!r}, expected a "
                               "non-negative finite number of microseconds")
    return dur * 1e-6


def _op(event: Mapping[str, Any], seconds: float, device: str) -> ProfiledOp:
    args = event.get("args") or {}
    dims = tuple(tuple(int(d) for d in dim) if isinstance(dim, list) else () for dim in args.get("Input Dims", ()))
    types = tuple(str(t) for t in args.get("Input type", ()))
    return ProfiledOp(str(event.get("name", "")), dims, types, seconds, device)


def read_profiler_trace(path: str | Path) -> list[ProfiledOp]:
    """The ATen ops of a torch.profiler Chrome trace with their times (see the module docstring).

    Examples
    --------
    >>> import json, tempfile, os
    >>> events = [{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 0, "dur": 50, "pid": 1, "tid": 1,
    ...            "args": {"External id": 7, "Input Dims": [[64, 128], [128, 256]],
    ...                     "Input type": ["c10::Half", "c10::Half"]}},
    ...           {"ph": "X", "cat": "kernel", "name": "sm80_gemm", "ts": 10, "dur": 12, "pid": 0, "tid": 7,
    ...            "args": {"External id": 7}}]
    >>> path = os.path.join(tempfile.mkdtemp(), "t.json")
    >>> _ = open(path, "w").write(json.dumps({"traceEvents": events}))
    >>> read_profiler_trace(path)
    [ProfiledOp(name='aten::mm', input_dims=((64, 128), (128, 256)), input_types=('c10::Half', 'c10::Half'), \
seconds=1.2e-05, device='cuda')]
    """
    events = _load(path)
    ops = [e for e in events if e.get("cat") == "cpu_op" and str(e.get("name", "")).startswith("aten::")]
    kernels = [e for e in events if e.get("cat") == "kernel"]
    if kernels:
        device_s: dict[Any, float] = defaultdict(float)
        for k in kernels:
            device_s[(k.get("args") or {}).get("External id")] += _duration(k, path)
        out = []
        for e in ops:
            key = (e.get("args") or {}).get("External id")
            if key in device_s:
                out.append(_op(e, device_s.pop(key), "cuda"))
        return out
    out, open_until = [], defaultdict(lambda: -math.inf)  # per thread: where the enclosing op ends
    for e in sorted(ops, key=lambda e: (e.get("tid"), e.get("ts", 0), -(e.get("dur") or 0))):
        seconds, start = _duration(e, path), float(e.get("ts", 0))
        thread = (e.get("pid"), e.get("tid"))
        if start < open_until[thread]:
            continue  # a child of an op already counted
        open_until[thread] = start + seconds * 1e6
        out.append(_op(e, seconds, "cpu"))
    return out


def _elements(dims: Sequence[int]) -> int:
    return math.prod(dims) if dims else 1


def profiled_op(p: ProfiledOp) -> dict | None:
    """The op dict capture would build for ``p`` (kind, flop, bytes, dtype, shape), or ``None``.

    Examples
    --------
    >>> op = profiled_op(ProfiledOp("aten::mm", ((64, 128), (128, 256)), ("c10::Half", "c10::Half"), 1e-5, "cuda"))
    >>> op["op"], op["flop"], op["bytes_read"], op["bytes_written"], op["shape"], op["dtype"]
    ('matmul', 4194304, 81920, 32768, (64, 256), 'fp16')
    >>> profiled_op(ProfiledOp("aten::silu", ((8, 4),), ("float",), 1e-6, "cpu"))["bytes_written"]
    128
    """
    name, _, overload = p.name.removeprefix("aten::").partition(".")
    kind, role = classify(name, overload or "default")
    tensors = [(d, _TYPES.get(t)) for d, t in zip(p.input_dims, p.input_types, strict=False) if d and _TYPES.get(t)]
    if role != "compute" or not tensors or kind in ("view", "other", "attention", "conv"):
        return None
    dtype = next((t for _, t in tensors if t.startswith(("fp", "bf"))), tensors[0][1])
    elem = DTYPE_BYTES[dtype]
    read = int(sum(_elements(d) * DTYPE_BYTES[t] for d, t in tensors))
    if kind == "matmul":
        if name not in _GEMMS:
            return None
        a, b = (tensors[1][0], tensors[2][0]) if name in ("addmm", "baddbmm") and len(tensors) >= 3 else \
            (tensors[0][0], tensors[1][0])
        if len(a) < 2 or len(b) < 1:
            return None
        n = b[0] if name == "linear" else b[-1]
        k, rows = a[-1], _elements(a[:-1])
        shape = (*a[:-1], n)
        flop = 2 * rows * k * n
    else:
        shape = max((d for d, _ in tensors), key=_elements)
        flop = _elements(shape)
    return {"op": kind, "target": f"aten.{name}.{overload or 'default'}", "flop": int(flop), "bytes_read": read,
            "bytes_written": int(_elements(shape) * elem), "dtype": dtype, "shape": tuple(shape), "weights": {},
            "weight_bytes": 0, "module": ""}
