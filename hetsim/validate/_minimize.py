"""Derivative-free minimisation shared by the GPU kernel fit and the NCCL fit.

Both fits minimise a robust loss on log time over a few log-scaled parameters; their models choose
among tiles, waves, algorithms and protocols, so the loss is only piecewise smooth and Nelder–Mead
(standard coefficients: reflection 1, expansion 2, contraction ½, shrink ½) serves them better than
a gradient method. :func:`minimize` optionally restarts it from random jumps around the best point.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def nelder_mead(f: Callable[[np.ndarray], float], z0: np.ndarray, *, step: float = 0.2, rounds: int = 2,
                iters: int = 200, step_decay: float = 1.0, ftol: float = 1e-10, xtol: float = 1e-6) -> np.ndarray:
    """Nelder–Mead from ``z0``, restarted ``rounds`` times from the best point.

    Parameters
    ----------
    f : callable
        The loss of a parameter vector.
    z0 : array
        Starting point.
    step : float
        Initial simplex edge along each axis; multiplied by ``step_decay`` after each round.
    rounds, iters : int
        Restarts and iterations per restart.
    ftol, xtol : float
        A round stops once the simplex's values differ by at most ``ftol·(1 + |best|)`` and its
        points by less than ``xtol`` along every axis.

    Examples
    --------
    >>> z = nelder_mead(lambda z: float(((z - [1.0, -2.0]) ** 2).sum()), np.zeros(2))
    >>> [round(float(x), 4) for x in z]
    [1.0, -2.0]
    """
    best = np.asarray(z0, float)
    n = len(best)
    if n == 0:
        return best
    for _ in range(rounds):
        simplex = [best] + [best + step * np.eye(n)[i] for i in range(n)]
        values = [f(s) for s in simplex]
        for _ in range(iters):
            order = np.argsort(values, kind="stable")
            simplex, values = [simplex[i] for i in order], [values[i] for i in order]
            if values[-1] - values[0] <= ftol * (1 + abs(values[0])) and np.ptp(simplex, axis=0).max() < xtol:
                break  # converged: the simplex has shrunk to a point
            centre = np.mean(simplex[:-1], axis=0)
            reflected = 2 * centre - simplex[-1]
            fr = f(reflected)
            if fr < values[0]:
                expanded = 3 * centre - 2 * simplex[-1]
                fe = f(expanded)
                simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
            elif fr < values[-2]:
                simplex[-1], values[-1] = reflected, fr
            else:
                contracted = (centre + simplex[-1]) / 2
                fc = f(contracted)
                if fc < values[-1]:
                    simplex[-1], values[-1] = contracted, fc
                else:
                    simplex = [simplex[0]] + [(simplex[0] + s) / 2 for s in simplex[1:]]
                    values = [values[0]] + [f(s) for s in simplex[1:]]
        best, step = simplex[int(np.argmin(values))], step * step_decay
    return best


def minimize(f: Callable[[np.ndarray], float], z0: np.ndarray, *, hops: int = 0, jump: float = 0.7, seed: int = 0,
             **options: float) -> np.ndarray:
    """:func:`nelder_mead` from ``z0``, then from ``hops`` random jumps (normal, ``jump`` wide, a fixed
    ``seed``) around the best point so far, keeping the best; ``options`` go to :func:`nelder_mead`.

    Examples
    --------
    A local minimum at -1 and the global one at 3; a jump of 3 finds the latter.

    >>> f = lambda z: float(min((z[0] - 3) ** 2, (z[0] + 1) ** 2 + 0.5))
    >>> round(float(minimize(f, np.array([-1.0]), hops=5, jump=3.0)[0]), 3)
    3.0
    """
    best = nelder_mead(f, z0, **options)
    value = f(best)
    rng = np.random.default_rng(seed)
    for _ in range(hops if len(best) else 0):
        z = nelder_mead(f, best + rng.normal(0.0, jump, len(best)), **options)
        if f(z) < value:
            best, value = z, f(z)
    return best
