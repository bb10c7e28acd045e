"""Turn measured op times into a fixed overhead and a throughput curve (pure Python, no torch).

A calibrated op takes ``overhead + size / rate(size)`` (:class:`hetsim.spec.types.Curve`). For
one target the overhead is the median time of its tiny calls; every other measurement leaves an
*excess* ``t - overhead`` at its size. :func:`fit_curve` turns (size, excess) pairs into curve
points:

1. sizes within a factor ``merge`` of each other form one group (several shapes of one size):
   its size is their geometric mean, its excess the median excess-per-unit times that size;
2. excess times are made non-decreasing in size by weighted isotonic regression (pool adjacent
   violators): a bigger op is never faster, so a dip is noise;
3. groups whose excess is not clearly above zero (the overhead-dominated sizes) are dropped: the
   curve holds its first rate below its first size, which there predicts about the overhead;
4. each remaining group gives a point (size, size / excess).

A rate curve may fall as well as rise (an op that leaves the cache slows down): only the time is
made monotone.

Examples
--------
Times of 5 µs + bytes / 10 GB/s give back the 10 GB/s:

>>> pts = [(b, 5e-6 + b / 1e10) for b in (1e4, 1e5, 1e6, 1e7)]
>>> [round(r / 1e9, 6) for _, r in fit_curve([(b, t - 5e-6) for b, t in pts])]
[10.0, 10.0, 10.0, 10.0]
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def isotonic(values: Sequence[float], weights: Sequence[float] | None = None) -> list[float]:
    """Weighted least-squares non-decreasing fit of ``values`` (pool adjacent violators).

    Examples
    --------
    >>> isotonic([1.0, 3.0, 2.0, 4.0])
    [1.0, 2.5, 2.5, 4.0]
    """
    weights = list(weights) if weights is not None else [1.0] * len(values)
    blocks: list[list[float]] = []  # [mean, weight, count]
    for v, w in zip(values, weights, strict=True):
        blocks.append([float(v), float(w), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    out: list[float] = []
    for mean, _, count in blocks:
        out += [mean] * int(count)
    return out


def group_sizes(points: Sequence[tuple[float, float]], merge: float = 1.25) -> list[tuple[float, float, int]]:
    """(size, excess, count) per group of sizes within a factor ``merge`` of the group's smallest.

    Examples
    --------
    >>> [(round(s), round(e, 3), n) for s, e, n in group_sizes([(100, 1.0), (110, 3.3), (1000, 10.0)])]
    [(105, 2.098, 2), (1000, 10.0, 1)]
    """
    pts = sorted((float(s), float(e)) for s, e in points if s > 0)
    groups: list[list[tuple[float, float]]] = []
    for s, e in pts:
        if groups and s <= groups[-1][0][0] * merge:
            groups[-1].append((s, e))
        else:
            groups.append([(s, e)])
    out = []
    for g in groups:
        size = math.exp(statistics.fmean(math.log(s) for s, _ in g))
        per_unit = statistics.median(e / s for s, e in g)
        out.append((size, per_unit * size, len(g)))
    return out


def fit_curve(points: Sequence[tuple[float, float]], *, merge: float = 1.25, floor_s: float = 5e-8,
              max_points: int = 48, rising: bool = False) -> list[tuple[float, float]]:
    """Curve points ``[(size, rate)]`` from ``(size, excess seconds)`` measurements (see the module).

    Parameters
    ----------
    points
        ``(size, t - overhead)`` per measurement; size in FLOPs or bytes, excess may be negative.
    merge
        Sizes within this factor are one group.
    floor_s
        Excess times at or below this are overhead-dominated and give no point.
    max_points
        Keep at most this many points (evenly spaced over the groups, ends kept).
    rising
        Also make the rate non-decreasing in size (matrix ops: a bigger GEMM is never less
        efficient, a dip is another shape of the same size, which the curve cannot tell apart).

    Returns
    -------
    list of (size, rate)
        Strictly increasing sizes, positive rates; one point at the largest size when every
        measurement was overhead-dominated (its rate then predicts ``floor_s`` there).
    """
    groups = group_sizes(points, merge)
    if not groups:
        raise ValueError("fit_curve: no measurement with a positive size")
    excess = isotonic([e for _, e, _ in groups], [c for _, _, c in groups])
    kept = [(s, e) for (s, _, _), e in zip(groups, excess, strict=True) if e > floor_s]
    if not kept:
        size = groups[-1][0]
        return [(size, size / floor_s)]
    if len(kept) > max_points:
        step = (len(kept) - 1) / (max_points - 1)
        kept = [kept[round(i * step)] for i in range(max_points)]
    rates = [s / e for s, e in kept]
    if rising:
        weights = [c for (s, _, c) in groups if any(s == k for k, _ in kept)]
        rates = [math.exp(v) for v in isotonic([math.log(r) for r in rates], weights)]
    return [(s, r) for (s, _), r in zip(kept, rates, strict=True)]


def robust_overhead(times_s: Sequence[float]) -> float:
    """The fixed cost of an op from the times of its tiny calls: their median.

    Examples
    --------
    >>> robust_overhead([5e-6, 6e-6, 40e-6])
    6e-06
    """
    if not times_s:
        raise ValueError("robust_overhead: no time given")
    return float(statistics.median(times_s))


def predict(curve: Sequence[tuple[float, float]], overhead_s: float, size: float) -> float:
    """Time of an op of ``size`` on a fitted curve, as :class:`hetsim.spec.types.Curve` computes it.

    Examples
    --------
    >>> round(predict([(1e3, 1e9), (1e5, 1e10)], 1e-6, 1e4) * 1e6, 4)  # rate 10^9.5 at the log-midpoint
    4.1623
    """
    from hetsim.spec.types import Curve

    sizes, rates = zip(*curve, strict=True)
    return overhead_s + size / Curve("bytes", tuple(sizes), tuple(rates)).rate(size)
