"""What runs: op graphs (networkx DiGraphs with the schema of :mod:`hetsim.graph.schema`)."""

from hetsim.graph.schema import OP_KINDS, add_op, new_graph, validate_graph

__all__ = ["OP_KINDS", "add_op", "new_graph", "validate_graph"]
