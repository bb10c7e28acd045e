"""Classic scheduling benchmark instances, generated: random layered DAGs and application graphs.

Each generator returns a classic instance *dict* in the JSON form of :mod:`hetsim.graph.instances`
(``units`` ``P1`` … ``Pn``, ``tasks`` → one cost per unit, ``edges`` → ``[from, to, communication
cost]``) plus ``source`` (the paper whose structure it follows) and ``params`` (the parameters,
seed included). The same arguments give the same dict: all randomness comes from
:func:`numpy.random.default_rng` seeded with ``seed``. Costs are unrounded Python floats.

Costs follow Topcuoglu, Hariri & Wu, IEEE TPDS 13(3), 2002, §5.1 — w̄_i around ``mean_cost``,
w_ij ~ U[w̄_i(1−β/2), w̄_i(1+β/2)], communication rescaled so the realised CCR is ``ccr`` exactly;
see :mod:`hetsim.graph.generators_apps`, which holds these shared helpers and the application graphs
(:func:`gaussian_elimination`, :func:`fft`, :func:`montage`) re-exported here.

Examples
--------
>>> from hetsim.graph.instances import instance_graph
>>> g, units = instance_graph(generate("fork_join", width=3, n_units=2, stages=2, seed=7))
>>> g.number_of_nodes(), units
(10, ['P1', 'P2'])
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from hetsim.errors import GraphError, field_error
from hetsim.graph.generators_apps import (
    TOPCUOGLU,
    _common,
    _instance,
    _int,
    _mean_costs,
    _number,
    fft,
    gaussian_elimination,
    instance_ccr,
    montage,
)

__all__ = ["GENERATORS", "fft", "fork_join", "gaussian_elimination", "generate", "instance_ccr", "montage",
           "random_layered"]


def random_layered(n_tasks: int, n_units: int, *, ccr: float = 1.0, alpha: float = 1.0, beta: float = 0.5,
                   out_degree: int = 3, mean_cost: float = 50.0, seed: int = 0) -> dict[str, Any]:
    """A random layered DAG after the generator of Topcuoglu et al. 2002 §5.1, as a classic instance.

    Shape: the paper draws the height around √v/α and each level's width from a uniform distribution
    with mean α·√v. Here level widths are drawn from U{1, …, max(1, round(2α√v − 1))} (mean ≈ α√v)
    until exactly v = ``n_tasks`` tasks are placed (the last level takes what remains), so the height
    comes out ≈ √v/α: α > 1 gives wide, short graphs, α < 1 long, thin ones. Tasks ``t1`` … ``tv``
    are numbered level by level.

    Edges: each task draws an out-degree cap from U{1, …, ``out_degree``}. Every task below the first
    level gets one predecessor on the level just above it, chosen among the tasks still under their
    cap (among all of that level when none is: the only way a cap is exceeded). Tasks then fill their
    cap with successors drawn uniformly from all later levels. Every edge goes down at least one
    level, so a task's level is its depth (longest path from an entry, in edges); entries are the
    first level, and there may be several entries and exits.

    Costs: w̄_i ~ U[0.01·w_DAG, 1.99·w_DAG] (w_DAG = ``mean_cost``), w_ij ~ U[w̄_i(1−β/2),
    w̄_i(1+β/2)], communication ~ U[0, 2·CCR·w̄] rescaled so that mean communication / mean
    computation = ``ccr`` exactly (module :mod:`hetsim.graph.generators_apps`).

    Parameters
    ----------
    n_tasks : int
        v, the number of tasks (>= 1).
    n_units : int
        Number of units, named ``P1`` … ``Pn`` (>= 1).
    ccr : float
        Communication-to-computation ratio (>= 0).
    alpha : float
        Shape parameter α (> 0).
    beta : float
        Range percentage of computation costs β (heterogeneity), in [0, 2]; the paper uses 0.1 … 2.
    out_degree : int
        Largest out-degree cap a task draws (>= 1); the mean cap is (1 + out_degree)/2.
    mean_cost : float
        w_DAG, the mean computation cost (> 0).
    seed : int
        Seed of :func:`numpy.random.default_rng` (>= 0).

    Returns
    -------
    dict
        ``{"source", "params", "units", "tasks", "edges"}``, accepted by
        :func:`hetsim.graph.instances.instance_graph`.

    Examples
    --------
    >>> inst = random_layered(20, 3, ccr=2.0, seed=1)
    >>> len(inst["tasks"]), inst["units"], inst["params"]["seed"]
    (20, ['P1', 'P2', 'P3'], 1)
    >>> round(instance_ccr(inst), 9)
    2.0
    >>> random_layered(20, 3, alpha=-1)
    Traceback (most recent call last):
    ...
    hetsim.errors.GraphError: random_layered.alpha: got -1, expected a positive number
    """
    fn = "random_layered"
    v = _int(fn, "n_tasks", n_tasks, 1)
    a = _number(fn, "alpha", alpha, "a positive number", lambda x: x > 0)
    checked = {"n_tasks": v, **_common(fn, n_units, ccr, beta, mean_cost, seed), "alpha": a,
               "out_degree": _int(fn, "out_degree", out_degree, 1)}
    params = {k: checked[k] for k in ("n_tasks", "n_units", "ccr", "alpha", "beta", "out_degree", "mean_cost", "seed")}
    rng = np.random.default_rng(params["seed"])

    widest = max(1, round(2 * a * math.sqrt(v) - 1))
    levels: list[range] = []
    while (start := levels[-1].stop if levels else 0) < v:
        levels.append(range(start, min(v, start + int(rng.integers(1, widest + 1)))))

    cap = rng.integers(1, params["out_degree"] + 1, size=v)
    succ: list[set[int]] = [set() for _ in range(v)]
    for above, level in itertools.pairwise(levels):
        for t in level:
            free = [p for p in above if len(succ[p]) < cap[p]]
            pool = free or list(above)
            succ[pool[int(rng.integers(len(pool)))]].add(t)
    for level in levels[:-1]:
        later = v - level.stop
        for u in level:
            want = min(int(cap[u]) - len(succ[u]), later - len(succ[u]))
            if want > 0:
                drawn = rng.choice(later, size=want + len(succ[u]), replace=False) + level.stop
                succ[u].update([int(x) for x in drawn if int(x) not in succ[u]][:want])

    tasks = [f"t{i + 1}" for i in range(v)]
    edges = [(tasks[u], tasks[w]) for u in range(v) for w in sorted(succ[u])]
    return _instance(rng, f"{TOPCUOGLU}, §5.1 random graph generator", params, tasks, edges,
                     _mean_costs(rng, v, params["mean_cost"]))


def fork_join(width: int, n_units: int, *, stages: int = 1, ccr: float = 1.0, beta: float = 0.5,
              mean_cost: float = 50.0, seed: int = 0) -> dict[str, Any]:
    """A chain of fork-join stages, as a classic instance.

    Stage s is ``fork_s`` → ``work_s_1`` … ``work_s_{width}`` → ``join_s``, and ``join_s`` →
    ``fork_{s+1}`` chains the stages: stages·(width + 2) tasks, stages·2·width + stages − 1 edges.
    Costs as in :func:`random_layered` (Topcuoglu et al. 2002 §5.1).

    Parameters
    ----------
    width : int
        Parallel tasks per stage (>= 1).
    n_units : int
        Number of units, named ``P1`` … ``Pn`` (>= 1).
    stages : int
        Number of chained fork-join stages (>= 1).
    ccr, beta, mean_cost, seed
        As for :func:`random_layered`.

    Returns
    -------
    dict
        A classic instance with ``source`` and ``params``.

    Examples
    --------
    >>> inst = fork_join(3, 2, stages=2, seed=1)
    >>> len(inst["tasks"]), len(inst["edges"]), list(inst["tasks"])[:3]
    (10, 13, ['fork_1', 'work_1_1', 'work_1_2'])
    """
    fn = "fork_join"
    checked = {"width": _int(fn, "width", width, 1), **_common(fn, n_units, ccr, beta, mean_cost, seed),
               "stages": _int(fn, "stages", stages, 1)}
    params = {k: checked[k] for k in ("width", "n_units", "stages", "ccr", "beta", "mean_cost", "seed")}
    tasks: list[str] = []
    edges: list[tuple[str, str]] = []
    for s in range(1, params["stages"] + 1):
        work = [f"work_{s}_{i}" for i in range(1, params["width"] + 1)]
        tasks += [f"fork_{s}", *work, f"join_{s}"]
        edges += [(f"join_{s - 1}", f"fork_{s}")] if s > 1 else []
        edges += [(f"fork_{s}", w) for w in work] + [(w, f"join_{s}") for w in work]
    rng = np.random.default_rng(params["seed"])
    return _instance(rng, f"fork-join chain; costs after {TOPCUOGLU}, §5.1", params, tasks, edges,
                     _mean_costs(rng, len(tasks), params["mean_cost"]))


GENERATORS: dict[str, Callable[..., dict]] = {
    "random_layered": random_layered,
    "fork_join": fork_join,
    "gaussian_elimination": gaussian_elimination,
    "fft": fft,
    "montage": montage,
}


def generate(name: str, **params: Any) -> dict[str, Any]:
    """``GENERATORS[name](**params)``, with a one-line GraphError for an unknown name or bad parameters.

    Examples
    --------
    >>> len(generate("gaussian_elimination", matrix_size=5, n_units=2)["tasks"])
    14
    >>> generate("lu", n_units=2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hetsim.errors.GraphError: generate.name: got 'lu', expected one of fft, fork_join, gaussian_elimination, ...
    >>> generate("fft", points=4, n_unit=2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hetsim.errors.GraphError: fft: got parameters ['n_unit', 'points'], expected (points, n_units, *, ccr, ...
    """
    if name not in GENERATORS:
        raise field_error(GraphError, "generate.name", name, f"one of {', '.join(sorted(GENERATORS))}")
    fn = GENERATORS[name]
    signature = inspect.signature(fn)
    try:
        signature.bind(**params)
    except TypeError as exc:
        names = []
        for p in signature.parameters.values():
            names += ["*", p.name] if p.kind is inspect.Parameter.KEYWORD_ONLY and "*" not in names else [p.name]
        raise GraphError(f"{name}: got parameters {sorted(params)}, expected ({', '.join(names)}): {exc}") from None
    return fn(**params)
