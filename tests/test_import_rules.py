"""DESIGN.md §1 as a test: walk every module's imports (ast) and refuse edges the table forbids."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "hetsim"
LEAVES = {"units", "errors"}  # importable from everywhere
ALLOWED = {
    "units": set(),
    "errors": set(),
    "spec": {"spec"},
    "graph": {"graph", "models"},
    "cost": {"cost", "spec", "graph"},
    "sched": {"sched", "spec", "graph", "cost"},
    "sim": {"sim", "spec", "graph", "cost", "sched"},
    "report": {"report", "spec", "graph", "sim.trace"},
    "validate": None,  # everything above
    "sweep": {"sweep", "scenario"},
    "scenario": None,
    "compare": None,  # glue, like scenario and api: runs every scheduler through simulate()
    "serve": None,  # glue, like scenario and api: serving simulation over simulate() iterations
    "cli": None,
    "api": None,  # glue, like scenario: simulate() ties the stages together
    "__init__": None,
}


def package_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


MODULES = sorted(p for p in ROOT.rglob("*.py"))


def test_the_walk_sees_the_packages():
    assert {package_of(p) for p in MODULES} >= {"spec", "graph", "cost", "sched", "sim", "report", "cli"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_design_table(path):
    package = package_of(path)
    assert package in ALLOWED, f"{package} is not in DESIGN.md's table"
    allowed = ALLOWED[package]
    for name in imports(path):
        top = name.split(".")[0]
        if top == "simpy":
            assert package == "sim", f"{path.name}: only hetsim/sim may import simpy"
        if top == "torch":
            in_capture = package == "graph" and path.stem.startswith("capture")
            ok = package in ("validate", "models") or in_capture
            assert ok, f"{path.relative_to(ROOT)}: torch only in graph/capture* and validate/"
        if top != "hetsim" or allowed is None:
            continue
        parts = name.split(".")
        target = parts[1] if len(parts) > 1 else "__init__"
        if target in LEAVES or target == package:
            continue
        if package == "report" and target == "sim":
            assert name.startswith("hetsim.sim.trace"), f"{path.name}: report may only import hetsim.sim.trace"
            continue
        assert target in allowed, f"{path.relative_to(ROOT)} imports {name}: {package} may import only {allowed}"


def test_the_checker_catches_a_forbidden_edge(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from hetsim.sim.engine import run\nimport simpy\n")
    assert imports(bad) == ["hetsim.sim.engine", "simpy"]
