"""Request-level serving simulation: arrivals, continuous batching, KV cache, latency percentiles.

Glue like :mod:`hetsim.scenario`: one engine iteration is timed once on a small grid with
:func:`hetsim.simulate` and fitted (:mod:`hetsim.serve.iteration`); the serving loop
(:mod:`hetsim.serve.simulator`) then steps through iterations with that fit, so thousands of
requests cost seconds.
"""

from hetsim.serve.iteration import IterationModel, fit_iteration_model
from hetsim.serve.simulator import RequestRecord, ServeResult, serve
from hetsim.serve.workload import Request, Workload, make_requests

__all__ = ["IterationModel", "Request", "RequestRecord", "ServeResult", "Workload", "fit_iteration_model",
           "make_requests", "serve"]
