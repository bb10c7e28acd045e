"""Classic scheduling instances: a cost per task per unit, and per-edge communication costs.

The formulation of Topcuoglu, Hariri & Wu (IEEE TPDS 2002), as JSON::

    {"units": ["P1", "P2", "P3"],
     "tasks": {"1": [14, 16, 9], ...},          # one cost per unit, in the order of "units"
     "edges": [["1", "2", 18], ...]}            # [from, to, communication cost]

:func:`instance_graph` gives the OpGraph (each op carries ``cost`` per unit; each edge a ``cost``
paid only when its two ends run on different units). The matching platform of abstract units
is built by :func:`hetsim.spec.abstract.abstract_platform`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import networkx as nx

from hetsim.errors import GraphError
from hetsim.graph.io import read_json
from hetsim.graph.schema import add_op, new_graph, validate_graph


def _cost(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise GraphError(f"{where}: got {value!r}, expected a non-negative number")
    return float(value)


def instance_graph(data: Any, name: str = "instance") -> tuple[nx.DiGraph, list[str]]:
    """Check a classic instance and return (OpGraph, unit names); one-line GraphError when bad.

    Examples
    --------
    >>> g, units = instance_graph({"units": ["P1", "P2"], "tasks": {"a": [1, 2], "b": [3, 1]},
    ...                            "edges": [["a", "b", 5]]})
    >>> units, g.nodes["b"]["cost"], g.edges["a", "b"]["cost"]
    (['P1', 'P2'], {'P1': 3.0, 'P2': 1.0}, 5.0)
    """
    if not isinstance(data, dict):
        raise GraphError(f"instance: got {type(data).__name__}, expected an object with units, tasks, edges")
    units = data.get("units")
    if not isinstance(units, list) or not units or not all(isinstance(u, str) and u for u in units):
        raise GraphError(f"instance.units: got {units!r}, expected a non-empty list of unit names")
    if len(set(units)) != len(units):
        raise GraphError(f"instance.units: got {units!r}, expected unique names")
    tasks = data.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise GraphError(f"instance.tasks: got {tasks!r}, expected an object task -> [cost per unit]")
    g = new_graph(name)
    for task, costs in tasks.items():
        if not isinstance(costs, list) or len(costs) != len(units):
            raise GraphError(f"instance.tasks.{task}: got {costs!r}, expected {len(units)} costs (one per unit)")
        add_op(g, str(task), op="other",
               cost={u: _cost(c, f"instance.tasks.{task}[{i}]") for i, (u, c) in enumerate(zip(units, costs,
                                                                                                  strict=True))})
    for i, edge in enumerate(data.get("edges") or []):
        if not isinstance(edge, list) or len(edge) != 3:
            raise GraphError(f"instance.edges[{i}]: got {edge!r}, expected [from, to, communication cost]")
        src, dst, comm = str(edge[0]), str(edge[1]), edge[2]
        for end in (src, dst):
            if end not in g:
                raise GraphError(f"instance.edges[{i}]: got task {end!r}, expected one of the tasks")
        g.add_edge(src, dst, bytes=0, cost=_cost(comm, f"instance.edges[{i}][2]"))
    return validate_graph(g), list(units)


def load_instance(path: str | Path) -> tuple[nx.DiGraph, list[str]]:
    """Read a classic instance JSON file."""
    return instance_graph(read_json(path, "instance"), name=Path(path).stem)
