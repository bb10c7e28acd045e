"""Fit NCCL's cost model (:mod:`hetsim.cost.nccl`) to measured collective times, and cross-validate it.

:func:`read_collectives` reads ``shared/calibration/collectives.csv`` (Vidur's NCCL all-reduce and
send/recv kernel times on two A100 clusters; that folder's README, section 2) into
:class:`CollectiveSample` values. Each cluster is described by a
:class:`~hetsim.validate.nccl_clusters.Cluster` (:mod:`hetsim.validate.nccl_clusters`: GPUs per
node, NVLink, PCIe and network bandwidths, the platform built from them, the ranks' placement).
The network of both clusters is undocumented (README), so its bandwidth is a fitted parameter
of the cluster: the per-GPU NIC bandwidth is what send/recv reaches across
nodes (``p2p_efficiency["net"] = 1`` by this definition) and, on the DGX cluster, a node uplink
caps what 8 GPUs get together.

:func:`fit_cluster` fits, per cluster, on log time (a soft-L1 loss, quadratic within ~30 %: the
small sizes of some configurations are bimodal, README; Nelder–Mead with random restarts,
:func:`hetsim.validate._minimize.minimize`), only
what the measured configurations exercise:

* send/recv: scales of NCCL's point-to-point latencies (LL and Simple inside a node, one across
  nodes), the intra-node ``p2p_efficiency``, the NIC bandwidth, and per link class the sender's
  buffer (``p2p_buffer``, ``p2p_buffer_efficiency``: rank 0 is the sender and its kernel ends once
  its last bytes are buffered, so up to a few MiB leave faster than the wire, README);
* all-reduce: scales of NCCL's base latencies per protocol, of the intra-node and of the network
  per-step latencies (with the network overhead), the ``bus_efficiency`` of each link class
  present, the LL128 bus-bandwidth cap, and the DGX node uplink.

The protocol factors, the LL caps, the tree corrections and everything about NVLS stay NCCL's. The model is evaluated
with the simulator's own code (:func:`hetsim.cost.nccl.predict_many` on the
:class:`~hetsim.cost.nccl.CommShape` that :func:`hetsim.cost.nccl.comm_shape` derives from the
cluster's platform; :func:`~hetsim.validate.nccl_clusters.config_shape` writes that shape down in
closed form so the fit need not rebuild a platform per step, and the tests check that the two agree).

:func:`cross_validate` holds out one size octave ``[2^k, 2^(k+1))`` bytes at a time, fits the
cluster on the other sizes and predicts the held-out ones, and reports per (cluster, collective,
intra/inter node) the count, median, 90th percentile and worst ``|predicted/measured − 1|``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np

from hetsim.cost.nccl import predict_many
from hetsim.spec.nccl import NcclParams
from hetsim.validate._minimize import minimize
from hetsim.validate._table import read_table
from hetsim.validate.calibrate import CalibrationError
from hetsim.validate.nccl_clusters import CLUSTERS, Cluster, config_shape

REQUIRED_COLUMNS = ("cluster", "collective", "num_workers", "devices_per_node", "size_bytes", "measured_ms")
COLLECTIVES = ("all_reduce", "send_recv")
_DATA = "shared/calibration/collectives.csv"
_GBS, _US = 1e9, 1e-6
#: Nelder–Mead restarts from random jumps around the best point (see _minimize)
HOPS = 2


@dataclass(frozen=True)
class CollectiveSample:
    """One measured collective: cluster, kind, ranks, ranks per node, bytes per rank and seconds."""

    cluster: str
    collective: str
    num_workers: int
    devices_per_node: int
    size_bytes: float
    seconds: float

    @property
    def scope(self) -> str:
        """``intra`` when every rank sits on one node, else ``inter``."""
        return "intra" if self.num_workers == self.devices_per_node else "inter"


def _number(row: dict, column: str, where: str, *, whole: bool = False) -> float:
    raw = row.get(column)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0 or (whole and value != int(value)):
        kind = "a positive whole number" if whole else "a finite positive number"
        raise CalibrationError(f"{where}, column {column}: got {raw!r}, expected {kind}")
    return value


def read_collectives(path: str | Path) -> list[CollectiveSample]:
    """Read ``collectives.csv`` into samples; one-line errors on bad input.

    Raises
    ------
    CalibrationError
        The file cannot be read, a required column is missing, a collective is not all_reduce or
        send_recv, or a size, a rank count or a time is not a finite positive number.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "c.csv")
    >>> _ = open(p, "w").write("cluster,collective,num_workers,devices_per_node,size_bytes,measured_ms\\n"
    ...                        "a100_dgx,send_recv,2,2,2048,-0.008\\n")
    >>> read_collectives(p)
    Traceback (most recent call last):
    ...
    hetsim.validate.calibrate.CalibrationError: ...c.csv line 2, column measured_ms: got '-0.008', expected a ...
    """
    rows = read_table(path, REQUIRED_COLUMNS, _DATA)
    samples = []
    for i, row in enumerate(rows, start=2):
        where = f"{path} line {i}"
        if row["collective"] not in COLLECTIVES:
            raise CalibrationError(f"{where}, column collective: got {row['collective']!r}, expected one of "
                                   f"{', '.join(COLLECTIVES)}")
        if not row["cluster"]:
            raise CalibrationError(f"{where}, column cluster: got '', expected a cluster name")
        workers = int(_number(row, "num_workers", where, whole=True))
        per_node = int(_number(row, "devices_per_node", where, whole=True))
        if workers % per_node:
            raise CalibrationError(f"{where}, column devices_per_node: got {per_node}, expected a divisor of "
                                   f"num_workers ({workers})")
        samples.append(CollectiveSample(row["cluster"], row["collective"], workers, per_node,
                                        _number(row, "size_bytes", where),
                                        _number(row, "measured_ms", where) * 1e-3))
    if not samples:
        raise CalibrationError(f"{path}: no rows, expected the measurements of {_DATA}")
    return samples


# -- fitting ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Config:
    """The samples of one (collective, ranks, ranks per node), as arrays."""

    collective: str
    workers: int
    per_node: int
    sizes: np.ndarray
    seconds: np.ndarray


def _configs(samples: Sequence[CollectiveSample], collective: str) -> list[_Config]:
    groups: dict[tuple[int, int], list[CollectiveSample]] = {}
    for s in samples:
        if s.collective == collective:
            groups.setdefault((s.num_workers, s.devices_per_node), []).append(s)
    return [_Config(collective, w, d, np.array([s.size_bytes for s in g]), np.array([s.seconds for s in g]))
            for (w, d), g in sorted(groups.items())]


def _scaled(table, keys: Callable[[str], bool], factor: float):
    return MappingProxyType({k: v * factor if keys(k) else v for k, v in table.items()})


@dataclass(frozen=True)
class ClusterFit:
    """A cluster with its fitted network and the NCCL constants fitted to its measurements."""

    cluster: Cluster
    params: NcclParams


#: a fitted quantity: its name and how a multiplier applies it to a ClusterFit
_Slot = tuple[str, Callable[[ClusterFit, float], ClusterFit]]


def _params(fit: ClusterFit, **changes) -> ClusterFit:
    return ClusterFit(fit.cluster, replace(fit.params, **changes))


def _latency(field: str, keys: Callable[[str], bool]) -> Callable[[ClusterFit, float], ClusterFit]:
    return lambda fit, x: _params(fit, **{field: _scaled(getattr(fit.params, field), keys, x)})


def _efficiency(field: str, classes: tuple[str, ...]) -> Callable[[ClusterFit, float], ClusterFit]:
    return lambda fit, x: _params(fit, **{field: _scaled(getattr(fit.params, field), lambda k: k in classes, x)})


def _with(fit: ClusterFit, attr: str, x: float) -> ClusterFit:
    return ClusterFit(replace(fit.cluster, **{attr: getattr(fit.cluster, attr) * x}), fit.params)


def _is_net(key: str) -> bool:
    return key.startswith("net.")


def _net_latency(fit: ClusterFit, x: float) -> ClusterFit:
    return _params(fit, hw_latency_s=_scaled(fit.params.hw_latency_s, lambda k: _is_net(k) and ".nvls." not in k, x),
                   net_overhead_s=fit.params.net_overhead_s * x)


#: where the fit starts the sender's buffer: NCCL's NCCL_BUFFSIZE default, 4 MiB (src/init.cc DEFAULT_BUFFSIZE),
#: handed off at twice the link's send/recv bandwidth (assumption; both fitted)
_BUFFER_START, _BUFFER_SPEEDUP_START = 4 * 2**20, 2.0


def _buffer(classes: tuple[str, ...]) -> Callable[[ClusterFit, float], ClusterFit]:
    return lambda fit, x: _params(fit, p2p_buffer_bytes=MappingProxyType(
        {k: _BUFFER_START * x if k in classes else v for k, v in fit.params.p2p_buffer_bytes.items()}))


def _buffer_efficiency(classes: tuple[str, ...]) -> Callable[[ClusterFit, float], ClusterFit]:
    """The buffered bytes' efficiency relative to the (already applied) p2p_efficiency."""
    return lambda fit, x: _params(fit, p2p_buffer_efficiency=MappingProxyType(
        {k: fit.params.p2p_efficiency[k] * _BUFFER_SPEEDUP_START * x if k in classes else v
         for k, v in fit.params.p2p_buffer_efficiency.items()}))


def _slots(stage: str, configs: Sequence[_Config], cluster: Cluster) -> list[_Slot]:
    """What a stage fits, given which configurations the data has: only the link classes it measured
    (NVLS is not measured: its latencies stay NCCL's)."""
    inter = any(c.workers != c.per_node for c in configs)
    if stage == "send_recv":
        seen = tuple(sorted({config_shape(cluster, c.workers, c.per_node).intra for c in configs
                             if c.workers == c.per_node}))
        where = "/".join(seen)

        def mine(proto: str) -> Callable[[str], bool]:
            return lambda k: k.split(".")[0] in seen and k.endswith(f".{proto}")

        return [s for s, present in (
            ((f"p2p_latency.LL ({where})", _latency("p2p_latency_s", mine("LL"))), seen),
            ((f"p2p_latency.Simple ({where})", _latency("p2p_latency_s", mine("Simple"))), seen),
            (("p2p_latency (net)", _latency("p2p_latency_s", _is_net)), inter),
            ((f"p2p_efficiency ({where})", _efficiency("p2p_efficiency", seen)), seen),
            (("nic_bw", lambda fit, x: _with(fit, "nic_bw", x)), inter),
            ((f"p2p_buffer ({where})", _buffer(seen)), seen),
            ((f"p2p_buffer_efficiency ({where})", _buffer_efficiency(seen)), seen),
            (("p2p_buffer (net)", _buffer(("net",))), inter),
            (("p2p_buffer_efficiency (net)", _buffer_efficiency(("net",))), inter)) if present]
    classes = tuple(sorted({config_shape(cluster, c.workers, c.per_node).intra for c in configs if c.per_node > 1}))
    uplink = cluster.uplink_bw is not None and any(c.workers != c.per_node and c.per_node > 1 for c in configs)
    return [s for s, present in (
        (("base_latency.LL", _latency("base_latency_s", lambda k: k.endswith(".LL"))), bool(configs)),
        (("base_latency.LL128", _latency("base_latency_s", lambda k: k.endswith(".LL128"))), "nvlink" in classes),
        (("base_latency.Simple", _latency("base_latency_s", lambda k: k.endswith(".Simple") and ".nvls" not in k)),
         bool(configs)),
        ((f"hw_latency ({'/'.join(classes)})",
          _latency("hw_latency_s", lambda k: k.split(".")[0] in classes and ".nvls." not in k)), classes),
        (("hw_latency (net)", _net_latency), inter),
        (("bus_efficiency.nvlink", _efficiency("bus_efficiency", ("nvlink",))), "nvlink" in classes),
        (("bus_efficiency.pcie", _efficiency("bus_efficiency", ("pcie",))), "pcie" in classes),
        (("bus_efficiency.net", _efficiency("bus_efficiency", ("net",))), inter),
        (("ll128_max_bus_bw", _ll128_cap), "nvlink" in classes),
        (("uplink_bw", _uplink), uplink)) if present]


def _fields_of(slot: str) -> tuple[str, ...]:
    """The NcclParams fields a slot changes (the network bandwidths are the cluster's)."""
    head = slot.split(" ")[0].split(".")[0]
    if head in ("nic_bw", "uplink_bw"):
        return ()
    return ("hw_latency", "net_overhead") if slot == "hw_latency (net)" else (head,)


#: where the fit starts the LL128 cap when the base has none: NCCL's Ampere per-channel LL128 cap,
#: 20 GB/s (tuning.cc perChMaxRingLL128Bws), times 8 channels (assumption)
_LL128_CAP_START = 8 * 20 * _GBS


def _ll128_cap(fit: ClusterFit, x: float) -> ClusterFit:
    return _params(fit, ll128_max_bus_bw_bytes_per_s=(fit.params.ll128_max_bus_bw_bytes_per_s or _LL128_CAP_START) * x)


def _uplink(fit: ClusterFit, x: float) -> ClusterFit:
    """The node uplink, never below one NIC (below it the NIC could not be reached at its bandwidth)."""
    return ClusterFit(replace(fit.cluster, uplink_bw=max(fit.cluster.nic_bw, (fit.cluster.uplink_bw or 0) * x)),
                      fit.params)


def _apply(start: ClusterFit, slots: Sequence[_Slot], z: np.ndarray) -> ClusterFit:
    fit = start
    for (_, apply), x in zip(slots, np.exp(z), strict=True):
        fit = apply(fit, float(x))
    return fit


def _predict(fit: ClusterFit, config: _Config) -> np.ndarray:
    kind = "all_reduce" if config.collective == "all_reduce" else "send_recv"
    return predict_many(kind, config_shape(fit.cluster, config.workers, config.per_node), config.sizes, fit.params)


#: scale of the soft-L1 loss on log time: quadratic within ~30 %, linear beyond (bimodal small sizes, README)
_LOSS_SCALE = 0.3


def _loss(fit: ClusterFit, configs: Sequence[_Config]) -> float:
    r = np.concatenate([np.log(_predict(fit, c) / c.seconds) for c in configs]) / _LOSS_SCALE
    return float(np.mean(np.sqrt(1 + r * r) - 1))


def _fit_stage(stage: str, configs: Sequence[_Config], start: ClusterFit) -> tuple[ClusterFit, list[str]]:
    slots = _slots(stage, configs, start.cluster)
    if not configs or not slots:
        return start, []
    z = minimize(lambda z: _loss(_apply(start, slots, z), configs), np.zeros(len(slots)), hops=HOPS, step=0.3,
                 rounds=3, iters=300, step_decay=0.5, ftol=1e-7, xtol=np.inf)
    return _apply(start, slots, z), [name for name, _ in slots]


def amd_host_params() -> NcclParams:
    """NCCL's constants for AMD EPYC hosts (both clusters: DGX A100 has EPYC 7742, Azure NC A100 v4 EPYC 7V13).

    tuning.cc ``getNetOverhead`` gives 2 µs on AMD and ``llMaxBws`` the AMD row (22.5, 19.0 GB/s on 2
    and more nodes).
    """
    base = NcclParams()
    return replace(base, net_overhead_s=2.0 * _US, ll_max_bus_bw_bytes_per_s=(87.7 * _GBS, 22.5 * _GBS, 19.0 * _GBS),
                   sources=MappingProxyType({**base.sources, "net_overhead": base.sources["net_overhead"] + "; AMD",
                                             "ll_max_bus_bw": base.sources["ll_max_bus_bw"] + "; AMD row 22.5 / 19.0"}))


def _cluster_of(samples: Sequence[CollectiveSample]) -> str:
    names = sorted({s.cluster for s in samples})
    if len(names) != 1:
        raise CalibrationError(f"samples: got clusters {names}, expected the samples of exactly one cluster")
    return names[0]


def fit_cluster(samples: Sequence[CollectiveSample], base: NcclParams | None = None,
                cluster: Cluster | None = None) -> ClusterFit:
    """Fit one cluster's network and NCCL constants to its samples (send/recv first, then all-reduce).

    ``base`` defaults to :func:`amd_host_params`, ``cluster`` to :data:`CLUSTERS` of the samples' name.
    """
    name = _cluster_of(samples)
    if cluster is None:
        if name not in CLUSTERS:
            raise CalibrationError(f"samples: got cluster {name!r}, expected one of {', '.join(CLUSTERS)} "
                                   "(or pass its Cluster)")
        cluster = CLUSTERS[name]
    fit = ClusterFit(cluster, base or amd_host_params())
    fit, p2p = _fit_stage("send_recv", _configs(samples, "send_recv"), fit)
    fit, coll = _fit_stage("all_reduce", _configs(samples, "all_reduce"), fit)
    sizes = sorted({s.size_bytes for s in samples})
    where = f"fitted to {_DATA}, cluster {name} ({len(samples)} samples, {sizes[0]:.0f}-{sizes[-1]:.0f} B)"
    sources = dict(fit.params.sources)
    for slot in p2p + coll:
        for key in _fields_of(slot):
            sources[key] = f"{where}: {', '.join(x for x in p2p + coll if key in _fields_of(x))}"
    params = replace(fit.params, source=f"NCCL 2.20.3 tuning.cc model {where}", sources=MappingProxyType(sources))
    network = [x for x in p2p + coll if not _fields_of(x)]
    cluster = replace(fit.cluster, source=f"{fit.cluster.source}; {', '.join(network)} {where}" if network
                      else fit.cluster.source)
    return ClusterFit(cluster, params)


def fit_nccl(samples: Sequence[CollectiveSample], base: NcclParams | None = None) -> NcclParams:
    """:func:`fit_cluster`'s NCCL constants (the samples of one cluster)."""
    return fit_cluster(samples, base).params


def predict_samples(samples: Sequence[CollectiveSample], fit: ClusterFit) -> np.ndarray:
    """Predicted seconds of each sample with a cluster's fit."""
    out = np.empty(len(samples))
    for i, s in enumerate(samples):
        config = _Config(s.collective, s.num_workers, s.devices_per_node, np.array([s.size_bytes]), np.array([0.0]))
        out[i] = _predict(fit, config)[0]
    return out


@dataclass(frozen=True)
class ErrorRow:
    """Cross-validated ``|predicted/measured − 1|`` of one (cluster, collective, scope)."""

    cluster: str
    collective: str
    scope: str
    n: int
    median: float
    p90: float
    worst: float


def octave(size_bytes: float) -> int:
    """``k`` of the octave ``[2^k, 2^(k+1))`` holding ``size_bytes``.

    Examples
    --------
    >>> octave(2048), octave(4095), octave(4096)
    (11, 11, 12)
    """
    return math.floor(math.log2(size_bytes))


def held_out_predictions(samples: Sequence[CollectiveSample], base: NcclParams | None = None) -> np.ndarray:
    """Each sample predicted by a fit of its cluster on the other size octaves (leave-one-octave-out)."""
    out = np.full(len(samples), np.nan)
    for name in sorted({s.cluster for s in samples}):
        mine = [i for i, s in enumerate(samples) if s.cluster == name]
        for k in sorted({octave(samples[i].size_bytes) for i in mine}):
            test = [i for i in mine if octave(samples[i].size_bytes) == k]
            fit = fit_cluster([samples[i] for i in mine if octave(samples[i].size_bytes) != k], base)
            out[test] = predict_samples([samples[i] for i in test], fit)
    return out


def error_rows(samples: Sequence[CollectiveSample], predicted: np.ndarray) -> list[ErrorRow]:
    """Per (cluster, collective, scope): n, median, 90th percentile and worst relative error."""
    groups: dict[tuple[str, str, str], list[float]] = {}
    for s, p in zip(samples, predicted, strict=True):
        groups.setdefault((s.cluster, s.collective, s.scope), []).append(abs(p / s.seconds - 1))
    return [ErrorRow(c, k, sc, len(e), float(np.median(e)), float(np.percentile(e, 90)), float(max(e)))
            for (c, k, sc), e in sorted(groups.items())]


def cross_validate(samples: Sequence[CollectiveSample], base: NcclParams | None = None) -> list[ErrorRow]:
    """Leave-one-size-octave-out error per (cluster, collective, intra/inter node)."""
    return error_rows(samples, held_out_predictions(samples, base))
