"""Collectives: the point-to-point steps of each algorithm, and their alpha-beta time.

A collective of ``p`` ranks on a buffer of ``n`` bytes runs as a sequence of steps; in each step
every listed (source rank, destination rank) pair moves its bytes at once, and the next step
starts when the last of them has arrived. The engine replays these steps as transfers on the
platform's links (so they contend with everything else); :func:`collective_time` is their time
on links of latency ``α`` and bandwidth ``B`` without contention — the alpha-beta model of Thakur,
Rabenseifner & Gropp, "Optimization of collective communication operations in MPICH", IJHPCA
19(1), 2005 (their Table 1 and §4), with the reduction's arithmetic left out:

============== ======================================== ================================
collective     ``ring``                                 ``tree``
============== ======================================== ================================
all_reduce     2(p−1)·α + 2·(p−1)/p·n/B                 2·log2(p)·α + 2·(p−1)/p·n/B
               (reduce-scatter then all-gather)         (Rabenseifner: recursive halving,
                                                        then recursive doubling)
all_gather     (p−1)·α + (p−1)/p·n/B                    log2(p)·α + (p−1)/p·n/B
reduce_scatter (p−1)·α + (p−1)/p·n/B                    log2(p)·α + (p−1)/p·n/B
broadcast      (p−1)·(α + n/B)  (a chain from rank 0)   ⌈log2 p⌉·(α + n/B)  (binomial tree)
all_to_all     (p−1)·(α + n/(p·B))  (pairwise exchange; the same for both)
============== ======================================== ================================

The ``tree`` variants of all-reduce, all-gather and reduce-scatter need ``p`` a power of two;
otherwise they fall back to ``ring``. The third algorithm, ``nccl``, is NCCL's own cost model and
automatic choice of algorithm and protocol (:mod:`hetsim.cost.nccl`), not an alpha-beta formula.
"""

from __future__ import annotations

import math

Step = list[tuple[int, int, float]]  # (source rank, destination rank, bytes)
ALGORITHMS = ("ring", "tree", "nccl")


def _power_of_two(p: int) -> bool:
    return p & (p - 1) == 0


def collective_steps(kind: str, algorithm: str, p: int, nbytes: float) -> list[Step]:
    """The steps of one collective, as lists of (source rank, destination rank, bytes).

    Examples
    --------
    >>> collective_steps("all_reduce", "ring", 3, 3e6)[0]
    [(0, 1, 1000000.0), (1, 2, 1000000.0), (2, 0, 1000000.0)]
    >>> len(collective_steps("all_reduce", "ring", 4, 1.0)), len(collective_steps("all_reduce", "tree", 4, 1.0))
    (6, 4)
    >>> collective_steps("broadcast", "tree", 4, 8.0)
    [[(0, 1, 8.0)], [(0, 2, 8.0), (1, 3, 8.0)]]
    """
    if p <= 1:
        return []
    ring = [[(i, (i + 1) % p, nbytes / p) for i in range(p)]]
    tree = algorithm == "tree" and _power_of_two(p)
    log = p.bit_length() - 1
    if kind == "all_to_all":
        return [[(i, (i + s) % p, nbytes / p) for i in range(p)] for s in range(1, p)]
    if kind == "broadcast":
        if algorithm == "tree":
            return [[(i, i + (1 << k), nbytes) for i in range(min(1 << k, p)) if i + (1 << k) < p]
                    for k in range(math.ceil(math.log2(p)))]
        return [[(s, s + 1, nbytes)] for s in range(p - 1)]
    halving = [[(i, i ^ (p >> (k + 1)), nbytes / (2 << k)) for i in range(p)] for k in range(log)]
    doubling = [[(i, i ^ (1 << k), nbytes * (1 << k) / p) for i in range(p)] for k in range(log)]
    if kind == "all_reduce":
        return halving + doubling if tree else ring * (2 * (p - 1))
    if kind == "reduce_scatter":
        return halving if tree else ring * (p - 1)
    if kind == "all_gather":
        return doubling if tree else ring * (p - 1)
    raise ValueError(f"collective: got {kind!r}, expected a collective kind")


def collective_time(kind: str, algorithm: str, p: int, nbytes: float, latency_s: float,
                    bandwidth_bytes_per_s: float) -> float:
    """Seconds of :func:`collective_steps` with every transfer taking ``α + bytes / B``.

    Examples
    --------
    Ring all-reduce of 1 GB over 4 ranks at 100 GB/s and 1 µs: 6 µs + 1.5 × 10 ms.

    >>> round(collective_time("all_reduce", "ring", 4, 1e9, 1e-6, 100e9), 9)
    0.015006
    """
    if p <= 1 or nbytes <= 0:
        return 0.0
    return sum(latency_s + max(b for _, _, b in step) / bandwidth_bytes_per_s
               for step in collective_steps(kind, algorithm, p, nbytes))
