"""The two A100 clusters of ``shared/calibration/collectives.csv`` as hetsim platforms.

Each cluster is described by a :class:`Cluster`: GPUs per node, their NVLink (an NVSwitch, or
bridges between pairs), PCIe and network bandwidths, from which :func:`cluster_platform` builds a
hetsim platform; ranks are packed onto GPUs ``0…d−1`` of each node, as Vidur ran them
(:func:`cluster_ranks`). The network of both clusters is undocumented (calibration README,
section 2), so its bandwidths are fitted by :mod:`hetsim.validate.nccl_fit`. :func:`config_shape`
writes down in closed form the :class:`~hetsim.cost.nccl.CommShape` that
:func:`hetsim.cost.nccl.comm_shape` derives from the cluster's platform, so the fit need not
rebuild a platform per step (the tests check that the two agree).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

from hetsim.cost.nccl import CommShape
from hetsim.spec.loader import platform_from_dict, preset_path, read_yaml
from hetsim.spec.nccl import NcclParams, nccl_to_dict
from hetsim.spec.types import Platform
from hetsim.validate.calibrate import CalibrationError

_DATA = "shared/calibration/collectives.csv"
_GBS = 1e9


@dataclass(frozen=True)
class Cluster:
    """A measured cluster: ``nodes`` × ``gpus`` A100s, joined inside a node by an NVSwitch
    (``pairs=False``) or by NVLink bridges between GPU pairs and PCIe through the host, and across
    nodes by one NIC per GPU (``nic_per_gpu``) or per node, under an optional node uplink."""

    name: str
    nodes: int
    gpus: int
    pairs: bool
    nic_per_gpu: bool
    nvlink_bw: float
    pcie_bw: float
    nic_bw: float
    uplink_bw: float | None
    source: str


#: the two clusters of collectives.csv; network bandwidths are the starting points of the fit
CLUSTERS = MappingProxyType({
    "a100_dgx": Cluster(
        "a100_dgx", 2, 8, pairs=False, nic_per_gpu=True, nvlink_bw=300 * _GBS, pcie_bw=32 * _GBS, nic_bw=8 * _GBS,
        uplink_bw=20 * _GBS,
        source="Vidur docs/profiling.md: 'A100 DGX with 8 80GB A100s'; NVLink3 300 GB/s per direction through "
               "NVSwitch (A100-TOPO, hardware.md 5.5); one NIC per GPU (DGXA-GEEK); network undocumented: NIC and "
               "node uplink bandwidths fitted"),
    "a100_pairwise_nvlink": Cluster(
        "a100_pairwise_nvlink", 2, 4, pairs=True, nic_per_gpu=False, nvlink_bw=300 * _GBS, pcie_bw=32 * _GBS,
        nic_bw=2.5 * _GBS, uplink_bw=None,
        source="Vidur docs/profiling.md: 'Azure Standard_NC96ads_A100_v4 with 4 80GB A100 PCIe GPUs with pair-wise "
               "NVLINK connectivity'; NVLink bridge 600 GB/s bidirectional (NVIDIA A100 PCIe datasheet), PCIe Gen4 "
               "x16 32 GB/s per direction (hardware.md 1.1); network undocumented: one NIC per node, fitted"),
})

# link latencies of the cluster platforms: NVLink 1.0 us per hop as the dgx-h100-a100-ib preset's A100 node
# (hardware.md 5.5), PCIe 1.5 us per hop and NIC 1.5 us, uplink 0.5 us (hardware.md 5.5 ~1-2 us): assumptions
_LATENCY = {"nvlink": "1 us", "pcie": "1.5 us", "nic": "1.5 us", "uplink": "0.5 us"}
_ASSUMPTIONS = (
    "Every GPU is the a100-sxm-80gb preset's (the pairwise cluster's are A100 80GB PCIe: only the links matter "
    "to collectives).",
    "Link latencies: NVLink 1 us per hop (dgx-h100-a100-ib preset's A100 node), PCIe and NIC 1.5 us, node uplink "
    "0.5 us (hardware.md 2.4, 5.5 ~1-2 us): assumptions; NCCL's fitted per-step latencies exceed them.",
    "Link efficiencies are 1: the fitted collectives.bus_efficiency and p2p_efficiency carry what NCCL reaches.",
    "The network is undocumented (calibration README): its bandwidths are fitted to collectives.csv; send/recv "
    "across nodes defines the NIC bandwidth (p2p_efficiency.net = 1).",
)


def cluster_platform(cluster: Cluster, params: NcclParams | None = None) -> Platform:
    """The cluster as a hetsim platform: ``n<i>.gpu<j>`` on ``n<i>.hbm<j>`` (the a100-sxm-80gb preset's GPU).

    Examples
    --------
    >>> p = cluster_platform(CLUSTERS["a100_pairwise_nvlink"])
    >>> len(p.units), p.route("n0.hbm0", "n0.hbm1").links, p.route("n0.hbm1", "n0.hbm2").links
    (8, ('n0.nvlink0',), ('n0.pcie1', 'n0.pcie2'))
    """
    data = cluster_platform_dict(cluster)
    if params is not None:
        data["collectives"] = nccl_to_dict(params)
    return platform_from_dict(data)


def cluster_platform_dict(cluster: Cluster) -> dict:
    """The loader mapping of :func:`cluster_platform` (the GPU's figures shared, so YAML writes them once)."""
    preset = read_yaml(preset_path("a100-sxm-80gb"), "platform")
    memories, units, links, switches = [], [], [], ["net"]

    def link(name: str, a: str, b: str, bandwidth: float, kind: str) -> None:
        links.append({"name": name, "a": a, "b": b, "bandwidth": bandwidth, "latency": _LATENCY[kind]})

    memory, unit = preset["memories"][0], preset["units"][0]
    for i in range(cluster.nodes):
        n = f"n{i}"
        hub = f"{n}.host" if cluster.pairs else f"{n}.nvswitch"
        switches += [hub, f"{n}.net"]
        for j in range(cluster.gpus):
            memories.append({**memory, "name": f"{n}.hbm{j}"})
            units.append({**unit, "name": f"{n}.gpu{j}", "memory": f"{n}.hbm{j}"})
            if cluster.pairs:
                if j % 2:
                    link(f"{n}.nvlink{j - 1}", f"{n}.hbm{j - 1}", f"{n}.hbm{j}", cluster.nvlink_bw, "nvlink")
                link(f"{n}.pcie{j}", f"{n}.hbm{j}", hub, cluster.pcie_bw, "pcie")
            else:
                link(f"{n}.nvlink{j}", f"{n}.hbm{j}", hub, cluster.nvlink_bw, "nvlink")
            if cluster.nic_per_gpu:
                link(f"{n}.nic{j}", f"{n}.hbm{j}", f"{n}.net", cluster.nic_bw, "nic")
        if not cluster.nic_per_gpu:
            link(f"{n}.nic", hub, f"{n}.net", cluster.nic_bw, "nic")
        link(f"{n}.uplink", f"{n}.net", "net", cluster.uplink_bw or 1e15, "uplink")
    return {"name": cluster.name, "description": f"measured cluster {cluster.name} of {_DATA}",
            "source": cluster.source, "sources": preset["sources"], "assumptions": list(_ASSUMPTIONS),
            "switches": switches, "memories": memories, "units": units, "links": links}


def cluster_ranks(cluster: Cluster, num_workers: int, devices_per_node: int) -> list[str]:
    """Units of ``num_workers`` ranks packed onto GPUs ``0…devices_per_node−1`` of each node.

    Examples
    --------
    >>> cluster_ranks(CLUSTERS["a100_dgx"], 4, 2)
    ['n0.gpu0', 'n0.gpu1', 'n1.gpu0', 'n1.gpu1']
    """
    if num_workers % devices_per_node or num_workers // devices_per_node > cluster.nodes \
            or devices_per_node > cluster.gpus:
        raise CalibrationError(f"samples: got {num_workers} ranks, {devices_per_node} per node, expected at most "
                               f"{cluster.nodes} nodes of {cluster.gpus} GPUs (cluster {cluster.name})")
    return [f"n{i}.gpu{j}" for i in range(num_workers // devices_per_node) for j in range(devices_per_node)]


def config_shape(cluster: Cluster, num_workers: int, devices_per_node: int) -> CommShape:
    """:func:`hetsim.cost.nccl.comm_shape` of those ranks on :func:`cluster_platform`, in closed form.

    Examples
    --------
    >>> s = config_shape(CLUSTERS["a100_pairwise_nvlink"], 4, 4)
    >>> s.intra, s.intra_bw / 1e9, s.inter_bw
    ('pcie', 32.0, inf)
    """
    cluster_ranks(cluster, num_workers, devices_per_node)
    d, nodes = devices_per_node, num_workers // devices_per_node
    intra, intra_bw = "nvlink", cluster.nvlink_bw
    if d == 1:
        intra_bw = math.inf
    elif cluster.pairs and d > 2:
        intra, intra_bw = "pcie", cluster.pcie_bw
    inter = math.inf
    if nodes > 1:
        inter = d * cluster.nic_bw if cluster.nic_per_gpu else min(cluster.nic_bw, d * cluster.pcie_bw)
        inter = min(inter, cluster.uplink_bw or math.inf)
    return CommShape(num_workers, nodes, intra, intra_bw, inter, nodes == 1 and d > 1 and not cluster.pairs)
