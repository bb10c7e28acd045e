"""Small platforms whose numbers make test results hand-computable, and shared checks (importable from any test)."""

from __future__ import annotations

import numpy as np

from hetsim.graph.schema import add_op, new_graph


def power_states(static: str = "10 W", dynamic: str = "90 W") -> list[dict]:
    return [{"name": "p0", "freq": "1 GHz", "voltage": "1 V", "static_power": static, "dynamic_power": dynamic},
            {"name": "p1", "freq": "500 MHz", "voltage": "0.8 V", "static_power": "6 W",
             "dynamic_power": "29 W"}]


def two_unit_dict(shared: bool = False, capacity: str = "1 GB") -> dict:
    """u0 (1 GFLOP/s) and u1 (2 GFLOP/s); separate memories m0, m1 joined by a 1 GB/s, 1 ms link."""
    memories = [{"name": "m0", "capacity": capacity, "bandwidth": "1 GB/s", "energy_per_byte": "1 nJ/B"}]
    if not shared:
        memories.append({"name": "m1", "capacity": capacity, "bandwidth": "1 GB/s"})
    return {
        "name": "shared" if shared else "two",
        "memories": memories,
        "units": [
            {"name": "u0", "kind": "cpu", "memory": "m0", "peak": {"fp32": "1 GFLOP/s"},
             "power_states": power_states()},
            {"name": "u1", "kind": "gpu", "memory": "m0" if shared else "m1", "peak": {"fp32": "2 GFLOP/s"},
             "power_states": power_states()},
        ],
        "links": [] if shared else [{"name": "l01", "a": "m0", "b": "m1", "bandwidth": "1 GB/s",
                                      "latency": "1 ms", "energy_per_byte": "2 nJ/B"}],
    }


def little(records):
    """Time-average of N(t) over [first arrival, last arrival] and λ·W with the measured λ."""
    arr = np.array([r.arrival_s for r in records])
    fin = np.array([r.finish_s for r in records])
    t0, t1 = arr.min(), arr.max()
    times = np.concatenate([arr, fin])
    steps = np.concatenate([np.ones_like(arr), -np.ones_like(fin)])
    order = np.lexsort((-steps, times))
    times, n = times[order], np.cumsum(steps[order])
    clipped = np.clip(times, t0, t1)
    area = float(np.sum(n[:-1] * np.diff(clipped)))
    lam = (len(arr) - 1) / (t1 - t0)
    return area / (t1 - t0), lam * float(np.mean(fin - arr))


def collective_graph(kind: str, ranks: list[str], nbytes: float, group: str = "c0", g=None):
    """One collective: one member per rank (``<group>@<rank>``), nothing else (added to ``g`` if given)."""
    g = g if g is not None else new_graph("collective")
    for rank in ranks:
        add_op(g, f"{group}@{rank}", op="collective", collective=kind, group=group, ranks=tuple(ranks),
               comm_bytes=nbytes, pin=rank, bytes_read=nbytes, bytes_written=nbytes)
    return g
