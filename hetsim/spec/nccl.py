"""NCCL's cost-model constants as a platform's ``collectives:`` section.

:class:`NcclParams` carries every number :mod:`hetsim.cost.nccl` uses: the per-(algorithm,
protocol) base latencies, the per-hop latencies by link class (``nvlink``, ``pcie``, ``net``), the
point-to-point latencies, and the fractions of a route's effective bandwidth that collectives
and point-to-point transfers reach. The defaults are NCCL 2.20.3's own tuner constants,
``src/graph/tuning.cc`` of github.com/NVIDIA/nccl at commit
``b6475625fbcaa2c3c0e50eed2fa1255d7514d4a2`` (``makefiles/version.mk``: 2.20.3), contemporary with
the A100 measurements of ``shared/calibration/collectives.csv`` (May 2024). A fitted profile
replaces some of them and says so in ``sources``.

The YAML form (every key optional; a partial mapping changes only the keys it names)::

    collectives:
      source: where the numbers come from
      base_latency: {ring.LL: 6.6 us, ring.LL128: 14 us, ring.Simple: 8.4 us, tree.LL: 6.8 us, ...}
      hw_latency: {nvlink.ring.LL: 0.6 us, net.ring.Simple: 14 us, ...}   # per step, by link class
      p2p_latency: {nvlink.LL: 7.2 us, nvlink.Simple: 11.8 us, net.Simple: 22.4 us, ...}
      bus_efficiency: {nvlink: 1.0, pcie: 1.0, net: 1.0}   # Simple ring bus bandwidth / route bandwidth
      p2p_efficiency: {nvlink: 1.0, pcie: 1.0, net: 1.0}   # send/recv bandwidth / route bandwidth
      p2p_buffer: {nvlink: 0 B, pcie: 0 B, net: 0 B}    # send/recv bytes the sender hands off at ...
      p2p_buffer_efficiency: {nvlink: 1.0, pcie: 1.0, net: 1.0}   # ... this fraction of the route bandwidth
      net_overhead: 1 us             # per network step of a multi-node ring (x3 for Simple)
      ll_max_bus_bw: [87.7 GB/s, 39 GB/s, 20.4 GB/s]   # LL cap on 1, 2, more nodes
      ll128_max_bus_bw: 160 GB/s     # LL128 cap (NCCL: channels x 20 GB/s on Ampere); null: none
      p2p_ll_threshold: 16 KiB       # send/recv uses LL up to this size, Simple above
      ring_plateau: 1.4              # multi-node ring Simple all-reduce latency factor
      nvls: false                    # NVLink SHARP (Hopper NVSwitch) available
      nvls_speedup: 1.29             # NVLS all-reduce bandwidth over the Simple ring's
      ll128: true                    # LL128 allowed where every intra-node hop is NVLink
      sources: {bus_efficiency: "fitted to ...", ...}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from hetsim.errors import SpecError
from hetsim.units import parse_positive

ALGORITHMS = ("tree", "ring", "nvls")
PROTOCOLS = ("LL", "LL128", "Simple")
LINK_CLASSES = ("nvlink", "pcie", "net")
P2P_PROTOCOLS = ("LL", "Simple")

_US = 1e-6
_GBS = 1e9
NCCL_SOURCE = ("NCCL 2.20.3 src/graph/tuning.cc (github.com/NVIDIA/nccl@b6475625fbcaa2c3c0e50eed2fa1255d7514d4a2): "
               "baseLat, hwLat, llMaxBws, getNetOverhead, ring plateau")

# tuning.cc baseLat[algorithm][protocol], µs (NVLS: only Simple, and its latency is hwLat alone)
_BASE = {"tree": (6.8, 14.0, 0.0), "ring": (6.6, 14.0, 8.4), "nvls": (0.0, 0.0, 0.0)}
# tuning.cc hwLat[NVLINK | PCI | NET][algorithm][protocol], µs
_HW = {
    "nvlink": {"tree": (0.6, 1.25, 28.0), "ring": (0.6, 1.9, 3.4), "nvls": (0.0, 0.0, 23.0)},
    "pcie": {"tree": (1.0, 1.9, 28.0), "ring": (1.0, 2.5, 5.7), "nvls": (0.0, 0.0, 0.0)},
    "net": {"tree": (5.0, 8.5, 28.0), "ring": (2.7, 4.0, 14.0), "nvls": (0.0, 0.0, 18.0)},
}


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


def _default_base() -> Mapping[str, float]:
    return _frozen({f"{a}.{p}": _BASE[a][i] * _US for a in ALGORITHMS for i, p in enumerate(PROTOCOLS)})


def _default_hw() -> Mapping[str, float]:
    return _frozen({f"{h}.{a}.{p}": _HW[h][a][i] * _US for h in LINK_CLASSES for a in ALGORITHMS
                    for i, p in enumerate(PROTOCOLS)})


def _default_p2p() -> Mapping[str, float]:
    """A send/recv as a one-step ring: ring baseLat + one ring hwLat of the link class (µs)."""
    return _frozen({f"{h}.{p}": round(_BASE["ring"][PROTOCOLS.index(p)] + _HW[h]["ring"][PROTOCOLS.index(p)], 9) * _US
                    for h in LINK_CLASSES for p in P2P_PROTOCOLS})


def _ones() -> Mapping[str, float]:
    return _frozen(dict.fromkeys(LINK_CLASSES, 1.0))


def _zeros() -> Mapping[str, float]:
    return _frozen(dict.fromkeys(LINK_CLASSES, 0.0))


_DEFAULT_SOURCES = MappingProxyType({
    "base_latency": NCCL_SOURCE + " (baseLat)",
    "hw_latency": NCCL_SOURCE + " (hwLat)",
    "p2p_latency": "assumption: a send/recv is a one-step ring, ring baseLat + one ring hwLat (" + NCCL_SOURCE + ")",
    "bus_efficiency": "assumption: 1.0 of the route's effective bandwidth; presets set link efficiency to the "
                      "measured NCCL bus bandwidth (hardware.md 2.2, 2.5)",
    "p2p_efficiency": "assumption: 1.0 of the route's effective bandwidth (presets' link efficiencies are measured "
                      "P2P rates, hardware.md 2.2)",
    "p2p_buffer": "assumption: none (the sender's kernel ends when its last byte is on the wire)",
    "p2p_buffer_efficiency": "assumption: the route bandwidth (no buffered bytes by default)",
    "net_overhead": NCCL_SOURCE + " (getNetOverhead: 1 us on Intel hosts, 2 us on AMD)",
    "ll_max_bus_bw": NCCL_SOURCE + " (llMaxBws: Ampere/Hopper 87.7 GB/s on one node; Intel hosts 39.0 / 20.4 GB/s "
                     "on 2 / more nodes)",
    "ll128_max_bus_bw": "assumption: no cap; NCCL caps LL128 at channels x perChMaxRingLL128Bw (20 GB/s on "
                        "Volta/Ampere, 36.7 GB/s on Hopper, " + NCCL_SOURCE + ") and the channel count comes from "
                        "its topology search",
    "p2p_ll_threshold": "NCCL 2.20.3 src/enqueue.cc NCCL_PARAM(P2pLLThreshold, \"P2P_LL_THRESHOLD\", 16384)",
    "ring_plateau": NCCL_SOURCE + " (ncclTopoGetAlgoTime: multi-node ring Simple all-reduce latency x1.4 on sm80+)",
    "nvls": "NCCL 2.20.3 src/transport/nvls.cc: NVLS needs multicast (Hopper NVSwitch) and more than 2 GPUs; off "
            "unless the platform says it has it",
    "nvls_speedup": "hardware.md 2.5 [MLE-NET]: 8x H100/H200 NVLS all-reduce busbw 473-482 GB/s vs ring 363-366 "
                    "GB/s, 1.29x",
    "ll128": NCCL_SOURCE + " (LL128 enabled by default on Volta/Ampere/Hopper over NVLink)",
})


@dataclass(frozen=True)
class NcclParams:
    """The constants of NCCL's cost model (:mod:`hetsim.cost.nccl`), each with its source.

    Parameters
    ----------
    base_latency_s : Mapping[str, float]
        ``"<algorithm>.<protocol>"`` → seconds paid once per collective (tuning.cc ``baseLat``).
    hw_latency_s : Mapping[str, float]
        ``"<link class>.<algorithm>.<protocol>"`` → seconds per step (tuning.cc ``hwLat``).
    p2p_latency_s : Mapping[str, float]
        ``"<link class>.<LL|Simple>"`` → seconds of one send/recv (and of all-to-all).
    bus_efficiency, p2p_efficiency : Mapping[str, float]
        Per link class, the Simple-protocol bus bandwidth of collectives and the bandwidth of
        send/recv as fractions of the route's effective bandwidth.
    p2p_buffer_bytes, p2p_buffer_efficiency : Mapping[str, float]
        Per link class: the first ``p2p_buffer_bytes`` of a send/recv leave the sender at
        ``p2p_buffer_efficiency`` × the route bandwidth, the rest at ``p2p_efficiency`` × it (the
        measured time is the sender's kernel, which ends once its last bytes are buffered).
    net_overhead_s : float
        Per-step floor of a multi-node ring's intra-node steps (×3 for Simple).
    ll_max_bus_bw_bytes_per_s : tuple of 3 floats
        LL bus-bandwidth cap on 1, 2 and more nodes.
    ll128_max_bus_bw_bytes_per_s : float or None
        LL128 bus-bandwidth cap (NCCL: channels × ``perChMaxRingLL128Bw``); ``None``: no cap.
    p2p_ll_threshold_bytes : float
        Send/recv uses LL up to this many bytes, Simple above.
    ring_plateau : float
        Latency factor of a multi-node Simple ring all-reduce past 64 KiB per 16 ranks.
    nvls, nvls_speedup, ll128
        Whether NVLink SHARP exists, its all-reduce bandwidth over the Simple ring's, and whether
        LL128 may run (only where the intra-node hops are NVLink).
    source : str
    sources : Mapping[str, str]
        Field name → where its value comes from.

    Examples
    --------
    >>> p = NcclParams()
    >>> round(p.base_latency_s["ring.LL"] * 1e6, 3), round(p.hw_latency_s["net.ring.Simple"] * 1e6, 3)
    (6.6, 14.0)
    >>> round(p.p2p_latency_s["nvlink.Simple"] * 1e6, 3)
    11.8
    """

    base_latency_s: Mapping[str, float] = field(default_factory=_default_base)
    hw_latency_s: Mapping[str, float] = field(default_factory=_default_hw)
    p2p_latency_s: Mapping[str, float] = field(default_factory=_default_p2p)
    bus_efficiency: Mapping[str, float] = field(default_factory=_ones)
    p2p_efficiency: Mapping[str, float] = field(default_factory=_ones)
    p2p_buffer_bytes: Mapping[str, float] = field(default_factory=_zeros)
    p2p_buffer_efficiency: Mapping[str, float] = field(default_factory=_ones)
    net_overhead_s: float = 1.0 * _US
    ll_max_bus_bw_bytes_per_s: tuple[float, float, float] = (87.7 * _GBS, 39.0 * _GBS, 20.4 * _GBS)
    ll128_max_bus_bw_bytes_per_s: float | None = None
    p2p_ll_threshold_bytes: float = 16384.0
    ring_plateau: float = 1.4
    nvls: bool = False
    nvls_speedup: float = 1.29
    ll128: bool = True
    source: str = NCCL_SOURCE
    sources: Mapping[str, str] = field(default_factory=lambda: _DEFAULT_SOURCES)



#: YAML key -> (field, dimension or kind, the table's keys)
_TABLES = {
    "base_latency": ("base_latency_s", "time", tuple(f"{a}.{p}" for a in ALGORITHMS for p in PROTOCOLS)),
    "hw_latency": ("hw_latency_s", "time",
                   tuple(f"{h}.{a}.{p}" for h in LINK_CLASSES for a in ALGORITHMS for p in PROTOCOLS)),
    "p2p_latency": ("p2p_latency_s", "time", tuple(f"{h}.{p}" for h in LINK_CLASSES for p in P2P_PROTOCOLS)),
    "bus_efficiency": ("bus_efficiency", "fraction", LINK_CLASSES),
    "p2p_efficiency": ("p2p_efficiency", "fraction", LINK_CLASSES),
    "p2p_buffer": ("p2p_buffer_bytes", "bytes", LINK_CLASSES),
    "p2p_buffer_efficiency": ("p2p_buffer_efficiency", "fraction", LINK_CLASSES),
}
_SCALARS = {
    "net_overhead": ("net_overhead_s", "time"),
    "p2p_ll_threshold": ("p2p_ll_threshold_bytes", "bytes"),
    "ring_plateau": ("ring_plateau", "factor"),
    "nvls_speedup": ("nvls_speedup", "factor"),
}
_FLAGS = ("nvls", "ll128")
_KEYS = {*_TABLES, *_SCALARS, *_FLAGS, "ll_max_bus_bw", "ll128_max_bus_bw", "source", "sources"}


def _factor(value: Any, where: str) -> float:
    """A positive finite number (an efficiency above 1 is allowed: sender-side kernels can beat the wire)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise SpecError(f"{where}: got {value!r}, expected a positive number")
    return float(value)


def _quantity(value: Any, kind: str, where: str) -> float:
    if kind in ("fraction", "factor"):
        return _factor(value, where)
    return parse_positive(value, kind, where, allow_zero=kind in ("time", "bytes"))


def parse_nccl(data: Any, where: str = "collectives", base: NcclParams | None = None) -> NcclParams:
    """Check a ``collectives:`` mapping and build :class:`NcclParams` over ``base`` (defaults: NCCL's).

    Raises
    ------
    SpecError
        One line naming the first bad field.

    Examples
    --------
    >>> p = parse_nccl({"bus_efficiency": {"nvlink": 0.8}, "nvls": True, "base_latency": {"ring.LL": "20 us"}})
    >>> p.bus_efficiency["nvlink"], p.bus_efficiency["net"], p.nvls, round(p.base_latency_s["ring.LL"] * 1e6, 3)
    (0.8, 1.0, True, 20.0)
    >>> parse_nccl({"hw_latency": {"nvlink.ring.LL": "-1 us"}})
    Traceback (most recent call last):
    ...
    hetsim.errors.UnitError: collectives.hw_latency.nvlink.ring.LL: got '-1 us', expected a non-negative time
    """
    base = base if base is not None else NcclParams()
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: got {data!r}, expected a mapping (base_latency, hw_latency, bus_efficiency, ...)")
    unknown = sorted(str(k) for k in set(data) - _KEYS)
    if unknown:
        raise SpecError(f"{where}.{unknown[0]}: unknown field, expected one of {', '.join(sorted(_KEYS))}")
    values: dict[str, Any] = {}
    for key, (attr, kind, keys) in _TABLES.items():
        if key not in data:
            continue
        raw = data[key]
        if not isinstance(raw, Mapping):
            raise SpecError(f"{where}.{key}: got {raw!r}, expected a mapping of {', '.join(keys[:3])}, ...")
        table = dict(getattr(base, attr))
        for name, value in raw.items():
            if name not in keys:
                raise SpecError(f"{where}.{key}.{name}: unknown key, expected one of {', '.join(keys)}")
            table[name] = _quantity(value, kind, f"{where}.{key}.{name}")
        values[attr] = _frozen(table)
    for key, (attr, kind) in _SCALARS.items():
        if key in data:
            values[attr] = _quantity(data[key], kind, f"{where}.{key}")
    for key in _FLAGS:
        if key in data:
            if not isinstance(data[key], bool):
                raise SpecError(f"{where}.{key}: got {data[key]!r}, expected true or false")
            values[key] = data[key]
    if "ll_max_bus_bw" in data:
        raw = data["ll_max_bus_bw"]
        if not isinstance(raw, list | tuple) or len(raw) != 3:
            raise SpecError(f"{where}.ll_max_bus_bw: got {raw!r}, expected 3 bandwidths (1, 2, more nodes)")
        values["ll_max_bus_bw_bytes_per_s"] = tuple(parse_positive(v, "bandwidth", f"{where}.ll_max_bus_bw[{i}]")
                                                    for i, v in enumerate(raw))
    if "ll128_max_bus_bw" in data:
        raw = data["ll128_max_bus_bw"]
        values["ll128_max_bus_bw_bytes_per_s"] = (None if raw is None
                                                  else parse_positive(raw, "bandwidth", f"{where}.ll128_max_bus_bw"))
    if "source" in data:
        if not isinstance(data["source"], str):
            raise SpecError(f"{where}.source: got {data['source']!r}, expected a string")
        values["source"] = data["source"]
    sources = dict(base.sources)
    raw_sources = data.get("sources") or {}
    if not isinstance(raw_sources, Mapping):
        raise SpecError(f"{where}.sources: got {raw_sources!r}, expected a mapping field -> citation")
    sources.update({str(k): str(v) for k, v in raw_sources.items()})
    values["sources"] = _frozen(sources)
    return NcclParams(**{**_fields(base), **values})


def _fields(params: NcclParams) -> dict[str, Any]:
    return {name: getattr(params, name) for name in params.__dataclass_fields__}


def _time(seconds: float) -> str:
    return f"{seconds / _US:.6g} us"


def nccl_to_dict(params: NcclParams) -> dict[str, Any]:
    """The YAML form of ``params`` (what :func:`parse_nccl` reads back).

    Examples
    --------
    >>> d = nccl_to_dict(NcclParams())
    >>> d["base_latency"]["ring.Simple"], d["ll_max_bus_bw"], d["nvls"]
    ('8.4 us', ['87.7 GB/s', '39 GB/s', '20.4 GB/s'], False)
    >>> parse_nccl(d) == NcclParams()
    True
    """
    out: dict[str, Any] = {"source": params.source}
    for key, (attr, kind, keys) in _TABLES.items():
        table = getattr(params, attr)
        out[key] = {k: _time(table[k]) if kind == "time" else f"{table[k]:.6g} B" if kind == "bytes"
                    else round(float(table[k]), 6) for k in keys}
    for key, (attr, kind) in _SCALARS.items():
        value = getattr(params, attr)
        out[key] = _time(value) if kind == "time" else (f"{value:.6g} B" if kind == "bytes" else round(value, 6))
    out["ll_max_bus_bw"] = [f"{v / _GBS:.6g} GB/s" for v in params.ll_max_bus_bw_bytes_per_s]
    cap = params.ll128_max_bus_bw_bytes_per_s
    out["ll128_max_bus_bw"] = None if cap is None else f"{cap / _GBS:.6g} GB/s"
    out["nvls"], out["ll128"] = params.nvls, params.ll128
    out["sources"] = dict(params.sources)
    return out
