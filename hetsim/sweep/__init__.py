"""Parameter sweeps: many scenarios on a local process pool (default) or a Dask cluster, resumably.

A sweep file names a base scenario and a grid and/or a random search of ``--set`` style
overrides (:mod:`hetsim.sweep.spec`); :func:`run_sweep` runs the points not already in the output
folder's ``results.jsonl`` and writes ``results.csv``, ``pareto.png`` and, for serving points,
``latency_throughput.png`` (:mod:`hetsim.sweep.runner`, :mod:`hetsim.sweep.plots`).
``hetsim sweep SWEEP.yaml`` is the command (:mod:`hetsim.sweep.cli`).

The package is also callable: ``hetsim.sweep("sweep.yaml")`` is :func:`run_sweep` (its module class
is a callable :class:`types.ModuleType` subclass, as :mod:`hetsim.validate`'s is).
"""

import sys
import types
from typing import Any

from hetsim.sweep.runner import SweepRows, pareto_front, run_sweep
from hetsim.sweep.spec import Point, SweepError, SweepSpec, expand, load_sweep, parse_sweep


class _CallableModule(types.ModuleType):
    """This package's module class: calling it runs :func:`hetsim.sweep.runner.run_sweep`."""

    def __call__(self, spec: Any, **options: Any) -> SweepRows:
        return run_sweep(spec, **options)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["Point", "SweepError", "SweepRows", "SweepSpec", "expand", "load_sweep", "pareto_front", "parse_sweep",
           "run_sweep"]
