"""Request-level serving simulation: arrivals, continuous batching, KV cache, latency percentiles.

Glue like :mod:`hetsim.scenario`: one engine iteration is timed once on a small grid with
:func:`hetsim.simulate` and fitted (:mod:`hetsim.serve.iteration`); the cluster's event loop
(:mod:`hetsim.serve.cluster`) then steps its instances (:mod:`hetsim.serve.instance`) through
iterations with that fit, so thousands of requests cost seconds. :func:`serve`
(:mod:`hetsim.serve.simulator`) runs colocated replicas or disaggregated prefill/decode pools.
"""

from hetsim.serve.iteration import IterationModel, fit_iteration_model
from hetsim.serve.simulator import InstanceStats, Pool, RequestRecord, ServeResult, serve
from hetsim.serve.workload import Request, Workload, make_requests

__all__ = ["InstanceStats", "IterationModel", "Pool", "Request", "RequestRecord", "ServeResult", "Workload",
           "fit_iteration_model", "make_requests", "serve"]
