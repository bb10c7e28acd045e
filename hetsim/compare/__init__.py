"""Compare schedulers on the same graphs and hardware: suites, runs, summaries, plots.

``hetsim compare SUITE.yaml`` (see :mod:`hetsim.compare.cli`) or, from Python::

    from hetsim.compare import load_suite, run_suite, summarize
    suite = load_suite("scenarios/compare/classic.yaml")
    rows = run_suite(suite)            # one dict per case × scheduler
    summary = summarize(rows, suite)   # per-scheduler means, wins and gaps
"""

from hetsim.compare.runner import COLUMNS, run_suite, summarize
from hetsim.compare.suite import Suite, load_suite, parse_suite

__all__ = ["COLUMNS", "Suite", "load_suite", "parse_suite", "run_suite", "summarize"]
