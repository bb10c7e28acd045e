"""Save and load OpGraphs as JSON, so a captured graph can be reused without torch.

Format::

    {"format": "hetsim-opgraph", "version": 1,
     "graph": {"name": ..., "phase": ..., ...},
     "nodes": [{"id": "mm_1", "op": "matmul", "flop": ..., ...}, ...],
     "edges": [{"source": "mm_1", "target": "add", "bytes": ...}, ...]}
"""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx

from hetsim.errors import GraphError
from hetsim.graph.schema import NODE_DEFAULTS, OPTIONAL_KEYS, add_op, new_graph, validate_graph

FORMAT = "hetsim-opgraph"


def graph_to_dict(g: nx.DiGraph) -> dict:
    """A JSON-ready dict of ``g`` (node and edge order preserved)."""
    nodes = []
    for node, data in g.nodes(data=True):
        item = {"id": node}
        item.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in data.items()})
        nodes.append(item)
    edges = [{"source": u, "target": v, **data} for u, v, data in g.edges(data=True)]
    return {"format": FORMAT, "version": 1, "graph": dict(g.graph), "nodes": nodes, "edges": edges}


def graph_from_dict(data: object, where: str = "graph") -> nx.DiGraph:
    """Rebuild an OpGraph from :func:`graph_to_dict` output; one-line GraphError when malformed.

    Examples
    --------
    >>> g = new_graph("tiny"); add_op(g, "a", op="matmul", flop=8, shape=(2, 2)); add_op(g, "b")
    >>> g.add_edge("a", "b", bytes=16)
    >>> h = graph_from_dict(graph_to_dict(g))
    >>> h.nodes["a"]["shape"], h.edges["a", "b"]["bytes"]
    ((2, 2), 16)
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GraphError(f"{where}: expected a JSON object with \"format\": \"{FORMAT}\"")
    attrs = data.get("graph") or {}
    g = new_graph(str(attrs.get("name", "")))
    g.graph.update(attrs)
    for i, item in enumerate(data.get("nodes") or []):
        if not isinstance(item, dict) or "id" not in item:
            raise GraphError(f"{where}.nodes[{i}]: got {item!r}, expected an object with an \"id\"")
        fields = {k: v for k, v in item.items() if k != "id"}
        for key in ("shape", "ranks"):
            if isinstance(fields.get(key), list):
                fields[key] = tuple(fields[key])
        unknown = set(fields) - set(NODE_DEFAULTS) - OPTIONAL_KEYS
        if unknown:
            raise GraphError(f"{where}.nodes[{i}].{sorted(unknown)[0]}: unknown op attribute")
        add_op(g, str(item["id"]), **fields)
    for i, item in enumerate(data.get("edges") or []):
        if not isinstance(item, dict) or item.get("source") not in g or item.get("target") not in g:
            raise GraphError(f"{where}.edges[{i}]: got {item!r}, expected source and target naming known ops")
        g.add_edge(item["source"], item["target"], **{k: v for k, v in item.items() if k not in ("source", "target")})
    return validate_graph(g)


def save_graph(g: nx.DiGraph, path: str | Path) -> Path:
    """Write ``g`` as JSON to ``path``."""
    path = Path(path)
    path.write_text(json.dumps(graph_to_dict(g)), encoding="utf-8")
    return path


def read_json(path: str | Path, field: str) -> object:
    """Parse a JSON file, turning I/O and syntax problems into one-line GraphErrors naming ``field``."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GraphError(f"{field}: cannot read {str(path)!r} ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise GraphError(f"{field}: {str(path)!r} is not valid JSON (line {exc.lineno})") from None


def load_graph(path: str | Path) -> nx.DiGraph:
    """Read an OpGraph JSON file written by :func:`save_graph`."""
    return graph_from_dict(read_json(path, "workload.graph"), where=f"workload.graph {str(path)!r}")
