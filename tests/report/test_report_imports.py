"""hetsim.report imports only what DESIGN.md allows it to."""

from __future__ import annotations

import ast
from pathlib import Path

import hetsim.report

ALLOWED_HETSIM = ("hetsim.spec", "hetsim.graph", "hetsim.sim.trace", "hetsim.units", "hetsim.errors", "hetsim.report")
ALLOWED_OTHER = {"numpy", "networkx", "matplotlib", "rich"}


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


def test_report_imports_only_allowed_modules():
    import sys

    stdlib = set(sys.stdlib_module_names)
    package = Path(hetsim.report.__file__).parent
    for path in sorted(package.glob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "hetsim":
                assert name.startswith(ALLOWED_HETSIM), f"{path.name} imports {name}"
            else:
                assert top in stdlib or top in ALLOWED_OTHER or top == "__future__", f"{path.name} imports {name}"
