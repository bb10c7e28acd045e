"""Fitting NCCL's model to collectives.csv: reading the table, the clusters' platforms, recovering
known constants, the cross-validated error on the real measurements, and the fitted profile."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hetsim_testing import collective_graph

import hetsim
from hetsim.cost.nccl import NcclModel, comm_shape, predict_many
from hetsim.spec.loader import load_platform
from hetsim.spec.nccl import parse_nccl
from hetsim.validate.calibrate import CalibrationError
from hetsim.validate.nccl_clusters import CLUSTERS, cluster_platform, cluster_ranks, config_shape
from hetsim.validate.nccl_fit import (
    ClusterFit,
    CollectiveSample,
    amd_host_params,
    cross_validate,
    error_rows,
    fit_cluster,
    octave,
    predict_samples,
    read_collectives,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "calibration" / "collectives.csv"
PROFILE = ROOT / "profiles" / "a100-nccl.yaml"
needs_data = pytest.mark.skipif(not DATA.is_file(), reason="../shared/calibration/collectives.csv is absent")
HEADER = "cluster,collective,num_workers,devices_per_node,size_bytes,measured_ms\n"
#: the configurations of collectives.csv (calibration README, section 2)
CONFIGS = {"a100_dgx": {"all_reduce": [(2, 2), (4, 4), (8, 8), (2, 1), (4, 2), (8, 4), (16, 8)],
                        "send_recv": [(2, 2), (2, 1)]},
           "a100_pairwise_nvlink": {"all_reduce": [(2, 2), (4, 4)], "send_recv": [(2, 2), (2, 1)]}}


def write(tmp_path: Path, rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "collectives.csv"
    path.write_text(header + rows, encoding="utf-8")
    return path


# -- reading -----------------------------------------------------------------------------------

@needs_data
def test_reads_the_calibration_table():
    samples = read_collectives(DATA)
    assert len(samples) == 648
    assert {s.cluster for s in samples} == set(CONFIGS)
    for cluster, kinds in CONFIGS.items():
        for kind, configs in kinds.items():
            seen = {(s.num_workers, s.devices_per_node) for s in samples
                    if (s.cluster, s.collective) == (cluster, kind)}
            assert seen == set(configs)
    first = samples[0]  # a100_dgx all_reduce 2/1 at 2 KiB: 43 us (the README's small-message floor)
    assert (first.size_bytes, first.seconds, first.scope) == (2048, pytest.approx(43e-6), "inter")


@pytest.mark.parametrize(("rows", "header", "message"), [
    ("a100_dgx,all_reduce,2,2,2048,0.01\n", "cluster,collective,num_workers,size_bytes,measured_ms\n",
     r"collectives.csv: column 'devices_per_node' is missing, expected the columns of"),
    ("a100_dgx,all_reduce,2,2,2048,-0.01\n", HEADER,
     r"collectives.csv line 2, column measured_ms: got '-0.01', expected a finite positive number$"),
    ("a100_dgx,all_reduce,2,2,2048,fast\n", HEADER,
     r"collectives.csv line 2, column measured_ms: got 'fast', expected a finite positive number$"),
    ("a100_dgx,all_reduce,2,2,2048,nan\n", HEADER, r"line 2, column measured_ms: got 'nan', expected a finite"),
    ("a100_dgx,all_reduce,2,2,2048,0.01\na100_dgx,all_reduce,2,2,inf,0.01\n", HEADER,
     r"collectives.csv line 3, column size_bytes: got 'inf', expected a finite positive number$"),
    ("a100_dgx,all_reduce,2.5,2,2048,0.01\n", HEADER, r"column num_workers: got '2.5', expected a positive whole"),
    ("a100_dgx,all_reduce,4,3,2048,0.01\n", HEADER, r"column devices_per_node: got 3, expected a divisor of "),
    ("a100_dgx,all_gather,2,2,2048,0.01\n", HEADER, r"column collective: got 'all_gather', expected one of all_reduce"),
    ("", HEADER, r"collectives.csv: no rows, expected the measurements of"),
])
def test_bad_tables_give_one_line(tmp_path, rows, header, message):
    with pytest.raises(CalibrationError, match=message) as info:
        read_collectives(write(tmp_path, rows, header))
    assert "\n" not in str(info.value)


def test_a_missing_file_gives_one_line(tmp_path):
    with pytest.raises(CalibrationError, match=r"nope.csv: cannot be read \(No such file or directory\)"):
        read_collectives(tmp_path / "nope.csv")


def test_the_benchmark_exits_2_with_one_line_on_a_bad_table(tmp_path):
    path = write(tmp_path, "a100_dgx,send_recv,2,2,2048,-1\n")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "collectives_accuracy.py"), "--data", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and not done.stdout
    assert done.stderr.count("\n") == 1 and "column measured_ms: got '-1'" in done.stderr


# -- the clusters ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_closed_form_shapes_are_the_platforms(name):
    cluster = replace(CLUSTERS[name], nic_bw=7e9, uplink_bw=None if CLUSTERS[name].uplink_bw is None else 20e9)
    platform = cluster_platform(cluster)
    for configs in CONFIGS[name].values():
        for workers, per_node in configs:
            ranks = cluster_ranks(cluster, workers, per_node)
            derived = comm_shape(platform, [platform.unit(r).memory for r in ranks])
            assert derived == config_shape(cluster, workers, per_node), (workers, per_node)


def test_dgx_cluster_shapes_by_hand():
    cluster = replace(CLUSTERS["a100_dgx"], nic_bw=8e9, uplink_bw=20e9)
    assert config_shape(cluster, 8, 8).inter_bw == np.inf and config_shape(cluster, 8, 8).intra_bw == 300e9
    assert config_shape(cluster, 2, 1).inter_bw == 8e9  # one NIC
    assert config_shape(cluster, 4, 2).inter_bw == 16e9  # two NICs
    assert config_shape(cluster, 16, 8).inter_bw == 20e9  # the node uplink
    with pytest.raises(CalibrationError, match=r"^samples: got 32 ranks, 8 per node, expected at most 2 nodes"):
        cluster_ranks(cluster, 32, 8)


# -- fitting -----------------------------------------------------------------------------------

def synthetic(fit: ClusterFit, configs: dict) -> list[CollectiveSample]:
    """Samples the model itself predicts, 2 KiB to 64 MiB."""
    sizes = 2.0 ** np.arange(11, 27)
    out = []
    for kind, pairs in configs.items():
        for workers, per_node in pairs:
            seconds = predict_many("all_reduce" if kind == "all_reduce" else "send_recv",
                                   config_shape(fit.cluster, workers, per_node), sizes, fit.params)
            out += [CollectiveSample(fit.cluster.name, kind, workers, per_node, n, t)
                    for n, t in zip(sizes, seconds, strict=True)]
    return out


def test_the_fit_recovers_what_a_known_model_predicts():
    base = amd_host_params()
    truth = ClusterFit(replace(CLUSTERS["a100_pairwise_nvlink"], nic_bw=3e9),
                       replace(base, bus_efficiency={"nvlink": 0.6, "pcie": 0.8, "net": 1.0},
                               base_latency_s={k: 2 * v for k, v in base.base_latency_s.items()},
                               p2p_latency_s={k: 1.5 * v for k, v in base.p2p_latency_s.items()},
                               # a two-regime network (README): 2 MiB handed off at 3x the NIC, then the NIC
                               p2p_buffer_bytes={"nvlink": 8 * 2**20, "pcie": 0.0, "net": 2 * 2**20},
                               p2p_buffer_efficiency={"nvlink": 1.5, "pcie": 1.0, "net": 3.0}))
    samples = synthetic(truth, CONFIGS["a100_pairwise_nvlink"])
    fit = fit_cluster(samples)
    errors = np.abs(predict_samples(samples, fit) / np.array([s.seconds for s in samples]) - 1)
    assert np.median(errors) < 0.01 and errors.max() < 0.05
    assert fit.cluster.nic_bw == pytest.approx(3e9, rel=0.02)
    assert fit.params.p2p_buffer_bytes["net"] == pytest.approx(2 * 2**20, rel=0.05)
    assert fit.params.bus_efficiency["pcie"] == pytest.approx(0.8, rel=0.02)
    assert "fitted to shared/calibration/collectives.csv, cluster a100_pairwise_nvlink" in fit.params.sources[
        "bus_efficiency"]
    assert fit.params.sources["nvls_speedup"] == base.sources["nvls_speedup"]  # not measured: NCCL's


def test_octaves_and_error_rows():
    assert [octave(n) for n in (2048, 4095, 4096, 2**26)] == [11, 11, 12, 26]
    s = [CollectiveSample("c", "send_recv", 2, 2, 2048, 1e-5), CollectiveSample("c", "send_recv", 2, 2, 4096, 2e-5),
         CollectiveSample("c", "send_recv", 2, 1, 4096, 2e-5)]
    rows = error_rows(s, np.array([1.1e-5, 1.6e-5, 2e-5]))
    assert [(r.scope, r.n, round(r.median, 6), round(r.worst, 6)) for r in rows] == [("inter", 1, 0.0, 0.0),
                                                                                   ("intra", 2, 0.15, 0.2)]


@needs_data
def test_send_recv_meets_the_target_out_of_sample():
    samples = [s for s in read_collectives(DATA) if s.collective == "send_recv"]
    rows = {(r.cluster, r.scope): r for r in cross_validate(samples)}
    for key in (("a100_dgx", "intra"), ("a100_dgx", "inter"), ("a100_pairwise_nvlink", "intra")):
        assert rows[key].median <= 0.10, rows[key]
    assert rows[("a100_dgx", "intra")].worst <= 0.30
    # the pairwise cluster's network: ~7.6 GB/s up to ~2 MiB, ~2.5 GB/s beyond (README); the sender's buffer
    # (p2p_buffer) follows both regimes, but the >2 MiB times scatter by +-20 % between neighbouring sizes
    assert rows[("a100_pairwise_nvlink", "inter")].median <= 0.25


@needs_data
@pytest.mark.slow
def test_all_reduce_out_of_sample():
    """The README table's all-reduce rows: the pairwise cluster meets the 10 % median; the DGX cluster's
    bimodal small-size times (20-30 us or ~60 us at the same sizes, README) keep it near 12-16 %."""
    samples = [s for s in read_collectives(DATA) if s.collective == "all_reduce"]
    rows = {(r.cluster, r.scope): r for r in cross_validate(samples)}
    assert rows[("a100_pairwise_nvlink", "intra")].median <= 0.10
    assert rows[("a100_dgx", "intra")].median <= 0.20 and rows[("a100_dgx", "inter")].median <= 0.20


# -- the fitted profile --------------------------------------------------------------------------

def test_the_profile_simulates_what_the_fit_predicts():
    platform = load_platform(PROFILE)
    params = platform.collectives
    assert "a100_dgx" in params.source and params.sources["bus_efficiency"].startswith("fitted to")
    network = platform.manifest["clusters"]["a100_dgx"]["network"]
    cluster = replace(CLUSTERS["a100_dgx"], nic_bw=float(network["nic_bw"].split()[0]) * 1e9,
                      uplink_bw=float(network["uplink_bw"].split()[0]) * 1e9)
    model = NcclModel(platform)
    sizes = 2.0 ** np.arange(11, 27)
    for kind, configs in CONFIGS["a100_dgx"].items():
        for workers, per_node in configs:
            ranks = cluster_ranks(cluster, workers, per_node)
            expected = predict_many(kind, config_shape(cluster, workers, per_node), sizes, params)
            plans = [model.plan(kind, ranks, n) for n in sizes]
            assert [p.nccl_s for p in plans] == pytest.approx(expected, rel=1e-5)
            assert [p.time_s for p in plans] == pytest.approx(expected, rel=1e-5)  # the links never bind
    # one measured configuration through the engine, as transfers: 8 GPUs of one node, 64 MiB
    g = collective_graph("all_reduce", cluster_ranks(cluster, 8, 8), 2**26)
    r = hetsim.simulate(g, platform, "eft", sim={"collective_algorithm": "nccl", "contention": "fair"})
    spans = [o.end_s - o.start_s for o in r.trace.ops]  # the host may launch the kernels late: time the collective
    assert spans == pytest.approx([model.time("all_reduce", cluster_ranks(cluster, 8, 8), 2**26)] * 8, rel=1e-9)
    pairwise = parse_nccl(platform.manifest["clusters"]["a100_pairwise_nvlink"]["collectives"])
    assert pairwise.bus_efficiency["pcie"] < 1 and pairwise.source != params.source
