"""Application task graphs as classic instances, and the cost helpers every generator shares.

The structures follow the application graphs of Topcuoglu, Hariri & Wu, "Performance-effective and
low-complexity task scheduling for heterogeneous computing", IEEE TPDS 13(3), 2002, §5.2 (Gaussian
elimination, FFT), and the Montage mosaic workflow of Bharathi et al., "Characterization of scientific
workflows", WORKS 2008. Costs follow the paper's §5.1 for all of them:

* the average computation cost of task *i*, w̄_i, is drawn from U[ε·w_DAG, (2−ε)·w_DAG] with
  w_DAG = ``mean_cost`` and ε = 0.01 (the paper's U[0, 2·w_DAG] with a small floor so that no cost
  is zero; the expected value stays w_DAG);
* the cost on unit *j* is w_ij ~ U[w̄_i·(1−β/2), w̄_i·(1+β/2)] (β = ``beta``, the range percentage
  of computation costs, i.e. the heterogeneity; β = 0 gives equal costs on every unit);
* communication costs are drawn from U[0, 2·CCR·w̄] (w̄ the mean computation cost of the drawn
  instance) and then rescaled so that the realised CCR — mean communication cost over the edges
  divided by mean computation cost over tasks and units — equals ``ccr`` exactly (to rounding).

Costs are plain Python floats, not rounded, so the realised CCR holds to ~1e-15 and a JSON round trip
is exact. :mod:`hetsim.graph.generators` is the public entry point; it re-exports these generators.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hetsim.errors import GraphError, field_error

__all__ = ["fft", "gaussian_elimination", "instance_ccr", "montage", "montage_pairs"]

TOPCUOGLU = ("Topcuoglu, Hariri & Wu, 'Performance-effective and low-complexity task scheduling for heterogeneous "
             "computing', IEEE TPDS 13(3), 2002")

#: floor of w̄_i as a fraction of w_DAG: w̄_i ~ U[EPS·w_DAG, (2−EPS)·w_DAG]
EPS = 0.01


# --------------------------------------------------------------------------------------------- checks
def _int(fn: str, name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise field_error(GraphError, f"{fn}.{name}", value, f"an integer >= {minimum}")
    return int(value)


def _number(fn: str, name: str, value: Any, expected: str, ok) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) \
            or not math.isfinite(value) or not ok(float(value)):
        raise field_error(GraphError, f"{fn}.{name}", value, expected)
    return float(value)


def _common(fn: str, n_units: Any, ccr: Any, beta: Any, mean_cost: Any, seed: Any) -> dict[str, Any]:
    """Check the parameters every generator takes; return them, converted, for ``params``."""
    return {
        "n_units": _int(fn, "n_units", n_units, 1),
        "ccr": _number(fn, "ccr", ccr, "a non-negative number", lambda x: x >= 0),
        "beta": _number(fn, "beta", beta, "a number in [0, 2]", lambda x: 0 <= x <= 2),
        "mean_cost": _number(fn, "mean_cost", mean_cost, "a positive number", lambda x: x > 0),
        "seed": _int(fn, "seed", seed, 0),
    }


# ---------------------------------------------------------------------------------------------- costs
def _mean_costs(rng: np.random.Generator, n: int, mean_cost: float) -> np.ndarray:
    """w̄_i ~ U[ε·w_DAG, (2−ε)·w_DAG] (Topcuoglu et al. 2002 §5.1, with a floor)."""
    return rng.uniform(EPS * mean_cost, (2 - EPS) * mean_cost, size=n)


def _instance(rng: np.random.Generator, source: str, params: dict[str, Any], tasks: list[str],
              edges: list[tuple[str, str]], means: np.ndarray) -> dict[str, Any]:
    """Draw per-unit and communication costs around ``means`` and assemble the instance dict."""
    n_units, beta, ccr = params["n_units"], params["beta"], params["ccr"]
    lo, hi = means * (1 - beta / 2), means * (1 + beta / 2)
    costs = rng.uniform(lo[:, None], hi[:, None], size=(len(tasks), n_units))  # β = 0: lo == hi exactly
    comm = rng.uniform(0.0, 2.0, size=len(edges))
    if len(edges) and comm.mean() > 0:
        comm *= ccr * costs.mean() / comm.mean()
    return {
        "source": source,
        "params": dict(params),
        "units": [f"P{j + 1}" for j in range(n_units)],
        "tasks": {t: row.tolist() for t, row in zip(tasks, costs, strict=True)},
        "edges": [[a, b, float(c)] for (a, b), c in zip(edges, comm, strict=True)],
    }


def instance_ccr(data: dict[str, Any]) -> float:
    """The realised communication-to-computation ratio of a classic instance.

    Mean communication cost over the edges divided by the mean computation cost over tasks and
    units (Topcuoglu et al. 2002 §5.1); 0.0 for an instance without edges.

    Examples
    --------
    >>> instance_ccr({"units": ["P1", "P2"], "tasks": {"a": [1, 3], "b": [2, 2]}, "edges": [["a", "b", 4]]})
    2.0
    """
    costs = [c for row in data["tasks"].values() for c in row]
    edges = data.get("edges") or []
    if not edges:
        return 0.0
    return (sum(e[2] for e in edges) / len(edges)) / (sum(costs) / len(costs))


# ------------------------------------------------------------------------------------- applications
def gaussian_elimination(matrix_size: int, n_units: int, *, ccr: float = 1.0, beta: float = 0.5,
                         mean_cost: float = 50.0, seed: int = 0) -> dict[str, Any]:
    """The Gaussian elimination task graph of Topcuoglu et al. 2002 §5.2, as a classic instance.

    For a matrix of size m, step k = 1 … m−1 has a pivot task ``Tk_k`` and update tasks ``Tk_j``
    (j = k+1 … m): (m² + m − 2)/2 tasks. Edges: ``Tk_k → Tk_j`` (the pivot row feeds each update),
    ``Tk_j → T(k+1)_j`` (column j is updated again at the next step; for j = k+1 that task is the next
    pivot): m(m−1) − 1 edges.

    Parameters
    ----------
    matrix_size : int
        m >= 2.
    n_units : int
        Number of units, named ``P1`` … ``Pn``.
    ccr, beta, mean_cost, seed
        Communication-to-computation ratio (>= 0), heterogeneity β in [0, 2], w_DAG (> 0) and the
        seed of :func:`numpy.random.default_rng`; see the module docstring.

    Returns
    -------
    dict
        ``{"source", "params", "units", "tasks", "edges"}``, accepted by
        :func:`hetsim.graph.instances.instance_graph`.

    Examples
    --------
    >>> inst = gaussian_elimination(5, 3, seed=1)
    >>> len(inst["tasks"]), len(inst["edges"]), inst["edges"][0][:2]
    (14, 19, ['T1_1', 'T1_2'])
    """
    fn = "gaussian_elimination"
    params = {"matrix_size": _int(fn, "matrix_size", matrix_size, 2), **_common(fn, n_units, ccr, beta, mean_cost,
                                                                               seed)}
    m = params["matrix_size"]
    tasks, edges = [], []
    for k in range(1, m):
        tasks += [f"T{k}_{j}" for j in range(k, m + 1)]
        edges += [(f"T{k}_{k}", f"T{k}_{j}") for j in range(k + 1, m + 1)]
        if k < m - 1:
            edges += [(f"T{k}_{j}", f"T{k + 1}_{j}") for j in range(k + 1, m + 1)]
    rng = np.random.default_rng(params["seed"])
    return _instance(rng, f"{TOPCUOGLU}, §5.2 Gaussian elimination", params, tasks, edges,
                     _mean_costs(rng, len(tasks), params["mean_cost"]))


def fft(points: int, n_units: int, *, ccr: float = 1.0, beta: float = 0.5, mean_cost: float = 50.0,
        seed: int = 0) -> dict[str, Any]:
    """The FFT task graph of Topcuoglu et al. 2002 §5.2, as a classic instance.

    For m input points (a power of 2) there are 2m − 1 recursive-call tasks ``call_1`` …
    ``call_{2m−1}`` (a binary tree numbered like a heap: ``call_k`` calls ``call_{2k}`` and
    ``call_{2k+1}``; the m leaves are ``call_m`` … ``call_{2m−1}``) and m·log2(m) butterfly tasks
    ``butterfly_s_i`` (stage s = 1 … log2 m, position i = 1 … m). Butterfly (s, i) reads positions i
    and i XOR 2^(s−1) of stage s − 1, stage 0 being the leaves: 2m − 2 + 2m·log2(m) edges.

    Parameters
    ----------
    points : int
        m, a power of 2, >= 2.
    n_units : int
        Number of units, named ``P1`` … ``Pn``.
    ccr, beta, mean_cost, seed
        As for :func:`gaussian_elimination`.

    Returns
    -------
    dict
        A classic instance with ``source`` and ``params``.

    Examples
    --------
    >>> inst = fft(4, 2, seed=1)
    >>> len(inst["tasks"]), len(inst["edges"])
    (15, 22)
    >>> fft(6, 2)
    Traceback (most recent call last):
    ...
    hetsim.errors.GraphError: fft.points: got 6, expected a power of 2 (>= 2)
    """
    fn = "fft"
    m = _int(fn, "points", points, 2)
    if m & (m - 1):
        raise field_error(GraphError, f"{fn}.points", points, "a power of 2 (>= 2)")
    params = {"points": m, **_common(fn, n_units, ccr, beta, mean_cost, seed)}
    stages = m.bit_length() - 1
    tasks = [f"call_{k}" for k in range(1, 2 * m)]
    edges = [(f"call_{k}", f"call_{c}") for k in range(1, m) for c in (2 * k, 2 * k + 1)]
    previous = [f"call_{m + i}" for i in range(m)]
    for s in range(1, stages + 1):
        current = [f"butterfly_{s}_{i + 1}" for i in range(m)]
        tasks += current
        for i in range(m):
            edges += [(previous[i], current[i]), (previous[i ^ (1 << (s - 1))], current[i])]
        previous = current
    rng = np.random.default_rng(params["seed"])
    return _instance(rng, f"{TOPCUOGLU}, §5.2 FFT", params, tasks, edges,
                     _mean_costs(rng, len(tasks), params["mean_cost"]))


#: assumed relative computation weight of each Montage task type, per item it processes (see montage())
MONTAGE_WEIGHTS = {"mProjectPP": 1.0, "mDiffFit": 0.5, "mConcatFit": 0.1, "mBgModel": 0.2, "mBackground": 1.0,
                   "mImgtbl": 0.05, "mAdd": 0.5, "mShrink": 0.2, "mJPEG": 0.1}


def montage_pairs(n_images: int) -> list[tuple[int, int]]:
    """Overlapping neighbour pairs (0-based) of ``n_images`` laid row by row on a ⌈√n⌉-wide grid.

    Examples
    --------
    >>> montage_pairs(4)
    [(0, 1), (0, 2), (1, 3), (2, 3)]
    """
    cols = math.isqrt(n_images - 1) + 1  # ⌈√n⌉
    pairs = [(k, k + 1) for k in range(n_images - 1) if k % cols < cols - 1]
    pairs += [(k, k + cols) for k in range(n_images - cols)]
    return sorted(pairs)


def montage(n_images: int, n_units: int, *, ccr: float = 1.0, beta: float = 0.5, mean_cost: float = 50.0,
            seed: int = 0) -> dict[str, Any]:
    """A Montage-like astronomy mosaic workflow (Bharathi et al., WORKS 2008), as a classic instance.

    Structure, after the Montage workflow of Bharathi et al. 2008 (and the Pegasus workflow gallery):
    ``mProjectPP_i`` re-projects image i; ``mDiffFit_a_b`` fits the difference of each overlapping pair
    of neighbouring projected images; ``mConcatFit`` gathers the fits; ``mBgModel`` computes the
    background corrections; ``mBackground_i`` corrects image i (it reads ``mProjectPP_i`` and
    ``mBgModel``); ``mImgtbl`` tabulates the corrected images; then ``mAdd`` → ``mShrink`` → ``mJPEG``.

    Assumptions (not from a measurement): images lie row by row on a ⌈√n⌉-wide grid and overlap their
    right and lower neighbours (:func:`montage_pairs`), P pairs in all: 2n + P + 6 tasks and
    3P + 3n + 4 edges. A task's mean cost w̄_i is drawn from U[0.5·μ, 1.5·μ], μ proportional to its
    type's weight in :data:`MONTAGE_WEIGHTS` times the number of items it processes (1 for the
    per-image and per-pair tasks, P for mConcatFit, n for mBgModel, mImgtbl, mAdd, mShrink, mJPEG),
    scaled so that the expected mean of w̄_i is ``mean_cost``. That the aggregation steps (mBgModel,
    mAdd, mConcatFit) outweigh the per-image ones at scale follows the qualitative profile of Juve et
    al., "Characterizing and profiling scientific workflows", FGCS 29(3), 2013. Per-unit and
    communication costs then follow Topcuoglu et al. 2002 §5.1 (module docstring).

    Parameters
    ----------
    n_images : int
        Number of input images, >= 2.
    n_units : int
        Number of units, named ``P1`` … ``Pn``.
    ccr, beta, mean_cost, seed
        As for :func:`gaussian_elimination`.

    Returns
    -------
    dict
        A classic instance with ``source`` and ``params``.

    Examples
    --------
    >>> inst = montage(4, 3, seed=1)
    >>> len(inst["tasks"]), len(inst["edges"])  # 4 pairs: 2·4 + 4 + 6 tasks, 3·4 + 3·4 + 4 edges
    (18, 28)
    >>> [t for t in inst["tasks"]][:3]
    ['mProjectPP_1', 'mProjectPP_2', 'mProjectPP_3']
    """
    fn = "montage"
    params = {"n_images": _int(fn, "n_images", n_images, 2), **_common(fn, n_units, ccr, beta, mean_cost, seed)}
    n = params["n_images"]
    pairs = montage_pairs(n)
    proj = [f"mProjectPP_{i + 1}" for i in range(n)]
    back = [f"mBackground_{i + 1}" for i in range(n)]
    diffs = [f"mDiffFit_{a + 1}_{b + 1}" for a, b in pairs]
    tasks = [*proj, *diffs, "mConcatFit", "mBgModel", *back, "mImgtbl", "mAdd", "mShrink", "mJPEG"]
    edges = [(proj[e], d) for (a, b), d in zip(pairs, diffs, strict=True) for e in (a, b)]
    edges += [(d, "mConcatFit") for d in diffs] + [("mConcatFit", "mBgModel")]
    edges += [(x, back[i]) for i in range(n) for x in (proj[i], "mBgModel")]
    edges += [(b, "mImgtbl") for b in back] + [("mImgtbl", "mAdd"), ("mAdd", "mShrink"), ("mShrink", "mJPEG")]
    items = {"mConcatFit": len(pairs), "mBgModel": n, "mImgtbl": n, "mAdd": n, "mShrink": n, "mJPEG": n}
    weight = np.array([MONTAGE_WEIGHTS[t.split("_")[0]] * items.get(t, 1) for t in tasks])
    mu = weight * (params["mean_cost"] / weight.mean())
    rng = np.random.default_rng(params["seed"])
    means = rng.uniform(0.5 * mu, 1.5 * mu)
    source = ("Bharathi et al., 'Characterization of scientific workflows', WORKS 2008 (Montage); costs after "
              f"{TOPCUOGLU}, §5.1")
    return _instance(rng, source, params, tasks, edges, means)
