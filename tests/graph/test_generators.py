"""Classic benchmark generators: counts, validity, CCR, heterogeneity, determinism, shape, errors."""

from __future__ import annotations

import json
import math

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsim.errors import GraphError
from hetsim.graph.generators import (
    GENERATORS,
    fft,
    fork_join,
    gaussian_elimination,
    generate,
    instance_ccr,
    montage,
    random_layered,
)
from hetsim.graph.generators_apps import montage_pairs
from hetsim.graph.instances import instance_graph

#: one small call per generator: (name, kwargs, tasks, edges), the counts worked by hand
SMALL = [
    ("random_layered", {"n_tasks": 30, "n_units": 3}, 30, None),
    ("fork_join", {"width": 3, "n_units": 2, "stages": 2}, 10, 2 * 2 * 3 + 1),
    ("fork_join", {"width": 1, "n_units": 1}, 3, 2),
    ("gaussian_elimination", {"matrix_size": 5, "n_units": 3}, 14, 5 * 4 - 1),
    ("gaussian_elimination", {"matrix_size": 2, "n_units": 3}, 2, 1),
    ("fft", {"points": 4, "n_units": 3}, 7 + 8, 6 + 16),
    ("fft", {"points": 8, "n_units": 2}, 15 + 24, 14 + 48),
    ("montage", {"n_images": 4, "n_units": 3}, 2 * 4 + 4 + 6, 3 * 4 + 3 * 4 + 4),
    ("montage", {"n_images": 2, "n_units": 3}, 2 * 2 + 1 + 6, 3 * 1 + 3 * 2 + 4),
]


def graph_of(inst: dict) -> nx.DiGraph:
    g, units = instance_graph(inst)
    assert units == [f"P{j + 1}" for j in range(len(units))]
    return g


@pytest.mark.parametrize(("name", "kwargs", "n_tasks", "n_edges"), SMALL)
def test_counts_validity_and_json(name: str, kwargs: dict, n_tasks: int, n_edges: int | None) -> None:
    inst = generate(name, **kwargs)
    g = graph_of(inst)
    assert nx.is_directed_acyclic_graph(g)
    assert g.number_of_nodes() == len(inst["tasks"]) == n_tasks
    if n_edges is not None:
        assert g.number_of_edges() == len(inst["edges"]) == n_edges
    assert len(inst["units"]) == kwargs["n_units"]
    assert inst["source"] and inst["params"]["seed"] == 0
    assert all(inst["params"][k] == v for k, v in kwargs.items())
    assert json.loads(json.dumps(inst)) == inst
    assert all(c > 0 for row in inst["tasks"].values() for c in row)


def test_gaussian_task_count_formula_and_dependencies() -> None:
    for m in range(2, 12):
        assert len(gaussian_elimination(m, 2)["tasks"]) == (m * m + m - 2) // 2
    g = graph_of(gaussian_elimination(4, 2))
    assert set(g.successors("T1_1")) == {"T1_2", "T1_3", "T1_4"}
    assert set(g.successors("T1_2")) == {"T2_2"} and set(g.predecessors("T2_3")) == {"T2_2", "T1_3"}
    assert nx.dag_longest_path(g) == ["T1_1", "T1_2", "T2_2", "T2_3", "T3_3", "T3_4"]


def test_fft_counts_and_power_of_two() -> None:
    for k in range(1, 7):
        m = 2**k
        g = graph_of(fft(m, 2))
        assert g.number_of_nodes() == 2 * m - 1 + m * k
        butterflies = [t for t in g if t.startswith("butterfly_")]
        assert len(butterflies) == m * k and all(g.in_degree(b) == 2 for b in butterflies)
        assert [t for t in g if g.in_degree(t) == 0] == ["call_1"]
    for bad in (3, 6, 12, 0, 1):
        with pytest.raises(GraphError, match=r"^fft\.points: got") as err:
            fft(bad, 2)
        assert "\n" not in str(err.value)


def test_fork_join_chains_its_stages() -> None:
    g = graph_of(fork_join(3, 2, stages=3))
    assert nx.dag_longest_path_length(g) == 3 * 2 + 2
    assert g.has_edge("join_1", "fork_2") and g.has_edge("join_2", "fork_3")
    assert [t for t in g if g.in_degree(t) == 0] == ["fork_1"] and [t for t in g if g.out_degree(t) == 0] == ["join_3"]


def test_montage_structure() -> None:
    assert montage_pairs(9) == sorted([(0, 1), (1, 2), (3, 4), (4, 5), (6, 7), (7, 8),
                                       (0, 3), (1, 4), (2, 5), (3, 6), (4, 7), (5, 8)])
    g = graph_of(montage(9, 4))
    assert g.number_of_nodes() == 2 * 9 + 12 + 6
    assert set(g.predecessors("mDiffFit_1_2")) == {"mProjectPP_1", "mProjectPP_2"}
    assert set(g.predecessors("mBackground_5")) == {"mProjectPP_5", "mBgModel"}
    assert g.in_degree("mConcatFit") == 12 and g.in_degree("mImgtbl") == 9
    assert [t for t in g if g.out_degree(t) == 0] == ["mJPEG"]
    assert nx.dag_longest_path(g)[-4:] == ["mImgtbl", "mAdd", "mShrink", "mJPEG"]


@pytest.mark.parametrize("ccr", [0.0, 0.1, 1.0, 10.0])
@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_realised_ccr_is_exact(name: str, ccr: float) -> None:
    kwargs = dict(next(k for n, k, *_ in SMALL if n == name))
    inst = generate(name, **kwargs, ccr=ccr, seed=3)
    assert math.isclose(instance_ccr(inst), ccr, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_beta_zero_gives_equal_costs_and_beta_spreads_them(name: str) -> None:
    kwargs = dict(next(k for n, k, *_ in SMALL if n == name))
    same = generate(name, **kwargs, beta=0.0)
    assert all(len(set(row)) == 1 for row in same["tasks"].values())
    spread = generate(name, **kwargs, beta=1.0)
    for row in spread["tasks"].values():
        mean = sum(row) / len(row)
        assert len(set(row)) == len(row)
        # every unit's cost within [w̄(1-β/2), w̄(1+β/2)] of the task's w̄, so max/min <= 3 for β = 1
        assert max(row) <= 3 * min(row) and mean > 0


def test_mean_cost_sets_the_mean_computation_cost() -> None:
    inst = random_layered(2000, 4, mean_cost=20.0, seed=5)
    costs = [c for row in inst["tasks"].values() for c in row]
    assert sum(costs) / len(costs) == pytest.approx(20.0, rel=0.05)
    assert min(costs) > 0 and max(costs) < 2 * 20.0 * 1.25


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_deterministic_in_the_seed(name: str) -> None:
    kwargs = dict(next(k for n, k, *_ in SMALL if n == name))
    assert generate(name, **kwargs, seed=11) == generate(name, **kwargs, seed=11)
    a, b = generate(name, **kwargs, seed=11), generate(name, **kwargs, seed=12)
    assert a["tasks"] != b["tasks"] and a["params"]["seed"] == 11 and b["params"]["seed"] == 12


def levels(inst: dict) -> int:
    return nx.dag_longest_path_length(graph_of(inst)) + 1


def test_alpha_sets_the_shape() -> None:
    n = 400
    for seed in range(3):
        thin, square, wide = (levels(random_layered(n, 2, alpha=a, seed=seed)) for a in (0.5, 1.0, 2.0))
        assert thin > square > wide
        assert 0.6 * math.sqrt(n) / 0.5 < thin < 1.5 * math.sqrt(n) / 0.5
        assert 0.6 * math.sqrt(n) / 2.0 < wide < 1.5 * math.sqrt(n) / 2.0
    assert levels(random_layered(50, 2, alpha=0.01)) == 50  # width 1: a chain


def test_random_layered_edges() -> None:
    inst = random_layered(300, 2, out_degree=2, seed=4)
    g = graph_of(inst)
    entries = {t for t in g if g.in_degree(t) == 0}
    depth = {t: 0 for t in entries}
    for t in nx.topological_sort(g):
        for s in g.successors(t):
            depth[s] = max(depth.get(s, 0), depth[t] + 1)
    # entries are exactly the first level: every other task has a predecessor on the level above
    assert all(any(depth[p] == depth[t] - 1 for p in g.predecessors(t)) for t in g if t not in entries)
    assert all(depth[t] == 0 for t in entries)
    mean_out = g.number_of_edges() / g.number_of_nodes()
    assert 1.0 <= mean_out <= 2.0  # caps are U{1, 2}; the last level has no successors
    assert levels(random_layered(1, 1)) == 1 and random_layered(1, 1)["edges"] == []


BAD = [
    (random_layered, (0, 2), {}, "random_layered.n_tasks: got 0, expected an integer >= 1"),
    (random_layered, (10, 0), {}, "random_layered.n_units: got 0, expected an integer >= 1"),
    (random_layered, (10, 2), {"alpha": -1}, "random_layered.alpha: got -1, expected a positive number"),
    (random_layered, (10, 2), {"alpha": 0}, "random_layered.alpha: got 0, expected a positive number"),
    (random_layered, (10, 2), {"ccr": -0.5}, "random_layered.ccr: got -0.5, expected a non-negative number"),
    (random_layered, (10, 2), {"ccr": float("nan")}, "random_layered.ccr: got nan, expected"),
    (random_layered, (10, 2), {"beta": 2.5}, "random_layered.beta: got 2.5, expected a number in [0, 2]"),
    (random_layered, (10, 2), {"out_degree": 0}, "random_layered.out_degree: got 0, expected an integer >= 1"),
    (random_layered, (10, 2), {"mean_cost": 0}, "random_layered.mean_cost: got 0, expected a positive number"),
    (random_layered, (10, 2), {"seed": -1}, "random_layered.seed: got -1, expected an integer >= 0"),
    (random_layered, (2.5, 2), {}, "random_layered.n_tasks: got 2.5, expected an integer >= 1"),
    (random_layered, (True, 2), {}, "random_layered.n_tasks: got True, expected an integer >= 1"),
    (random_layered, (10, 2), {"ccr": "1"}, "random_layered.ccr: got '1', expected a non-negative number"),
    (fork_join, (0, 2), {}, "fork_join.width: got 0, expected an integer >= 1"),
    (fork_join, (2, 2), {"stages": 0}, "fork_join.stages: got 0, expected an integer >= 1"),
    (gaussian_elimination, (1, 2), {}, "gaussian_elimination.matrix_size: got 1, expected an integer >= 2"),
    (gaussian_elimination, (5, 2), {"beta": -0.1}, "gaussian_elimination.beta: got -0.1, expected"),
    (fft, (6, 2), {}, "fft.points: got 6, expected a power of 2 (>= 2)"),
    (fft, (4, 0), {}, "fft.n_units: got 0, expected an integer >= 1"),
    (montage, (1, 2), {}, "montage.n_images: got 1, expected an integer >= 2"),
    (montage, (4, 2), {"ccr": math.inf}, "montage.ccr: got inf, expected"),
]


@pytest.mark.parametrize(("fn", "args", "kwargs", "message"), BAD, ids=lambda x: getattr(x, "__name__", None))
def test_bad_parameters_are_one_line_graph_errors(fn, args, kwargs, message) -> None:
    with pytest.raises(GraphError) as err:
        fn(*args, **kwargs)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_generate_dispatches_and_reports_bad_names() -> None:
    assert set(GENERATORS) == {"random_layered", "fork_join", "gaussian_elimination", "fft", "montage"}
    assert generate("fft", points=4, n_units=2, seed=1) == fft(4, 2, seed=1)
    with pytest.raises(GraphError, match=r"^generate\.name: got 'lu', expected one of fft, fork_join"):
        generate("lu", n_units=2)
    for params in ({"points": 4}, {"points": 4, "n_units": 2, "alpha": 1.0}):
        with pytest.raises(GraphError, match=r"^fft: got parameters") as err:
            generate("fft", **params)
        assert "\n" not in str(err.value)
    with pytest.raises(GraphError, match=r"^fork_join\.width: got -3"):
        generate("fork_join", width=-3, n_units=2)


@settings(max_examples=50, deadline=None)
@given(
    name=st.sampled_from(sorted(GENERATORS)),
    size=st.integers(1, 40),
    n_units=st.integers(1, 5),
    ccr=st.floats(0.0, 10.0),
    beta=st.floats(0.0, 2.0),
    alpha=st.floats(0.1, 3.0),
    out_degree=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_valid_instances(name, size, n_units, ccr, beta, alpha, out_degree, seed) -> None:
    common = {"n_units": n_units, "ccr": ccr, "beta": beta, "seed": seed}
    if name == "random_layered":
        params, expected = {"n_tasks": size, "alpha": alpha, "out_degree": out_degree}, size
    elif name == "fork_join":
        width, stages = size % 6 + 1, size % 3 + 1
        params, expected = {"width": width, "stages": stages}, stages * (width + 2)
    elif name == "gaussian_elimination":
        m = size % 9 + 2
        params, expected = {"matrix_size": m}, (m * m + m - 2) // 2
    elif name == "fft":
        m = 2 ** (size % 5 + 1)
        params, expected = {"points": m}, 2 * m - 1 + m * (m.bit_length() - 1)
    else:
        n = size % 12 + 2
        params, expected = {"n_images": n}, 2 * n + len(montage_pairs(n)) + 6
    inst = generate(name, **params, **common)
    g = graph_of(inst)
    assert g.number_of_nodes() == expected and nx.is_directed_acyclic_graph(g)
    if inst["edges"]:
        assert math.isclose(instance_ccr(inst), ccr, rel_tol=1e-9, abs_tol=1e-12)
    else:
        assert name == "random_layered"
    if beta == 0:
        assert all(len(set(row)) == 1 for row in inst["tasks"].values())
